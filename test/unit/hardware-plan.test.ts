import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ModelEntry } from '../../src/interfaces/index.ts'
import { DeviceUnavailableError } from '../../src/errors.ts'
import type { Logger } from '../../src/logger.ts'
import { estimateGpuMemoryMB, parseDeviceSpec, planAll, planModel, summarizeHardware } from '../../hardware/index.ts'
import type { GpuInfo, HardwareProfile } from '../../hardware/index.ts'
import { parseNvidiaQuery } from '../../hardware/nvidia.ts'
import { parseRocmJson } from '../../hardware/rocm.ts'
import { parseCpuinfo } from '../../hardware/cpu.ts'
import { baseProfile, fixture, withProviders } from '../fixtures/hardware/fakes.ts'

const minilm: ModelEntry = { id: 'Xenova/all-MiniLM-L6-v2', skillset: 'embed', source: { kind: 'hub', repo: 'Xenova/all-MiniLM-L6-v2' }, dtypes: ['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4'], sizeMB: 90 }
const demo: ModelEntry = { id: 'demo/minilm-random', skillset: 'embed', source: { kind: 'generated', generator: 'bert', size: 'minilm', seed: 42 }, dtypes: ['fp32', 'int8', 'q8'], reproducibleDtypes: ['fp32', 'int8'], sizeMB: 87 }
const big: ModelEntry = { id: 'big/lm-70b', skillset: 'lm', source: { kind: 'hub', repo: 'big/lm-70b' }, dtypes: ['fp32', 'fp16'], sizeMB: 160_000 }
const mid: ModelEntry = { id: 'mid/lm-30b', skillset: 'lm', source: { kind: 'hub', repo: 'mid/lm-30b' }, dtypes: ['fp16'], sizeMB: 60_000 }

function gpus (csv: string): GpuInfo[] {
  return parseNvidiaQuery(fixture(csv)).map((g, i) => ({ ...g, cudaOrdinal: i, cudaVersion: '12.4' }))
}
const nvidiaOk = { probe: 'nvidia-smi', status: 'ok' as const, reason: 'GPUs found', ms: 1 }

test('this kind of host (AVX-512 VNNI, no GPU, no CUDA libraries): CPU, static int8, with reasons for every fallback', () => {
  const p = planModel(demo, baseProfile())
  assert.equal(p.device, 'cpu')
  assert.equal(p.provider, 'cpu')
  assert.equal(p.dtype, 'int8')
  assert.equal(p.reproducible, true)
  assert.equal(p.intraOpThreads, 16)
  assert.equal(p.gpuIndex, undefined)
  assert.match(p.reasons.join('\n'), /AVX-512 VNNI/)
  assert.deepEqual(p.fallbacks.map((f) => f.provider), ['cuda', 'webgpu'])
  assert.match(p.fallbacks[0]?.reason ?? '', /no NVIDIA GPU visible to CUDA: nvidia-smi not found on PATH/)
  assert.match(p.fallbacks[0]?.reason ?? '', /CUDA provider is not usable/)
})

test('GPUs present but no CUDA provider libraries: CPU, and the plan says why CUDA is not used', () => {
  const p = planModel(minilm, baseProfile({ gpus: gpus('nvidia-smi-h100.csv'), probes: [nvidiaOk] }))
  assert.equal(p.provider, 'cpu')
  assert.match(p.fallbacks[0]?.reason ?? '', /nvidia-smi reports 1 NVIDIA GPU, but ONNX Runtime's CUDA provider is not usable: not bundled with onnxruntime-node, and libonnxruntime_providers_cuda\.so is missing/)
})

test('H100 with a working CUDA provider: cuda:0, fp16, tensor cores in the reason', () => {
  const p = planModel(minilm, baseProfile({ gpus: gpus('nvidia-smi-h100.csv'), providers: withProviders(['cuda']), probes: [nvidiaOk] }))
  assert.equal(p.device, 'cuda:0')
  assert.equal(p.provider, 'cuda')
  assert.equal(p.gpuIndex, 0)
  assert.equal(p.dtype, 'fp16')
  assert.match(p.reasons.join('\n'), /tensor cores \(compute capability 9\.0\)/)
  assert.match(p.reasons.join('\n'), /NVIDIA H100 80GB HBM3, GPU-b42dd28e/)
  assert.deepEqual(p.fallbacks, [])
})

test('a model without fp16 runs fp32 on CUDA, and says so', () => {
  const p = planModel(demo, baseProfile({ gpus: gpus('nvidia-smi-rtx4090.csv'), providers: withProviders(['cuda']), probes: [nvidiaOk] }))
  assert.equal(p.provider, 'cuda')
  assert.equal(p.dtype, 'fp32')
  assert.match(p.reasons.join('\n'), /offers no fp16/)
})

test('TensorRT asked for and present: the plan says it runs CUDA (transformers.js has no TensorRT device); absent is a logged fallback', () => {
  const profile = baseProfile({ gpus: gpus('nvidia-smi-h100.csv'), providers: withProviders(['cuda', 'tensorrt']), probes: [nvidiaOk] })
  assert.deepEqual(planModel(minilm, profile).fallbacks, [])
  for (const opts of [{ preferTensorRT: true }, { device: 'tensorrt:0' }]) {
    const p = planModel(minilm, profile, opts)
    assert.equal(p.provider, 'cuda', 'the plan names what runs')
    assert.equal(p.device, 'cuda:0')
    assert.match(p.reasons[0] ?? '', /TensorRT asked for, and its provider works, but transformers\.js, which runs the models, has no TensorRT device: the model runs on CUDA/)
    assert.deepEqual(p.fallbacks.map((f) => f.provider), ['tensorrt'], 'logged once as a fallback')
  }
  const noTrt = baseProfile({ gpus: gpus('nvidia-smi-h100.csv'), providers: withProviders(['cuda']), probes: [nvidiaOk] })
  const p = planModel(minilm, noTrt, { preferTensorRT: true })
  assert.equal(p.provider, 'cuda')
  assert.equal(p.fallbacks[0]?.provider, 'tensorrt')
  // Forced TensorRT never falls back to plain CUDA.
  assert.throws(() => planModel(minilm, noTrt, { device: 'tensorrt' }), (err: Error) => err instanceof DeviceUnavailableError && /TensorRT provider is not usable/.test(err.message))
})

test('two GPUs: the model goes to the one with the most free memory, and the plan says which', () => {
  const two = gpus('nvidia-smi-2x-h100-nvl.csv')
  // The recording has both idle; make GPU 0 busy for this test.
  two[0] = { ...two[0] as GpuInfo, memoryFreeMB: 20_000, memoryUsedMB: 75_235 }
  const profile = baseProfile({ gpus: two, providers: withProviders(['cuda']), probes: [nvidiaOk] })
  const p = planModel(minilm, profile)
  assert.equal(p.device, 'cuda:1')
  assert.equal(p.gpuIndex, 1)
  assert.match(p.reasons.join('\n'), /cuda:1 \(NVIDIA H100 NVL, GPU-db6d02a2-1413-eccf-8a17-d99eac29d365\): 95235 MB free of 95830 MB, the most free of 2 GPUs/)
})

test('planAll spreads models over GPUs as it fills them', () => {
  const profile = baseProfile({ gpus: gpus('nvidia-smi-2x-h100-nvl.csv'), providers: withProviders(['cuda']), probes: [nvidiaOk] })
  const plans = planAll([mid, mid, minilm].map((m, i) => ({ ...m, id: `${m.id}-${i}` })), profile)
  assert.deepEqual(plans.map((p) => p.device), ['cuda:0', 'cuda:1', 'cuda:0'])
})

test('no GPU has room: falls back to CPU with the numbers; forcing cuda then is an error', () => {
  const profile = baseProfile({ gpus: gpus('nvidia-smi-2x-h100-nvl.csv'), providers: withProviders(['cuda']), probes: [nvidiaOk] })
  const p = planModel(big, profile)
  assert.equal(p.provider, 'cpu')
  assert.equal(p.dtype, 'fp32')
  assert.match(p.fallbacks[0]?.reason ?? '', /no GPU has enough free memory: the model needs about 100512 MB.*95235 MB free/)
  // Forced: used anyway when the weights themselves fit (with a warning), an error when they cannot.
  const forced = planModel(big, profile, { device: 'cuda' })
  assert.equal(forced.provider, 'cuda')
  assert.match(forced.reasons.join('\n'), /forced, so used anyway/)
  const huge = { ...big, sizeMB: 400_000 }
  assert.throws(() => planModel(huge, profile, { device: 'cuda' }), DeviceUnavailableError)
})

test('--device cuda:N picks that GPU; an unknown N is an error', () => {
  const profile = baseProfile({ gpus: gpus('nvidia-smi-2x-h100-nvl.csv'), providers: withProviders(['cuda']), probes: [nvidiaOk] })
  assert.equal(planModel(minilm, profile, { device: 'cuda:1' }).device, 'cuda:1')
  assert.throws(() => planModel(minilm, profile, { device: 'cuda:2' }), (err: Error) => err instanceof DeviceUnavailableError && /no CUDA device 2/.test(err.message))
})

test('forcing an unavailable device is a DeviceUnavailableError, never a silent CPU run', () => {
  const profile = baseProfile()
  for (const device of ['cuda', 'cuda:0', 'tensorrt', 'webgpu']) {
    assert.throws(() => planModel(minilm, profile, { device }), (err: Error) => err instanceof DeviceUnavailableError && (err as { code?: string }).code === 'ERR_DEVICE_UNAVAILABLE' && err.message.includes(`device "${device}" was requested`))
  }
  const cpu = planModel(minilm, profile, { device: 'cpu' })
  assert.equal(cpu.provider, 'cpu')
  assert.match(cpu.reasons[0] ?? '', /forced by device "cpu"/)
})

test('forcing cpu on a CUDA host is honoured', () => {
  const profile = baseProfile({ gpus: gpus('nvidia-smi-h100.csv'), providers: withProviders(['cuda']), probes: [nvidiaOk] })
  assert.equal(planModel(minilm, profile, { device: 'cpu' }).provider, 'cpu')
})

test('WebGPU when CUDA is not usable and an adapter works; fp32', () => {
  const p = planModel(minilm, baseProfile({ providers: withProviders(['webgpu']) }))
  assert.equal(p.provider, 'webgpu')
  assert.equal(p.device, 'webgpu')
  assert.equal(p.dtype, 'fp32')
  assert.deepEqual(p.fallbacks.map((f) => f.provider), ['cuda'])
})

test('CPU dtype follows the instruction sets: AVX2-only int8, ARM i8mm int8, no AVX2 fp32', () => {
  const avx2 = parseCpuinfo(fixture('cpuinfo-x86-avx2.txt'))
  const arm = parseCpuinfo(fixture('cpuinfo-arm64-graviton3.txt'))
  const cpu = (flags: string[]): HardwareProfile => baseProfile({ cpu: { ...baseProfile().cpu, flags } })
  assert.equal(planModel(demo, cpu(avx2.flags)).dtype, 'int8')
  assert.match(planModel(demo, cpu(avx2.flags)).reasons.join('\n'), /AVX2 \(avx2\)/)
  assert.equal(planModel(demo, cpu(arm.flags)).dtype, 'int8')
  const old = planModel(demo, cpu(['sse4_2', 'avx']))
  assert.equal(old.dtype, 'fp32')
  assert.match(old.reasons.join('\n'), /neither AVX2 nor VNNI/)
  const fp32only = planModel({ ...minilm, dtypes: ['fp32', 'fp16'] }, cpu(avx2.flags))
  assert.equal(fp32only.dtype, 'fp32')
  assert.match(fp32only.reasons.join('\n'), /offers no 8-bit weights/)
})

test('intra-op threads = physical cores / concurrent sessions, at least 1', () => {
  assert.equal(planModel(minilm, baseProfile(), { concurrentSessions: 4 }).intraOpThreads, 4)
  assert.equal(planModel(minilm, baseProfile(), { concurrentSessions: 3 }).intraOpThreads, 5)
  assert.equal(planModel(minilm, baseProfile(), { concurrentSessions: 64 }).intraOpThreads, 1)
})

test('AMD GPUs are named in the reasons: no ROCm provider in onnxruntime-node', () => {
  const p = planModel(minilm, baseProfile({ gpus: parseRocmJson(fixture('rocm-smi-6-2x-mi210.json')) }))
  assert.equal(p.provider, 'cpu')
  assert.match(p.reasons.join('\n'), /AMD GPUs found \(AMD Instinct MI210, AMD Instinct MI210\), but onnxruntime-node has no ROCm or MIGraphX provider/)
})

test('no working provider at all is an error', () => {
  const broken = baseProfile({ providers: baseProfile().providers.map((p) => ({ ...p, available: false, reason: 'probe child crashed' })) })
  assert.throws(() => planModel(minilm, broken), DeviceUnavailableError)
})

test('each fallback is logged once for all models', () => {
  const lines: string[] = []
  const logger: Logger = { error: () => {}, warn: (m) => { lines.push(m) }, info: () => {}, debug: () => {}, child: () => logger }
  planAll([minilm, demo], baseProfile(), { logger })
  assert.equal(lines.length, 2)
  assert.match(lines[0] ?? '', /^cuda not used: /)
  assert.match(lines[1] ?? '', /^webgpu not used: /)
})

test('parseDeviceSpec validates cpu|cuda|cuda:N|webgpu (and auto, tensorrt[:N], as the config allows)', () => {
  assert.deepEqual(parseDeviceSpec('cpu'), { kind: 'cpu' })
  assert.deepEqual(parseDeviceSpec('CUDA'), { kind: 'cuda' })
  assert.deepEqual(parseDeviceSpec('cuda:3'), { kind: 'cuda', index: 3 })
  assert.deepEqual(parseDeviceSpec('webgpu'), { kind: 'webgpu' })
  assert.deepEqual(parseDeviceSpec('auto'), { kind: 'auto' })
  assert.deepEqual(parseDeviceSpec('tensorrt'), { kind: 'tensorrt' })
  assert.deepEqual(parseDeviceSpec('tensorrt:1'), { kind: 'tensorrt', index: 1 })
  for (const bad of ['gpu', 'cuda:', 'cuda:-1', 'cuda:x', 'cuda:1:2', 'tpu', 'webgpu:0', '']) {
    assert.throws(() => parseDeviceSpec(bad), (err: Error) => (err as { code?: string }).code === 'ERR_CONFIG')
  }
})

test('estimateGpuMemoryMB: fp16 halves the weights, plus headroom', () => {
  assert.equal(estimateGpuMemoryMB(1000, 'fp32'), 1250 + 512)
  assert.equal(estimateGpuMemoryMB(1000, 'fp16'), 625 + 512)
})

test('summarizeHardware: the advert form', () => {
  const profile = baseProfile({ gpus: [...gpus('nvidia-smi-h100.csv'), { vendor: 'intel', index: 0, name: 'Iris Xe', source: 'systeminformation' }] })
  assert.deepEqual(summarizeHardware(profile), {
    cpu: { model: 'Test CPU', physicalCores: 16, logicalCores: 32, flags: ['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512_vnni'] },
    memoryTotalMB: 65536,
    gpus: [
      { vendor: 'nvidia', name: 'NVIDIA H100 80GB HBM3', memoryTotalMB: 81559, memoryFreeMB: 81106 },
      { vendor: 'intel', name: 'Iris Xe', memoryTotalMB: 0 }
    ],
    providers: ['cpu']
  })
})
