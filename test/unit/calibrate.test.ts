/**
 * Start-up calibration: the candidate plans of a model on a host (forced
 * device and dtype are hard constraints), and measuring them on the
 * generated tiny BERT in a temp content store, through the same runners
 * serving uses.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import type { ExecutionPlan, ModelEntry } from '../../src/interfaces/index.ts'
import { DeviceUnavailableError } from '../../src/errors.ts'
import { placement, planCandidates, planModel } from '../../hardware/index.ts'
import type { GpuInfo } from '../../hardware/index.ts'
import { parseNvidiaQuery } from '../../hardware/nvidia.ts'
import { configSchema } from '../../src/config/schema.ts'
import type { ConfigInput } from '../../src/config/schema.ts'
import { loadCatalog } from '../../src/models/catalog.ts'
import { calibrate } from '../../src/node/calibrate.ts'
import type { CandidateFigure } from '../../src/node/calibrate.ts'
import { ensureModel, storedDtypes } from '../../src/node/served-models.ts'
import { ModelQueue } from '../../src/scheduler/model-queue.ts'
import { embedSkillset } from '../../skillsets/embed/index.ts'
import { standInSkillset } from '../../skillsets/stand-in/index.ts'
import type { Logger } from '../../src/logger.ts'
import type { ContentStore } from '../../src/store/content-store.ts'
import type { StoredModelLocation } from '../../src/store/models/model-store.ts'
import { baseProfile, fixture, withProviders } from '../fixtures/hardware/fakes.ts'
import { startStore, tempDir } from '../helpers/store-fixtures.ts'

const minilm: ModelEntry = { id: 'Xenova/all-MiniLM-L6-v2', skillset: 'embed', source: { kind: 'hub', repo: 'Xenova/all-MiniLM-L6-v2' }, dtypes: ['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4'], sizeMB: 90 }
const label = (p: ExecutionPlan): string => `${p.device} ${p.dtype}`

function gpus (csv: string): GpuInfo[] {
  return parseNvidiaQuery(fixture(csv)).map((g, i) => ({ ...g, cudaOrdinal: i, cudaVersion: '12.4' }))
}
const nvidiaOk = { probe: 'nvidia-smi', status: 'ok' as const, reason: 'GPUs found', ms: 1 }

/** A logger that keeps its lines. */
function recorder (): Logger & { lines: string[] } {
  const lines: string[] = []
  const logger: Logger & { lines: string[] } = {
    lines,
    error: (m) => { lines.push(`error ${m}`) },
    warn: (m) => { lines.push(`warn ${m}`) },
    info: (m) => { lines.push(`info ${m}`) },
    debug: (m) => { lines.push(`debug ${m}`) },
    child: () => logger
  }
  return logger
}

// ---- candidates -------------------------------------------------------------

test('candidates on a CUDA + WebGPU host: every usable provider × sensible dtype, the fixed-order default first', () => {
  const profile = baseProfile({ gpus: gpus('nvidia-smi-h100.csv'), providers: withProviders(['cuda', 'webgpu']), probes: [nvidiaOk] })
  const c = planCandidates(minilm, profile)
  // The hub export's quantized files are dynamically quantized: batch-dependent, so not candidates by default.
  assert.deepEqual(c.map(label), ['cuda:0 fp16', 'cuda:0 fp32', 'webgpu fp32', 'webgpu fp16', 'cpu fp32'])
  assert.deepEqual(c[0], planModel(minilm, profile), 'the first candidate is the unmeasured default')
  assert.ok(c.every((p) => p.provider !== 'tensorrt'))
  assert.ok(c.every((p) => p.fallbacks.length === 0), 'no provider preferred over any candidate is unusable')
  assert.match(c[4]?.reasons[0] ?? '', /provider cpu: also usable here, a candidate measured at start-up/)
  assert.match(c[4]?.reasons.join('\n') ?? '', /dtype fp32: .*q8, int8, uint8, q4 left out: results would depend on batch-mates \(dynamic quantization\); --dtype q8 opts in/)
  assert.ok(c.every((p) => p.reproducible === true))
  assert.equal(c[1]?.gpuIndex, 0)
})

test('candidates on a CPU-only host: the batch-independent dtypes offered, each with the unusable GPU providers as fallbacks', () => {
  const demo = { ...minilm, dtypes: ['fp32', 'int8', 'q8'], reproducibleDtypes: ['fp32', 'int8'] } satisfies ModelEntry
  const c = planCandidates(demo, baseProfile())
  assert.deepEqual(c.map(label), ['cpu int8', 'cpu fp32'])
  for (const p of c) assert.deepEqual(p.fallbacks.map((f) => f.provider), ['cuda', 'webgpu'])
  assert.match(c[1]?.reasons.join('\n') ?? '', /dtype fp32: also offered by the model, a candidate to measure against int8/)
  // A CPU without int8 instructions still measures int8: the figure decides, not the flags.
  const old = planCandidates(demo, baseProfile({ cpu: { ...baseProfile().cpu, flags: ['sse4_2', 'avx'] } }))
  assert.deepEqual(old.map(label), ['cpu fp32', 'cpu int8'])
  assert.deepEqual(planCandidates(minilm, baseProfile()).map(label), ['cpu fp32'])
  assert.deepEqual(planCandidates({ ...minilm, dtypes: ['fp32'] }, baseProfile()).map(label), ['cpu fp32'])
})

test('--device and --dtype are hard constraints on the candidates', () => {
  const profile = baseProfile({ gpus: gpus('nvidia-smi-h100.csv'), providers: withProviders(['cuda', 'webgpu']), probes: [nvidiaOk] })
  assert.deepEqual(planCandidates(minilm, profile, { device: 'cpu' }).map(label), ['cpu fp32'])
  assert.deepEqual(planCandidates(minilm, profile, { device: 'cpu', dtype: 'q8' }).map(label), ['cpu q8'])
  assert.deepEqual(planCandidates(minilm, profile, { device: 'cuda' }).map(label), ['cuda:0 fp16', 'cuda:0 fp32'])
  assert.deepEqual(planCandidates(minilm, profile, { dtype: 'fp32' }).map(label), ['cuda:0 fp32', 'webgpu fp32', 'cpu fp32'])
  const one = planCandidates(minilm, profile, { device: 'cpu', dtype: 'fp32' })
  assert.deepEqual(one.map(label), ['cpu fp32'])
  assert.match(one[0]?.reasons.join('\n') ?? '', /dtype fp32: set by configuration/)
  assert.match(one[0]?.reasons[0] ?? '', /forced by device "cpu"/)
  assert.throws(() => planCandidates(minilm, profile, { dtype: 'q4f16' }), { code: 'ERR_CONFIG', message: /not offered by Xenova\/all-MiniLM-L6-v2/ })
  assert.throws(() => planCandidates(minilm, baseProfile(), { device: 'webgpu' }), DeviceUnavailableError)
})

test('placement: each placed model takes its GPU memory off the next one\'s candidates', () => {
  const mid: ModelEntry = { id: 'mid/lm-30b', skillset: 'lm', source: { kind: 'hub', repo: 'mid/lm-30b' }, dtypes: ['fp16', 'fp32'], sizeMB: 100_000 }
  const profile = baseProfile({ gpus: gpus('nvidia-smi-h100.csv'), providers: withProviders(['cuda']), probes: [nvidiaOk] })
  const place = placement(profile)
  const a = place.candidates(mid)
  assert.deepEqual(a.map(label), ['cuda:0 fp16', 'cpu fp32'], 'fp32 (~125 GB) fits no GPU')
  place.place(mid, a[0] as ExecutionPlan)
  const b = place.candidates({ ...mid, id: 'mid/lm-30b-2' })
  assert.equal(b[0]?.provider, 'cpu', 'the GPU is full now')
  assert.match(b[0]?.fallbacks.find((f) => f.provider === 'cuda')?.reason ?? '', /no GPU has enough free memory/)
})

// ---- measuring on the tiny model ----------------------------------------------

let root: string
let store: ContentStore
let location: StoredModelLocation
let tiny: ModelEntry

before(async () => {
  root = await tempDir('ia-calibrate-')
  store = await startStore(root)
  tiny = (await loadCatalog()).get('demo/tiny-random')
  location = await ensureModel(tiny, { models: store.models, dataDir: root, peers: [], dtype: 'fp32', log: recorder() })
})

after(async () => {
  await store?.stop()
})

const config = (over: ConfigInput = {}): ReturnType<typeof configSchema.parse> => configSchema.parse({ dataDir: root, ...over })

test('tiny model on the CPU, int8 and fp32 candidates (q8 is batch-dependent, not one): one device, so only int8, its first dtype, is measured, and its loaded runner serves', { timeout: 120_000 }, async () => {
  assert.deepEqual(storedDtypes(location).sort(), ['fp32', 'int8', 'q8'])
  const candidates = planCandidates(tiny, baseProfile({ cpu: { ...baseProfile().cpu, cores: { physical: 1, logical: 1 } } }))
  assert.deepEqual(candidates.map(label), ['cpu int8', 'cpu fp32'])
  const log = recorder()
  const t0 = performance.now()
  const cal = await calibrate(tiny, candidates, location, config(), log, { batchCost: 16 })
  const ms = performance.now() - t0
  assert.equal(cal.skipped, undefined)
  assert.deepEqual(cal.figures.map((f) => label(f.plan)), ['cpu int8', 'cpu fp32'])
  const [int8, fp32] = cal.figures as [CandidateFigure, CandidateFigure]
  assert.equal(int8.error, undefined, int8.error)
  assert.ok(int8.itemsPerSecond !== undefined && int8.itemsPerSecond > 0, `cpu int8: ${int8.itemsPerSecond}`)
  assert.ok(int8.batches >= 1 && int8.batches <= 3)
  // fp32 would never serve on this device while int8 runs: it is not loaded at all.
  assert.deepEqual(fp32, { plan: candidates[1], batches: 0, skipped: true })
  assert.equal(log.lines.filter((l) => l.startsWith('debug demo/tiny-random: cpu')).length, 1, `one candidate loaded and run:\n${log.lines.join('\n')}`)
  assert.equal(cal.plan.dtype, 'int8')
  assert.equal(cal.itemsPerSecond, int8.itemsPerSecond)
  assert.match(cal.plan.reasons.at(-1) ?? '', /^measured at start-up \(16 items a batch, .*each device on its first dtype that runs\): cpu int8 [\d.]+ items\/s; not measured \(an earlier dtype ran on that device and would serve there\): cpu fp32; the fastest device, cpu, serves cpu int8 \(also first in the fixed order\)/)
  const lines = log.lines.filter((l) => l.startsWith('info demo/tiny-random: measured'))
  assert.equal(lines.length, 1, log.lines.join('\n'))
  assert.match(lines[0] ?? '', /serving cpu int8$/)
  assert.ok(ms < 3000 + 30_000, `calibration took ${Math.round(ms)} ms`)
  // The measured runner is handed over, not loaded again.
  const runner = cal.runner
  assert.ok(runner !== undefined, 'the served plan\'s runner is handed to serving')
  try {
    assert.equal(runner.ready, true)
    const input = embedSkillset.parseInput(embedSkillset.sampleInput!(4))
    const r = await runner.run([input])
    assert.equal(r.outputs.length, 1, 'the handed runner still runs batches')
  } finally {
    await runner.stop()
  }

  // The figure seeds the queue's throughput until jobs have run.
  const q = new ModelQueue({ modelId: tiny.id, skillset: embedSkillset, runners: [], maxBatchCost: 16, maxQueuedJobs: 1, initialThroughput: cal.itemsPerSecond, log })
  assert.equal(q.throughput, cal.itemsPerSecond)
  assert.ok(q.estimateMs(16) !== undefined)
})

test('two devices: each is measured on its first dtype only, the faster serves, and the first device\'s runner is handed over when it wins', { timeout: 120_000 }, async () => {
  // A second "device" that runs on the CPU provider too (the runner builds its session from the provider; the device is the plan's label).
  const [int8, fp32] = planCandidates(tiny, baseProfile({ cpu: { ...baseProfile().cpu, cores: { physical: 1, logical: 1 } } })) as [ExecutionPlan, ExecutionPlan]
  const other = (p: ExecutionPlan): ExecutionPlan => ({ ...p, device: 'cuda:0' })
  const candidates = [other(int8), other(fp32), int8, fp32]
  const log = recorder()
  const cal = await calibrate(tiny, candidates, location, config(), log, { batchCost: 8, timedBatches: 2 })
  try {
    assert.deepEqual(cal.figures.map((f) => f.skipped === true ? 'skipped' : f.itemsPerSecond !== undefined ? 'ran' : 'failed'), ['ran', 'skipped', 'ran', 'skipped'])
    const [a, , b] = cal.figures as [CandidateFigure, CandidateFigure, CandidateFigure]
    const winner = a.itemsPerSecond! >= b.itemsPerSecond! ? a : b
    assert.equal(cal.plan.device, winner.plan.device)
    assert.equal(cal.plan.dtype, 'int8')
    assert.equal(cal.itemsPerSecond, winner.itemsPerSecond)
    assert.deepEqual(log.lines.filter((l) => l.startsWith('debug demo/tiny-random: c')).map((l) => l.split(' ').slice(2, 4).join(' ')), ['cpu int8', 'cuda:0 int8'], `two candidates loaded and run, the last device first:\n${log.lines.join('\n')}`)
    // cuda:0 is first in the fixed order, so it ran last: its runner is handed over exactly when it serves.
    assert.equal(cal.runner !== undefined, winner === a)
  } finally {
    await cal.runner?.stop()
  }
})

test('nothing measured: a forced dtype (one candidate), calibrate off, an in-process skillset, weights not in the store', async () => {
  const profile = baseProfile()
  const forced = planCandidates(tiny, profile, { dtype: 'fp32' })
  const one = await calibrate(tiny, forced, location, config(), recorder())
  assert.equal(one.skipped, 'only one candidate plan')
  assert.equal(one.plan, forced[0])
  assert.equal(one.itemsPerSecond, undefined)
  assert.deepEqual(one.figures, [])

  const both = planCandidates(tiny, profile)
  assert.equal((await calibrate(tiny, both, location, config({ scheduler: { calibrate: false } }), recorder())).skipped, 'scheduler.calibrate is off')
  assert.equal((await calibrate(tiny, both, location, config({ scheduler: { calibrate: false } }), recorder())).plan, both[0])

  const standIn = (await loadCatalog()).get('demo/stand-in')
  assert.equal(standInSkillset.inProcess, true)
  const s = await calibrate(standIn, planCandidates({ ...standIn, dtypes: ['fp32', 'q8'] }, profile), location, config(), recorder())
  assert.match(s.skipped ?? '', /in-process/)

  // A hub download holds only the planned dtype: the other is not measured.
  const fp32Only = { ...location, files: location.files.filter((f) => f.path === 'onnx/model.onnx' || !f.path.startsWith('onnx/')) }
  const held = await calibrate(tiny, both, fp32Only, config(), recorder())
  assert.equal(held.skipped, 'only one candidate has its weights in the store')
  assert.equal(held.plan.dtype, 'fp32')
})

test('a candidate that cannot load is reported and left out; when none runs, start-up fails with each reason', { timeout: 120_000 }, async () => {
  const [int8, fp32] = planCandidates(tiny, baseProfile({ cpu: { ...baseProfile().cpu, cores: { physical: 1, logical: 1 } } })) as [ExecutionPlan, ExecutionPlan]
  const broken: ExecutionPlan = { ...int8, device: 'webgpu', provider: 'webgpu' }
  const log = recorder()
  const cal = await calibrate(tiny, [broken, fp32], location, config(), log, { batchCost: 8, timedBatches: 1 })
  assert.equal(cal.plan.dtype, 'fp32')
  assert.equal(cal.plan.provider, 'cpu')
  assert.ok(cal.figures[0]?.error !== undefined, 'webgpu has no adapter here')
  assert.match(cal.plan.reasons.at(-1) ?? '', /webgpu int8 failed \(/)
  assert.match(cal.plan.reasons.at(-1) ?? '', /the fixed order would have chosen webgpu int8/)
  // fp32 ran first (the candidates run last to first) and was stopped then: serving loads its own.
  assert.equal(cal.runner, undefined)
  await assert.rejects(calibrate(tiny, [broken, { ...broken, dtype: 'fp32' }], location, config(), recorder(), { batchCost: 8 }), { code: 'ERR_MODEL_LOAD', message: /ran on none of its candidate plans: webgpu int8 failed .*; webgpu fp32 failed/ })
})
