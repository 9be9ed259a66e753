/**
 * How each model runs here: device, execution provider, dtype and threads,
 * each with its reason. Preference: CUDA (TensorRT when present and asked
 * for, or forced with --device tensorrt) → WebGPU → CPU. A forced device that cannot be used is an error,
 * never a silent CPU run.
 */
import type { Dtype, ExecutionPlan, ModelEntry, ProviderName } from '../src/interfaces/index.ts'
import { DeviceUnavailableError } from '../src/errors.ts'
import type { Logger } from '../src/logger.ts'
import { int8Capability } from './cpu.ts'
import type { DeviceSpec } from './device.ts'
import { formatDeviceSpec, parseDeviceSpec } from './device.ts'
import type { GpuInfo, HardwareProfile, ProviderStatus } from './types.ts'

export interface PlanOptions {
  /** auto | cpu | cuda | cuda:N | tensorrt | tensorrt:N | webgpu (default auto). */
  device?: string
  /** Sessions that run at the same time on this host's CPU (default 1). */
  concurrentSessions?: number
  /** Use TensorRT instead of plain CUDA where its provider works. */
  preferTensorRT?: boolean
  /**
   * Free GPU memory by CUDA ordinal, for planning several models in turn
   * (planAll keeps it); defaults to what nvidia-smi reported.
   */
  gpuFreeMB?: Map<number, number>
}

/** Weight size relative to fp32. */
const DTYPE_SCALE: Readonly<Record<Dtype, number>> = Object.freeze({ fp32: 1, fp16: 0.5, q8: 0.25, int8: 0.25, uint8: 0.25, q4: 0.16, q4f16: 0.16, bnb4: 0.16 })
/** Activations and workspace on top of the weights, and the CUDA context + ORT arena. */
export const GPU_HEADROOM_FACTOR = 1.25
export const GPU_CONTEXT_MB = 512

/** Estimated GPU memory a model needs in a dtype. */
export function estimateGpuMemoryMB (sizeMB: number, dtype: Dtype): number {
  return Math.ceil(sizeMB * DTYPE_SCALE[dtype] * GPU_HEADROOM_FACTOR) + GPU_CONTEXT_MB
}

interface Choice { dtype: Dtype, reason: string }

function pickDtype (offered: readonly Dtype[], preference: readonly Dtype[]): Dtype {
  return preference.find((d) => offered.includes(d)) ?? offered[0] ?? 'fp32'
}

const GPU_DTYPES: readonly Dtype[] = Object.freeze(['fp16', 'fp32'])

function gpuDtype (entry: ModelEntry, gpu: GpuInfo): Choice {
  const dtype = pickDtype(entry.dtypes, GPU_DTYPES)
  if (dtype === 'fp16') {
    const cc = Number(gpu.computeCapability ?? '0')
    return { dtype, reason: `dtype fp16: the model offers it and CUDA runs fp16 natively${cc >= 7 ? ` on tensor cores (compute capability ${gpu.computeCapability ?? '?'})` : ''}, at half the memory of fp32` }
  }
  return { dtype, reason: `dtype ${dtype}: the model offers no fp16 weights (offers ${entry.dtypes.join(', ')})` }
}

function cpuDtype (entry: ModelEntry, profile: HardwareProfile): Choice {
  const int8 = int8Capability(profile.cpu)
  if (int8 === undefined) {
    const dtype = pickDtype(entry.dtypes, ['fp32'])
    return { dtype, reason: `dtype ${dtype}: the CPU has neither AVX2 nor VNNI (nor ARM dotprod/i8mm), so quantized weights would not run faster` }
  }
  const dtype = pickDtype(entry.dtypes, ['q8', 'int8', 'fp32'])
  if (dtype === 'q8' || dtype === 'int8') {
    return { dtype, reason: `dtype ${dtype}: the CPU has ${int8.description} (${int8.flag}) and the model offers ${dtype} (8-bit quantized) weights` }
  }
  return { dtype, reason: `dtype ${dtype}: the CPU could run int8 (${int8.flag}), but the model offers no q8/int8 weights (offers ${entry.dtypes.join(', ')})` }
}

function webgpuDtype (entry: ModelEntry): Choice {
  const dtype = pickDtype(entry.dtypes, ['fp32'])
  return { dtype, reason: `dtype ${dtype}: WebGPU fp16 needs the adapter's shader-f16 feature, which the probe does not check` }
}

function provider (profile: HardwareProfile, name: ProviderName): ProviderStatus {
  return profile.providers.find((p) => p.name === name) ?? { name, available: false, listed: false, reason: `the ${name} provider was not probed` }
}

function threads (profile: HardwareProfile, sessions: number): { n: number, reason: string } {
  const physical = profile.cpu.cores.physical
  const n = Math.max(1, Math.floor(physical / sessions))
  return { n, reason: `${n} intra-op thread${n === 1 ? '' : 's'}: ${physical} physical core${physical === 1 ? '' : 's'} / ${sessions} concurrent session${sessions === 1 ? '' : 's'}` }
}

function gpuLabel (g: GpuInfo): string {
  return `cuda:${g.cudaOrdinal ?? '?'} (${g.name}${g.uuid === undefined ? '' : `, ${g.uuid}`}${g.cudaOrdinal !== g.index ? `, nvidia-smi GPU ${g.index}` : ''})`
}

type GpuPick = { gpu: GpuInfo, reason: string } | { gpu?: undefined, reason: string }

/** The CUDA-visible NVIDIA GPU with the most free memory that fits, or why there is none. */
function pickGpu (profile: HardwareProfile, needMB: number, weightsMB: number, free: Map<number, number> | undefined, index: number | undefined, forced: boolean): GpuPick {
  let gpus = profile.gpus.filter((g) => g.vendor === 'nvidia' && g.cudaOrdinal !== undefined)
  if (index !== undefined) gpus = gpus.filter((g) => g.cudaOrdinal === index)
  if (gpus.length === 0) {
    const nvidia = profile.probes.find((p) => p.probe === 'nvidia-smi')
    return { reason: index !== undefined ? `there is no CUDA device ${index} (CUDA devices: ${profile.gpus.filter((g) => g.cudaOrdinal !== undefined).map((g) => `cuda:${g.cudaOrdinal}`).join(', ') || 'none'})` : `no NVIDIA GPU visible to CUDA: ${nvidia?.reason ?? 'nvidia-smi was not run'}` }
  }
  const freeOf = (g: GpuInfo): number | undefined => free?.get(g.cudaOrdinal as number) ?? g.memoryFreeMB
  const known = gpus.filter((g) => freeOf(g) !== undefined).sort((a, b) => (freeOf(b) as number) - (freeOf(a) as number))
  const best = known[0]
  const of = gpus.length > 1 ? `, the most free of ${gpus.length} GPUs` : ''
  if (best !== undefined && (freeOf(best) as number) >= needMB) {
    return { gpu: best, reason: `${gpuLabel(best)}: ${freeOf(best) as number} MB free of ${best.memoryTotalMB ?? '?'} MB${of}; the model needs about ${needMB} MB` }
  }
  const unknown = gpus.find((g) => freeOf(g) === undefined)
  if (unknown !== undefined && (forced || best === undefined)) {
    return { gpu: unknown, reason: `${gpuLabel(unknown)}: nvidia-smi does not report its free memory, so the model's ~${needMB} MB could not be checked` }
  }
  if (best === undefined) return { reason: 'no NVIDIA GPU reports its free memory' }
  if (forced && (freeOf(best) as number) >= weightsMB) {
    return { gpu: best, reason: `${gpuLabel(best)}: only ${freeOf(best) as number} MB free, below the ~${needMB} MB estimated with headroom; forced, so used anyway` }
  }
  return { reason: `no GPU has enough free memory: the model needs about ${needMB} MB, and the best, ${gpuLabel(best)}, has ${freeOf(best) as number} MB free` }
}

/** Plan one model on this host. Throws DeviceUnavailableError when a forced device cannot be used. */
export function planModel (entry: ModelEntry, profile: HardwareProfile, opts: PlanOptions = {}): ExecutionPlan {
  const spec: DeviceSpec = opts.device === undefined ? { kind: 'auto' } : parseDeviceSpec(opts.device)
  const forced = spec.kind !== 'auto'
  const asked = formatDeviceSpec(spec)
  const sessions = Math.max(1, Math.floor(opts.concurrentSessions ?? 1))
  const t = threads(profile, sessions)
  const fallbacks: ExecutionPlan['fallbacks'] = []
  const unavailable = (why: string): never => {
    throw new DeviceUnavailableError(`model ${entry.id}: device "${asked}" was requested, but ${why}. Run \`ipfs-accelerate hardware\` to see what this host has, or choose another --device`)
  }

  // 1. CUDA, or TensorRT on the CUDA device when asked for.
  if (spec.kind === 'auto' || spec.kind === 'cuda' || spec.kind === 'tensorrt') {
    const cuda = provider(profile, 'cuda')
    const trt = provider(profile, 'tensorrt')
    const wantTrt = spec.kind === 'tensorrt' || opts.preferTensorRT === true
    const useTrt = wantTrt && trt.available
    if (spec.kind === 'tensorrt' && !trt.available) unavailable(`ONNX Runtime's TensorRT provider is not usable: ${trt.reason}`)
    if (wantTrt && !trt.available) fallbacks.push({ provider: 'tensorrt', reason: trt.reason })
    const prov: ProviderStatus = useTrt ? trt : cuda
    const nvidiaCount = profile.gpus.filter((g) => g.vendor === 'nvidia' && g.cudaOrdinal !== undefined).length
    if (!prov.available) {
      const why = nvidiaCount > 0
        ? `nvidia-smi reports ${nvidiaCount} NVIDIA GPU${nvidiaCount === 1 ? '' : 's'}, but ONNX Runtime's CUDA provider is not usable: ${prov.reason}`
        : `${pickGpu(profile, 0, 0, undefined, undefined, false).reason}; and ONNX Runtime's CUDA provider is not usable: ${prov.reason}`
      if (forced) unavailable(why)
      fallbacks.push({ provider: 'cuda', reason: why })
    } else {
      // The dtype decides the memory the model needs, so it comes first.
      const dtype = pickDtype(entry.dtypes, GPU_DTYPES)
      const need = estimateGpuMemoryMB(entry.sizeMB, dtype)
      const weights = Math.ceil(entry.sizeMB * DTYPE_SCALE[dtype])
      const pick = pickGpu(profile, need, weights, opts.gpuFreeMB, spec.kind === 'cuda' || spec.kind === 'tensorrt' ? spec.index : undefined, forced)
      if (pick.gpu === undefined) {
        if (forced) unavailable(pick.reason)
        fallbacks.push({ provider: prov.name, reason: pick.reason })
      } else {
        const ordinal = pick.gpu.cudaOrdinal as number
        const dt = gpuDtype(entry, pick.gpu)
        return {
          modelId: entry.id,
          device: `cuda:${ordinal}`,
          provider: prov.name,
          dtype: dt.dtype,
          intraOpThreads: t.n,
          gpuIndex: ordinal,
          reasons: [
            `provider ${prov.name}: ${forced ? `forced by device "${asked}"` : 'the first preference'}${useTrt ? ' (TensorRT asked for and present)' : ''}; ${prov.reason}`,
            `device ${pick.reason}`,
            dt.reason,
            `${t.reason} (for the ops that stay on the CPU)`
          ],
          fallbacks
        }
      }
    }
  }

  // 2. WebGPU.
  if (spec.kind === 'auto' || spec.kind === 'webgpu') {
    const webgpu = provider(profile, 'webgpu')
    if (webgpu.available) {
      const d = webgpuDtype(entry)
      return {
        modelId: entry.id,
        device: 'webgpu',
        provider: 'webgpu',
        dtype: d.dtype,
        intraOpThreads: t.n,
        reasons: [`provider webgpu: ${forced ? `forced by device "${asked}"` : 'CUDA is not usable (see fallbacks)'}; ${webgpu.reason}`, d.reason, t.reason],
        fallbacks
      }
    }
    if (forced) unavailable(`ONNX Runtime's WebGPU provider found no usable adapter: ${webgpu.reason}`)
    fallbacks.push({ provider: 'webgpu', reason: webgpu.reason })
  }

  // 3. CPU.
  const cpu = provider(profile, 'cpu')
  if (!cpu.available) {
    throw new DeviceUnavailableError(`model ${entry.id}: no execution provider works here, not even ONNX Runtime's CPU provider: ${cpu.reason}`)
  }
  const amd = profile.gpus.filter((g) => g.vendor === 'amd')
  const d = cpuDtype(entry, profile)
  return {
    modelId: entry.id,
    device: 'cpu',
    provider: 'cpu',
    dtype: d.dtype,
    intraOpThreads: t.n,
    reasons: [
      `provider cpu: ${forced ? `forced by device "${asked}"` : 'no GPU provider is usable (see fallbacks)'}; ${cpu.reason}`,
      ...(amd.length > 0 && !forced ? [`AMD GPU${amd.length === 1 ? '' : 's'} found (${amd.map((g) => g.name).join(', ')}), but onnxruntime-node has no ROCm or MIGraphX provider; only WebGPU could use ${amd.length === 1 ? 'it' : 'them'}`] : []),
      d.reason,
      t.reason
    ],
    fallbacks
  }
}

/**
 * Plan every model, placing them one after another so that several GPUs
 * share the load: each CUDA placement takes its estimate off that GPU's
 * free memory before the next model is planned.
 */
export function planAll (entries: readonly ModelEntry[], profile: HardwareProfile, opts: PlanOptions & { logger?: Logger } = {}): ExecutionPlan[] {
  const free = new Map<number, number>(opts.gpuFreeMB ?? [])
  for (const g of profile.gpus) {
    if (g.cudaOrdinal !== undefined && g.memoryFreeMB !== undefined && !free.has(g.cudaOrdinal)) free.set(g.cudaOrdinal, g.memoryFreeMB)
  }
  const plans = entries.map((entry) => {
    const plan = planModel(entry, profile, { ...opts, gpuFreeMB: free })
    if (plan.gpuIndex !== undefined && free.has(plan.gpuIndex)) {
      free.set(plan.gpuIndex, (free.get(plan.gpuIndex) as number) - estimateGpuMemoryMB(entry.sizeMB, plan.dtype))
    }
    return plan
  })
  if (opts.logger !== undefined) logFallbacks(plans, opts.logger)
  return plans
}

/** Log each distinct fallback once, naming the models it affects. */
export function logFallbacks (plans: readonly ExecutionPlan[], logger: Logger): void {
  const seen = new Map<string, { provider: ProviderName, reason: string, models: string[] }>()
  for (const plan of plans) {
    for (const f of plan.fallbacks) {
      const key = `${f.provider}\u0000${f.reason}`
      const entry = seen.get(key) ?? { ...f, models: [] }
      entry.models.push(plan.modelId)
      seen.set(key, entry)
    }
  }
  for (const f of seen.values()) {
    logger.warn(`${f.provider} not used: ${f.reason}`, { provider: f.provider, models: f.models })
  }
}
