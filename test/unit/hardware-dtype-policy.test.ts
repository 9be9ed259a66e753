/**
 * Reproducible by default, and the u8s8 guard: which dtypes the planner may
 * pick without --dtype, what a batch-dependent opt-in says, and the session
 * config entry quantized CPU plans get on x86 without VNNI (down to the
 * options the embed runner hands transformers.js / onnxruntime-node).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ModelEntry } from '../../src/interfaces/index.ts'
import { planCandidates, planModel, quantSessionConfig, reproducibleDtypes, X64_QUANT_PRECISION_KEY } from '../../hardware/index.ts'
import type { HardwareProfile } from '../../hardware/index.ts'
import { parseCpuinfo } from '../../hardware/cpu.ts'
import { loadCatalog, parseCatalog } from '../../src/models/catalog.ts'
import { extraOptions, pipelineOptions } from '../../skillsets/embed/runner.ts'
import { baseProfile, fixture } from '../fixtures/hardware/fakes.ts'

const hub: ModelEntry = { id: 'Xenova/all-MiniLM-L6-v2', skillset: 'embed', source: { kind: 'hub', repo: 'Xenova/all-MiniLM-L6-v2' }, dtypes: ['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4'], sizeMB: 90 }

/** A profile whose CPU is the one of a /proc/cpuinfo fixture. */
function fromCpuinfo (name: string, arch = 'x64'): HardwareProfile {
  const facts = parseCpuinfo(fixture(name))
  return baseProfile({ arch, cpu: { ...baseProfile().cpu, arch, flags: facts.flags, allFlags: facts.allFlags } })
}

test('the default plan on a VNNI CPU (recorded cpuinfo) is a reproducible dtype: static int8 for the demo models, fp32 for a hub export', async () => {
  const catalog = await loadCatalog()
  const vnni = fromCpuinfo('cpuinfo-x86-avx512.txt')
  for (const id of ['demo/tiny-random', 'demo/minilm-random']) {
    const entry = catalog.get(id)
    const plan = planModel(entry, vnni)
    assert.equal(plan.dtype, 'int8', plan.reasons.join('; '))
    assert.equal(plan.reproducible, true)
    assert.ok(reproducibleDtypes(entry).includes(plan.dtype))
    assert.match(plan.reasons.join('\n'), /int8 \(8-bit weights with fixed activation scales, batch-independent\)/)
    assert.match(plan.reasons.join('\n'), /q8 left out: results would depend on batch-mates/)
    // Every candidate calibration may choose from is reproducible: measuring cannot pick q8.
    for (const c of planCandidates(entry, vnni)) assert.equal(c.reproducible, true, `${c.device} ${c.dtype}`)
    assert.equal(plan.sessionConfig, undefined, 'VNNI needs no u8s8 guard')
  }
  const p = planModel(catalog.get('Xenova/all-MiniLM-L6-v2'), vnni)
  assert.equal(p.dtype, 'fp32')
  assert.equal(p.reproducible, true)
})

test('--dtype q8 opts into a batch-dependent dtype, and the plan says why', () => {
  const entry: ModelEntry = { ...hub, id: 'demo/x', dtypes: ['fp32', 'int8', 'q8'], reproducibleDtypes: ['fp32', 'int8'] }
  const plan = planModel(entry, baseProfile(), { dtype: 'q8' })
  assert.equal(plan.dtype, 'q8')
  assert.equal(plan.reproducible, false)
  assert.match(plan.reasons.join('\n'), /dtype q8: set by configuration \(--dtype\); demo\/x q8 depends on batch-mates \(the catalog lists only fp32, int8 as reproducible\): dynamic quantization/)
  const hubQ8 = planModel(hub, baseProfile(), { dtype: 'q8' })
  assert.match(hubQ8.reasons.join('\n'), /hub exports are dynamically quantized/)
})

test('a model with no batch-independent dtype still runs, and its plan says its results depend on batch-mates', () => {
  const plan = planModel({ ...hub, dtypes: ['q8'], reproducibleDtypes: [] }, baseProfile())
  assert.equal(plan.dtype, 'q8')
  assert.equal(plan.reproducible, false)
  assert.match(plan.reasons.join('\n'), /none of the dtypes it offers is batch-independent/)
})

test('u8s8 guard: quantized CPU plans on x86 with AVX2 but no VNNI set session.x64quantprecision; VNNI, ARM and fp32 do not', () => {
  const avx2 = fromCpuinfo('cpuinfo-x86-avx2.txt')
  const demo: ModelEntry = { ...hub, id: 'demo/x', dtypes: ['fp32', 'int8', 'q8'], reproducibleDtypes: ['fp32', 'int8'] }
  const [int8, fp32] = planCandidates(demo, avx2)
  assert.equal(int8?.dtype, 'int8')
  assert.deepEqual(int8?.sessionConfig, { [X64_QUANT_PRECISION_KEY]: '1' })
  assert.equal(X64_QUANT_PRECISION_KEY, 'session.x64quantprecision')
  assert.match(int8?.reasons.join('\n') ?? '', /session\.x64quantprecision=1: the CPU has AVX2 without VNNI, where ONNX Runtime's u8 x s8 int8 kernels can saturate/)
  assert.equal(fp32?.dtype, 'fp32')
  assert.equal(fp32?.sessionConfig, undefined, 'fp32 runs no integer kernels')
  assert.deepEqual(planModel(demo, avx2, { dtype: 'q8' }).sessionConfig, { [X64_QUANT_PRECISION_KEY]: '1' }, 'a forced q8 gets it too')

  assert.equal(planModel(demo, fromCpuinfo('cpuinfo-x86-avx512.txt')).sessionConfig, undefined)
  assert.equal(planModel(demo, fromCpuinfo('cpuinfo-arm64-graviton3.txt', 'arm64')).sessionConfig, undefined, 'ARM has no such kernels')
  // AVX-512 without VNNI (Skylake-SP) saturates too; so does a pre-AVX2 x86 with a forced q8.
  assert.match(quantSessionConfig({ arch: 'x64', flags: ['avx2', 'avx512f', 'avx512bw'] }, 'int8')?.reason ?? '', /AVX-512 without VNNI/)
  assert.ok(quantSessionConfig({ arch: 'x64', flags: ['sse4_2', 'avx'] }, 'q8') !== undefined)
  assert.equal(quantSessionConfig({ arch: 'x64', flags: ['avx2', 'avx_vnni'] }, 'int8'), undefined)
})

test('the runner hands the guard to onnxruntime-node as sessionOptions.extra, next to the spinning settings', () => {
  const demo: ModelEntry = { ...hub, id: 'demo/x', dtypes: ['fp32', 'int8'], reproducibleDtypes: ['fp32', 'int8'] }
  const plan = planModel(demo, fromCpuinfo('cpuinfo-x86-avx2.txt'))
  const opts = pipelineOptions(plan) as { dtype: string, device: string, session_options: { extra: unknown } }
  assert.equal(opts.dtype, 'int8')
  assert.equal(opts.device, 'cpu')
  assert.deepEqual(opts.session_options.extra, { session: { x64quantprecision: '1', intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } })
  const vnni = pipelineOptions(planModel(demo, baseProfile())) as { session_options: { extra: unknown } }
  assert.deepEqual(vnni.session_options.extra, { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } })
  assert.deepEqual(extraOptions({ 'a.b.c': '1', 'a.d': '2' }), { a: { b: { c: '1' }, d: '2' } })
})

test('models.json: reproducibleDtypes must be among the dtypes', () => {
  const entry = { id: 'x/y', skillset: 'embed', source: { kind: 'hub', repo: 'x/y' }, dtypes: ['fp32', 'q8'], sizeMB: 1 }
  assert.deepEqual(reproducibleDtypes(parseCatalog({ version: 1, models: [entry] }, 'test').get('x/y')), ['fp32'], 'absent: the float ones')
  assert.throws(() => parseCatalog({ version: 1, models: [{ ...entry, reproducibleDtypes: ['int8'] }] }, 'test'), { code: 'ERR_CONFIG', message: /reproducibleDtypes: int8 not among the model's dtypes/ })
})
