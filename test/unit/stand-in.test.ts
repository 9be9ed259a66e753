/**
 * The stand-in skillset: input limits, a checkable digest per job, run time
 * from the timer settings, fail and hang through a ModelQueue on a
 * LocalRunner, and its generated model (same CID on every host) served by
 * startServedModel without a worker thread.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createStandInSkillset, standInDigest, standInSkillset, StandInRunner } from '../../skillsets/stand-in/index.ts'
import type { StandInInput, StandInOutput } from '../../skillsets/stand-in/index.ts'
import { getSkillset } from '../../skillsets/index.ts'
import { LocalRunner } from '../../src/scheduler/local-runner.ts'
import { ModelQueue } from '../../src/scheduler/model-queue.ts'
import type { ModelQueueInit } from '../../src/scheduler/model-queue.ts'
import type { ExecutionPlan, ModelEntry, Skillset } from '../../src/interfaces/index.ts'
import { configSchema } from '../../src/config/schema.ts'
import { loadCatalog } from '../../src/models/catalog.ts'
import { ensureGeneratedModel, standInFiles } from '../../src/models/generate/index.ts'
import { ensureModel, startServedModel } from '../../src/node/served-models.ts'
import { SKILLSET_NAMES } from '../../src/interfaces/index.ts'
import { forComponent } from '../../src/logger.ts'
import { startStore, tempDir } from '../helpers/store-fixtures.ts'

const log = forComponent('test')
const plan: ExecutionPlan = { modelId: 'demo/stand-in', device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] }
const model = { id: 'demo/stand-in', localModelPath: '/nonexistent' }

test('parseInput: bounded, strict, typed errors', () => {
  const p = standInSkillset.parseInput
  assert.deepEqual(p({ items: 3 }), { items: 3 })
  assert.deepEqual(p({ items: 1024, tag: 'x'.repeat(200), hang: false, fail: false }), { items: 1024, tag: 'x'.repeat(200), hang: false, fail: false })
  assert.throws(() => p({ items: 1025 }), { code: 'ERR_INPUT_TOO_LARGE' })
  assert.throws(() => p({ items: 1, tag: 'x'.repeat(201) }), { code: 'ERR_INPUT_TOO_LARGE' })
  for (const bad of [{ items: 0 }, { items: 1.5 }, { items: '2' }, {}, { items: 1, extra: 1 }, { items: 1, hang: 'yes' }, null, [1]]) {
    assert.throws(() => p(bad), { code: 'ERR_INVALID_INPUT' }, JSON.stringify(bad))
  }
  assert.equal(standInSkillset.cost({ items: 7 }), 7)
  assert.equal(standInSkillset.batchKey({ items: 1, tag: 'a' }), standInSkillset.batchKey({ items: 9, fail: true }))
  assert.equal(standInSkillset.inProcess, true)
  assert.equal(getSkillset('stand-in'), standInSkillset)
  assert.ok(SKILLSET_NAMES.includes('stand-in'))
})

test('digest: sha256 of the canonical JSON, independent of key order; wire form round-trips and is checked', () => {
  const a = standInSkillset.parseInput({ tag: 'hello', items: 2 })
  const b = standInSkillset.parseInput({ items: 2, tag: 'hello' })
  const expected = new Uint8Array(createHash('sha256').update('{"items":2,"tag":"hello"}').digest())
  assert.deepEqual(standInDigest(a), expected)
  assert.deepEqual(standInDigest(b), expected)
  assert.notDeepEqual(standInDigest({ items: 2, tag: 'hellp' }), expected)
  assert.notDeepEqual(standInDigest({ items: 3, tag: 'hello' }), expected)
  const wire = standInSkillset.encodeOutput({ digest: expected })
  assert.deepEqual(standInSkillset.decodeOutput(wire).digest, expected)
  assert.throws(() => standInSkillset.decodeOutput({ digest: new Uint8Array(31) }), { code: 'ERR_PROTOCOL' })
  assert.throws(() => standInSkillset.decodeOutput({ digest: 'ab' }), { code: 'ERR_PROTOCOL' })
  assert.throws(() => standInSkillset.decodeOutput({ digest: expected, more: 1 }), { code: 'ERR_PROTOCOL' })
  assert.throws(() => standInSkillset.encodeOutput({ digest: new Uint8Array(5) }), { code: 'ERR_PROTOCOL' })
})

async function timeRun (runner: StandInRunner, inputs: StandInInput[]): Promise<{ ms: number, outputs: StandInOutput[] }> {
  const t0 = performance.now()
  const outputs = await runner.run(inputs)
  return { ms: performance.now() - t0, outputs }
}

test('run time is msPerItem × slowdown × items, on a timer; each output is its input digest', async () => {
  const inputs = [{ items: 10 }, { items: 10, tag: 'b' }]
  const fast = await timeRun(new StandInRunner({ msPerItem: 2, slowdown: 1, failRate: 0 }), inputs)
  const slow = await timeRun(new StandInRunner({ msPerItem: 2, slowdown: 10, failRate: 0 }), inputs)
  assert.ok(fast.ms >= 39, `fast batch took ${fast.ms} ms, expected 40`)
  assert.ok(slow.ms >= 399, `slow batch took ${slow.ms} ms, expected 400`)
  assert.ok(slow.ms > fast.ms * 2, 'slowdown scales the run time')
  assert.deepEqual(fast.outputs.map((o) => o.digest), inputs.map(standInDigest))
})

test('settings come from the node config block standIn, with defaults; bad ones are a ConfigError', async () => {
  const cfg = configSchema.parse({})
  assert.deepEqual(cfg.standIn, { msPerItem: 1, slowdown: 1, failRate: 0 })
  assert.equal(cfg.scheduler.maxQueuedCost, 4096)
  assert.equal(cfg.scheduler.stallMinMs, 30_000)
  assert.throws(() => configSchema.parse({ standIn: { failRate: 2 } }))
  const runner = await standInSkillset.load(model, plan, { nodeConfig: { standIn: { msPerItem: 5, slowdown: 2 } } }) as StandInRunner
  assert.equal(runner.batchMs(3), 30)
  await assert.rejects(standInSkillset.load(model, plan, { nodeConfig: { standIn: { msPerItem: -1 } } }), { code: 'ERR_CONFIG' })
})

async function standInQueue (settings: Record<string, number>, init: Partial<ModelQueueInit> = {}, skillset: Skillset = standInSkillset as Skillset): Promise<{ q: ModelQueue, runner: LocalRunner }> {
  const runner = new LocalRunner({ skillset, model, plan, loadOptions: { nodeConfig: { standIn: settings } }, log })
  await runner.start()
  const q = new ModelQueue({ modelId: 'demo/stand-in', skillset, runners: [runner], maxBatchCost: 4096, maxQueuedJobs: 100, log, ...init })
  return { q, runner }
}

const later = (): { deadline: number } => ({ deadline: performance.now() + 10_000 })

test('through a queue on a LocalRunner: batches answer each job with its own digest', async () => {
  const { q, runner } = await standInQueue({ msPerItem: 1 })
  const inputs = Array.from({ length: 12 }, (_, i) => ({ items: 1 + (i % 3), tag: `job-${i}` }))
  const outs = await Promise.all(inputs.map(async (i) => await q.submit(i, later())))
  outs.forEach((o, i) => { assert.deepEqual((o.output as StandInOutput).digest, standInDigest(inputs[i]!), `job ${i}`) })
  assert.ok(outs.some((o) => o.batchSize > 1), 'jobs were batched')
  assert.ok(q.throughput !== undefined)
  await runner.stop()
  assert.equal(runner.ready, false)
})

test('fail: true fails its whole batch with ERR_INFERENCE; failRate fails batches at random', async () => {
  const { q, runner } = await standInQueue({ msPerItem: 0 })
  await assert.rejects(q.submit({ items: 1, fail: true }, later()), { code: 'ERR_INFERENCE', message: /fail: true/ })
  assert.equal(q.stats.failedBatches, 1)
  assert.ok((await q.submit({ items: 1 }, later())).output !== undefined)
  await runner.stop()

  const sometimes = createStandInSkillset({ random: () => 0.3 }) as Skillset
  const low = await standInQueue({ msPerItem: 0, failRate: 0.2 }, {}, sometimes)
  assert.ok((await low.q.submit({ items: 1 }, later())).output !== undefined, '0.3 is not below failRate 0.2')
  await low.runner.stop()
  const high = await standInQueue({ msPerItem: 0, failRate: 0.5 }, {}, sometimes)
  await assert.rejects(high.q.submit({ items: 1 }, later()), { code: 'ERR_INFERENCE', message: /failRate/ })
  await high.runner.stop()
})

test('hang: true stalls its batch; the watchdog restarts the LocalRunner and the next job runs', { timeout: 5000 }, async () => {
  const events: boolean[] = []
  const { q, runner } = await standInQueue({ msPerItem: 1 }, { stallMinMs: 80, onReadyChange: (r) => { events.push(r) } })
  const hung = q.submit({ items: 1, hang: true }, later())
  const next = q.submit({ items: 2, tag: 'after' }, later())
  await assert.rejects(hung, { code: 'ERR_INFERENCE_STALLED' })
  assert.deepEqual((await next).output, { digest: standInDigest({ items: 2, tag: 'after' }) })
  assert.equal(runner.stats.restarts, 1)
  assert.deepEqual(events, [false, true])
  assert.deepEqual(q.stats, { batches: 2, failedBatches: 0, stalls: 1, restarts: 1 })
  await runner.stop()
})

test('demo/stand-in: in the catalog, generated deterministically, imported with the same CID everywhere, served in-process', { timeout: 30_000 }, async () => {
  const catalog = await loadCatalog()
  const entry: ModelEntry = catalog.get('demo/stand-in')
  assert.equal(entry.skillset, 'stand-in')
  assert.notEqual(entry.offlineDefault, true)
  assert.equal(catalog.offlineDefault('stand-in'), undefined)

  assert.deepEqual(standInFiles(1), standInFiles(1))
  assert.notDeepEqual(standInFiles(1).get('config.json'), standInFiles(2).get('config.json'))
  const root = await tempDir()
  const dir = await ensureGeneratedModel(entry, join(root, 'models'))
  assert.deepEqual(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')), { model_type: 'stand-in', seed: 1 })
  assert.ok((await readFile(join(dir, 'onnx/model.onnx'))).byteLength > 0)

  const a = await startStore(join(root, 'a'))
  const b = await startStore(join(root, 'b'))
  try {
    const ctx = { dataDir: root, peers: [], dtype: 'fp32' as const, log }
    const locA = await ensureModel(entry, { ...ctx, models: a.models, dataDir: join(root, 'a') })
    const locB = await ensureModel(entry, { ...ctx, models: b.models, dataDir: join(root, 'b') })
    assert.equal(locA.cid, locB.cid, 'every host generates the same CID')
    assert.ok(locA.files.some((f) => f.path === 'onnx/model.onnx'))
    assert.equal((await ensureModel(entry, { ...ctx, models: a.models, dataDir: join(root, 'a') })).cid, locA.cid, 'already there: found again')

    const config = configSchema.parse({ dataDir: join(root, 'a'), models: ['demo/stand-in'], standIn: { msPerItem: 0.5 }, scheduler: { threadsPerModel: 2 } })
    const readiness: boolean[] = []
    const served = await startServedModel(entry, plan, locA, config, log, { onReadyChange: (r) => { readiness.push(r) } })
    try {
      assert.ok(served.threads.every((t) => t instanceof LocalRunner), 'an inProcess skillset gets LocalRunners, no worker thread')
      assert.equal(served.threads.length, 2)
      const input = served.skillset.parseInput({ items: 4, tag: 'served' })
      assert.ok(served.queue instanceof ModelQueue)
      const out = await served.queue.submit(input, later())
      const wire = served.skillset.encodeOutput(out.output)
      assert.deepEqual(served.skillset.decodeOutput(wire), { digest: standInDigest({ items: 4, tag: 'served' }) })
      assert.equal(served.queue.admits(4096), true)
      assert.equal(served.queue.admits(4097), false, 'scheduler.maxQueuedCost reached the queue')
    } finally {
      await Promise.all(served.threads.map(async (t) => { await t.stop() }))
    }
    assert.deepEqual(readiness, [false], 'stopping the last runner is reported')
  } finally {
    await a.stop()
    await b.stop()
  }
})
