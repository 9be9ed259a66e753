/**
 * How each model can run here: device, execution provider, dtype and
 * threads, each with its reason.
 *
 * `planCandidates` lists every plan this host can run for a model (each
 * usable provider × the dtypes the model offers that make sense there), in
 * the fixed order of preference: CUDA → WebGPU → CPU, the preferred dtype
 * first within each. The node measures them at start-up and picks the
 * fastest (src/node/calibrate.ts); `planModel`/`planAll` give the first, the
 * default without measuring. A forced device or dtype (`--device`,
 * `--dtype`) is a hard constraint: only matching candidates are listed, and
 * a forced device that cannot be used is an error, never a silent CPU run.
 *
 * Reproducible by default: without `--dtype`, only the model's
 * batch-independent dtypes are listed (hardware/dtype-policy.ts), so the
 * measuring can never pick one whose results depend on batch-mates (a
 * dynamically quantized q8). A plan says whether it is `reproducible`, and
 * quantized CPU plans on x86 without VNNI carry the u8s8 guard in
 * `sessionConfig`.
 *
 * transformers.js, which runs the models, has no TensorRT device: a plan
 * where TensorRT was asked for says so and runs CUDA, so what it names is
 * what runs.
 */
import type { Dtype, ExecutionPlan, ModelEntry, ProviderName } from '../src/interfaces/index.ts'
import { ConfigError, DeviceUnavailableError } from '../src/errors.ts'
import { int8Capability } from './cpu.ts'
import { batchDependenceReason, isReproducible, quantSessionConfig, reproducibleDtypes } from './dtype-policy.ts'
import type { DeviceSpec } from './device.ts'
import { formatDeviceSpec, parseDeviceSpec } from './device.ts'
import type { GpuInfo, HardwareProfile, ProviderStatus } from './types.ts'

export interface PlanOptions {
  /** auto | cpu | cuda | cuda:N | tensorrt | tensorrt:N | webgpu (default auto). */
  device?: string
  /** auto, or a weight format the model must offer (default auto). */
  dtype?: string
  /** Sessions that run at the same time on this host's CPU (default 1). */
  concurrentSessions?: number
  /** Use TensorRT instead of plain CUDA where its provider works (the plan then says it runs CUDA). */
  preferTensorRT?: boolean
  /**
   * Free GPU memory by CUDA ordinal, for planning several models in turn
   * (planAll and placement keep it); defaults to what nvidia-smi reported.
   */
  gpuFreeMB?: Map<number, number>
}

type Fallback = ExecutionPlan['fallbacks'][number]

/** Weight size relative to fp32. */
const DTYPE_SCALE: Readonly<Record<Dtype, number>> = Object.freeze({ fp32: 1, fp16: 0.5, q8: 0.25, int8: 0.25, uint8: 0.25, q4: 0.16, q4f16: 0.16, bnb4: 0.16 })
/** Activations and workspace on top of the weights, and the CUDA context + ORT arena. */
export const GPU_HEADROOM_FACTOR = 1.25
export const GPU_CONTEXT_MB = 512

/** Dtypes worth measuring on each provider, where the model offers them. */
const CANDIDATE_DTYPES: Readonly<Record<'cuda' | 'webgpu' | 'cpu', readonly Dtype[]>> = Object.freeze({
  cuda: Object.freeze(['fp16', 'fp32'] as Dtype[]),
  webgpu: Object.freeze(['fp32', 'fp16'] as Dtype[]),
  cpu: Object.freeze(['q8', 'int8', 'fp32'] as Dtype[])
})
const EIGHT_BIT: readonly Dtype[] = Object.freeze(['int8', 'q8', 'uint8'])

/** The dtypes a plan may use: the forced one, else the batch-independent ones (all, where the model has none), and what was left out. */
interface Allowed { dtypes: readonly Dtype[], note: string }

function allowedDtypes (entry: ModelEntry, forced: Dtype | undefined): Allowed {
  if (forced !== undefined) return { dtypes: [forced], note: '' }
  const ok = reproducibleDtypes(entry)
  if (ok.length === 0) return { dtypes: entry.dtypes, note: `; none of the dtypes it offers is batch-independent, so its results depend on batch-mates` }
  const out = entry.dtypes.filter((d) => !ok.includes(d))
  return { dtypes: ok, note: out.length === 0 ? '' : `; ${out.join(', ')} left out: results would depend on batch-mates (dynamic quantization); --dtype ${out[0] as Dtype} opts in` }
}

/** transformers.js has no TensorRT device (skillsets/embed/runner.ts maps it to CUDA). */
const NO_TENSORRT_RUNNER = 'transformers.js, which runs the models, has no TensorRT device: the model runs on CUDA'

/** Estimated GPU memory a model needs in a dtype. */
export function estimateGpuMemoryMB (sizeMB: number, dtype: Dtype): number {
  return Math.ceil(sizeMB * DTYPE_SCALE[dtype] * GPU_HEADROOM_FACTOR) + GPU_CONTEXT_MB
}

interface Choice { dtype: Dtype, reason: string }

function pickDtype (offered: readonly Dtype[], preference: readonly Dtype[]): Dtype {
  return preference.find((d) => offered.includes(d)) ?? offered[0] ?? 'fp32'
}

function gpuDtype (entry: ModelEntry, gpu: GpuInfo | undefined, allowed: Allowed): Choice {
  const dtype = pickDtype(allowed.dtypes, CANDIDATE_DTYPES.cuda)
  if (dtype === 'fp16') {
    const cc = Number(gpu?.computeCapability ?? '0')
    return { dtype, reason: `dtype fp16: the model offers it and CUDA runs fp16 natively${cc >= 7 ? ` on tensor cores (compute capability ${gpu?.computeCapability ?? '?'})` : ''}, at half the memory of fp32${allowed.note}` }
  }
  return { dtype, reason: `dtype ${dtype}: the model offers no fp16 weights (offers ${entry.dtypes.join(', ')})${allowed.note}` }
}

function cpuDtype (entry: ModelEntry, profile: HardwareProfile, allowed: Allowed): Choice {
  const int8 = int8Capability(profile.cpu)
  if (int8 === undefined) {
    const dtype = pickDtype(allowed.dtypes, ['fp32'])
    return { dtype, reason: `dtype ${dtype}: the CPU has neither AVX2 nor VNNI (nor ARM dotprod/i8mm), so quantized weights would not run faster${allowed.note}` }
  }
  const dtype = pickDtype(allowed.dtypes, CANDIDATE_DTYPES.cpu)
  if (EIGHT_BIT.includes(dtype)) {
    const kind = isReproducible(entry, dtype) ? '8-bit weights with fixed activation scales, batch-independent' : '8-bit quantized'
    return { dtype, reason: `dtype ${dtype}: the CPU has ${int8.description} (${int8.flag}) and the model offers ${dtype} (${kind}) weights${allowed.note}` }
  }
  return { dtype, reason: `dtype ${dtype}: the CPU could run int8 (${int8.flag}), but the model offers no ${allowed.note === '' ? '' : 'batch-independent '}8-bit weights (offers ${entry.dtypes.join(', ')})${allowed.note}` }
}

function webgpuDtype (allowed: Allowed): Choice {
  const dtype = pickDtype(allowed.dtypes, ['fp32'])
  return { dtype, reason: `dtype ${dtype}: WebGPU fp16 needs the adapter's shader-f16 feature, which the probe does not check${allowed.note}` }
}

/**
 * The dtypes to list on a provider: the forced one, else the default
 * choice first, then the others worth measuring that the model offers.
 */
function dtypeChoices (ctx: Ctx, kind: keyof typeof CANDIDATE_DTYPES, preferred: Choice): Choice[] {
  const { entry, dtype: forced } = ctx
  if (forced !== undefined) return [{ dtype: forced, reason: `dtype ${forced}: set by configuration (--dtype)${isReproducible(entry, forced) ? '' : `; ${batchDependenceReason(entry, forced)}`}` }]
  const others = CANDIDATE_DTYPES[kind].filter((d) => d !== preferred.dtype && ctx.allowed.dtypes.includes(d))
  return [preferred, ...others.map((d) => ({ dtype: d, reason: `dtype ${d}: also offered by the model, a candidate to measure against ${preferred.dtype}` }))]
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

/** What one provider step needs to know. */
interface Ctx {
  entry: ModelEntry
  profile: HardwareProfile
  opts: PlanOptions
  spec: DeviceSpec
  forced: boolean
  dtype: Dtype | undefined
  /** The dtypes plans may use (forced, else batch-independent). */
  allowed: Allowed
  threads: { n: number, reason: string }
  unavailable: (why: string) => never
}

/** A provider's usable plans (reasons, no fallbacks yet), and the fallbacks it adds. */
interface StepResult { plans: Array<Omit<ExecutionPlan, 'fallbacks'>>, fallbacks: Fallback[] }

/** Why this provider: its place in the fixed order, or forced. */
function providerReason (ctx: Ctx, whenFirst: string, first: boolean): string {
  if (ctx.forced) return `forced by device "${formatDeviceSpec(ctx.spec)}"`
  return first ? whenFirst : 'also usable here, a candidate measured at start-up against the first preference'
}

function cudaStep (ctx: Ctx, first: boolean): StepResult {
  const { entry, profile, spec, forced, opts } = ctx
  const fallbacks: Fallback[] = []
  const cuda = provider(profile, 'cuda')
  const trt = provider(profile, 'tensorrt')
  const wantTrt = spec.kind === 'tensorrt' || opts.preferTensorRT === true
  if (spec.kind === 'tensorrt' && !trt.available) ctx.unavailable(`ONNX Runtime's TensorRT provider is not usable: ${trt.reason}`)
  if (wantTrt) fallbacks.push({ provider: 'tensorrt', reason: trt.available ? NO_TENSORRT_RUNNER : trt.reason })
  const nvidiaCount = profile.gpus.filter((g) => g.vendor === 'nvidia' && g.cudaOrdinal !== undefined).length
  if (!cuda.available) {
    const why = nvidiaCount > 0
      ? `nvidia-smi reports ${nvidiaCount} NVIDIA GPU${nvidiaCount === 1 ? '' : 's'}, but ONNX Runtime's CUDA provider is not usable: ${cuda.reason}`
      : `${pickGpu(profile, 0, 0, undefined, undefined, false).reason}; and ONNX Runtime's CUDA provider is not usable: ${cuda.reason}`
    if (forced) ctx.unavailable(why)
    return { plans: [], fallbacks: [...fallbacks, { provider: 'cuda', reason: why }] }
  }
  const index = spec.kind === 'cuda' || spec.kind === 'tensorrt' ? spec.index : undefined
  // The dtype decides the memory the model needs, so each dtype picks its GPU.
  const choices = dtypeChoices(ctx, 'cuda', gpuDtype(entry, undefined, ctx.allowed))
  const plans: StepResult['plans'] = []
  let firstMiss: string | undefined
  for (const c of choices) {
    const need = estimateGpuMemoryMB(entry.sizeMB, c.dtype)
    const weights = Math.ceil(entry.sizeMB * DTYPE_SCALE[c.dtype])
    const pick = pickGpu(profile, need, weights, opts.gpuFreeMB, index, forced)
    if (pick.gpu === undefined) {
      firstMiss ??= pick.reason
      continue
    }
    const ordinal = pick.gpu.cudaOrdinal as number
    const dtReason = c === choices[0] && ctx.dtype === undefined ? gpuDtype(entry, pick.gpu, ctx.allowed).reason : c.reason
    const trtNote = wantTrt ? ` (TensorRT asked for${trt.available ? `, and its provider works, but ${NO_TENSORRT_RUNNER}` : ` but not usable: ${trt.reason}`})` : ''
    plans.push({
      modelId: entry.id,
      device: `cuda:${ordinal}`,
      provider: 'cuda',
      dtype: c.dtype,
      reproducible: isReproducible(entry, c.dtype),
      intraOpThreads: ctx.threads.n,
      gpuIndex: ordinal,
      reasons: [
        `provider cuda: ${providerReason(ctx, 'the first preference', first)}${trtNote}; ${cuda.reason}`,
        `device ${pick.reason}`,
        dtReason,
        `${ctx.threads.reason} (for the ops that stay on the CPU)`
      ]
    })
  }
  if (plans.length === 0) {
    const why = firstMiss ?? 'no GPU fits'
    if (forced) ctx.unavailable(why)
    fallbacks.push({ provider: 'cuda', reason: why })
  }
  return { plans, fallbacks }
}

function webgpuStep (ctx: Ctx, first: boolean): StepResult {
  const webgpu = provider(ctx.profile, 'webgpu')
  if (!webgpu.available) {
    if (ctx.forced) ctx.unavailable(`ONNX Runtime's WebGPU provider found no usable adapter: ${webgpu.reason}`)
    return { plans: [], fallbacks: [{ provider: 'webgpu', reason: webgpu.reason }] }
  }
  const choices = dtypeChoices(ctx, 'webgpu', webgpuDtype(ctx.allowed))
  return {
    plans: choices.map((c) => ({
      modelId: ctx.entry.id,
      device: 'webgpu',
      provider: 'webgpu',
      dtype: c.dtype,
      reproducible: isReproducible(ctx.entry, c.dtype),
      intraOpThreads: ctx.threads.n,
      reasons: [`provider webgpu: ${providerReason(ctx, 'CUDA is not usable (see fallbacks)', first)}; ${webgpu.reason}`, c.reason, ctx.threads.reason]
    })),
    fallbacks: []
  }
}

function cpuStep (ctx: Ctx, first: boolean): StepResult {
  const { entry, profile, forced } = ctx
  const cpu = provider(profile, 'cpu')
  if (!cpu.available) {
    if (!first) return { plans: [], fallbacks: [{ provider: 'cpu', reason: cpu.reason }] }
    throw new DeviceUnavailableError(`model ${entry.id}: no execution provider works here, not even ONNX Runtime's CPU provider: ${cpu.reason}`)
  }
  const amd = profile.gpus.filter((g) => g.vendor === 'amd')
  const amdReason = amd.length > 0 && !forced ? [`AMD GPU${amd.length === 1 ? '' : 's'} found (${amd.map((g) => g.name).join(', ')}), but onnxruntime-node has no ROCm or MIGraphX provider; only WebGPU could use ${amd.length === 1 ? 'it' : 'them'}`] : []
  const choices = dtypeChoices(ctx, 'cpu', cpuDtype(entry, profile, ctx.allowed))
  return {
    plans: choices.map((c) => {
      const guard = quantSessionConfig(profile.cpu, c.dtype)
      return {
        modelId: entry.id,
        device: 'cpu',
        provider: 'cpu',
        dtype: c.dtype,
        reproducible: isReproducible(entry, c.dtype),
        ...(guard === undefined ? {} : { sessionConfig: guard.config }),
        intraOpThreads: ctx.threads.n,
        reasons: [`provider cpu: ${providerReason(ctx, 'no GPU provider is usable (see fallbacks)', first)}; ${cpu.reason}`, ...amdReason, c.reason, ...(guard === undefined ? [] : [guard.reason]), ctx.threads.reason]
      }
    }),
    fallbacks: []
  }
}

/** The fixed order of preference, and which device specs each step serves. */
const STEPS: ReadonlyArray<{ serves: ReadonlyArray<DeviceSpec['kind']>, step: (ctx: Ctx, first: boolean) => StepResult }> = Object.freeze([
  { serves: ['auto', 'cuda', 'tensorrt'], step: cudaStep },
  { serves: ['auto', 'webgpu'], step: webgpuStep },
  { serves: ['auto', 'cpu'], step: cpuStep }
])

/** A forced dtype, validated against what the model offers; undefined for auto. */
function forcedDtype (entry: ModelEntry, dtype: string | undefined): Dtype | undefined {
  if (dtype === undefined || dtype === 'auto') return undefined
  if (!(entry.dtypes as string[]).includes(dtype)) throw new ConfigError(`dtype ${dtype} is not offered by ${entry.id} (it offers ${entry.dtypes.join(', ')}): pick one of those or auto`)
  return dtype as Dtype
}

/**
 * Every plan this host can run for a model, the default (what planModel
 * returns) first, then the others in the fixed order of preference. Each
 * plan's fallbacks are the providers preferred over it that cannot be used.
 * Throws DeviceUnavailableError when a forced device cannot be used, and
 * ConfigError when a forced dtype is not offered.
 */
export function planCandidates (entry: ModelEntry, profile: HardwareProfile, opts: PlanOptions = {}): ExecutionPlan[] {
  const spec: DeviceSpec = opts.device === undefined ? { kind: 'auto' } : parseDeviceSpec(opts.device)
  const forced = spec.kind !== 'auto'
  const asked = formatDeviceSpec(spec)
  const dtype = forcedDtype(entry, opts.dtype)
  const ctx: Ctx = {
    entry,
    profile,
    opts,
    spec,
    forced,
    dtype,
    allowed: allowedDtypes(entry, dtype),
    threads: threads(profile, Math.max(1, Math.floor(opts.concurrentSessions ?? 1))),
    unavailable: (why: string): never => {
      throw new DeviceUnavailableError(`model ${entry.id}: device "${asked}" was requested, but ${why}. Run \`ipfs-accelerate hardware\` to see what this host has, or choose another --device`)
    }
  }
  const fallbacks: Fallback[] = []
  const plans: ExecutionPlan[] = []
  for (const { serves, step } of STEPS) {
    if (!serves.includes(spec.kind)) continue
    const r = step(ctx, plans.length === 0)
    fallbacks.push(...r.fallbacks)
    plans.push(...r.plans.map((p) => ({ ...p, fallbacks: [...fallbacks] })))
  }
  return plans
}

/** Plan one model on this host without measuring: the first of its candidates. */
export function planModel (entry: ModelEntry, profile: HardwareProfile, opts: PlanOptions = {}): ExecutionPlan {
  return planCandidates(entry, profile, opts)[0] as ExecutionPlan
}
