/**
 * hardware/: what this host can do, and how each model should run here.
 * Nothing runs at import; detectHardware() probes when called.
 */
import type { HardwareSummary } from '../src/interfaces/index.ts'
import type { Logger } from '../src/logger.ts'
import { forComponent } from '../src/logger.ts'
import type { CpuSources } from './cpu.ts'
import { defaultCpuSources, detectCpu } from './cpu.ts'
import type { CommandRunner, ExecutableCheck } from './exec.ts'
import { DEFAULT_TOOL_TIMEOUT_MS, execRunner } from './exec.ts'
import type { GpuVendor } from './types.ts'
import { detectOtherGpus, withoutVendors } from './gpu-other.ts'
import { detectNvidia } from './nvidia.ts'
import { defaultBindingDir, probeProviders } from './providers.ts'
import { detectRocm } from './rocm.ts'
import type { HardwareProfile, ProbeRecord, ProviderStatus } from './types.ts'

export type { CpuInfo, GpuInfo, GpuVendor, HardwareProfile, MemoryInfo, ProbeRecord, ProbeStatus, ProviderStatus } from './types.ts'
export type { DeviceSpec } from './device.ts'
export { DEVICE_SPEC_HELP, formatDeviceSpec, parseDeviceSpec } from './device.ts'
export type { PlanOptions } from './plan.ts'
export { estimateGpuMemoryMB, planCandidates, planModel } from './plan.ts'
export type { Placement } from './placement.ts'
export { groupFallbacks, logFallbacks, placement, planAll } from './placement.ts'
export { batchDependenceReason, isReproducible, quantSessionConfig, reproducibleDtypes, X64_QUANT_PRECISION_KEY } from './dtype-policy.ts'
export type { CommandRunner, RunOutcome, RunOptions } from './exec.ts'
export { execRunner } from './exec.ts'

export interface DetectOptions {
  /** Runs external tools (default: spawn without a shell, with time limits). */
  run?: CommandRunner
  /** Environment the probes see: PATH, CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER (default process.env). */
  env?: NodeJS.ProcessEnv
  isExecutable?: ExecutableCheck
  /** /proc/cpuinfo reader and systeminformation calls. */
  cpuSources?: Partial<CpuSources>
  /** Node.js binary for the probe children (default process.execPath). */
  nodePath?: string
  /** Where onnxruntime_binding.node lives (default: resolved from the installed onnxruntime-node). */
  bindingDir?: string
  fileExists?: (path: string) => Promise<boolean>
  platform?: string
  /** Limit for nvidia-smi and rocm-smi, each call (default 5 s). */
  toolTimeoutMs?: number
  /** Limit for the whole ONNX Runtime provider probe (default 30 s). */
  ortTimeoutMs?: number
  /** Limit for systeminformation.graphics() (default 10 s). */
  graphicsTimeoutMs?: number
  /**
   * Probe the providers again instead of reusing this process's earlier
   * answer. Only the default runner's answer is cached.
   */
  refresh?: boolean
  logger?: Logger
  signal?: AbortSignal
}

type ProviderResult = Awaited<ReturnType<typeof probeProviders>>
/** The one-time provider probe of this process (session creation is costly and its answer does not change). */
let providerCache: Promise<ProviderResult> | undefined

/** Probe the host: CPU, memory, GPUs (NVIDIA, AMD, others) and working ONNX Runtime providers. */
export async function detectHardware (opts: DetectOptions = {}): Promise<HardwareProfile> {
  const log = opts.logger ?? forComponent('ipfs-accelerate:hardware')
  const env = opts.env ?? process.env
  const run = opts.run ?? execRunner
  const platform = opts.platform ?? process.platform
  const nodePath = opts.nodePath ?? process.execPath
  const toolTimeoutMs = opts.toolTimeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS
  const common = { run, pathEnv: env.PATH, isExecutable: opts.isExecutable, timeoutMs: toolTimeoutMs, signal: opts.signal }

  const providerProbe = (): Promise<ProviderResult> => probeProviders({
    run,
    nodePath,
    bindingDir: opts.bindingDir ?? defaultBindingDir(platform),
    platform,
    fileExists: opts.fileExists,
    timeoutMs: opts.ortTimeoutMs,
    env,
    signal: opts.signal
  })
  let providersP: Promise<ProviderResult>
  if (opts.run === undefined && opts.refresh !== true) {
    if (providerCache === undefined) {
      const probing = providerProbe()
      providerCache = probing
      // An answer cut short by the caller's abort is not the host's answer: do not keep it.
      void probing.then(() => { if (opts.signal?.aborted === true && providerCache === probing) providerCache = undefined })
    }
    providersP = providerCache
  } else {
    providersP = providerProbe()
  }

  const [cpu, nvidia, rocm, others, providers] = await Promise.all([
    detectCpu({ ...defaultCpuSources(), ...opts.cpuSources }),
    detectNvidia({ ...common, cudaVisibleDevices: env.CUDA_VISIBLE_DEVICES, cudaDeviceOrder: env.CUDA_DEVICE_ORDER }),
    platform === 'linux'
      ? detectRocm(common)
      : Promise.resolve({ gpus: [], probe: { probe: 'rocm-smi', status: 'skipped', reason: `rocm-smi runs on Linux only (this is ${platform})`, ms: 0 } satisfies ProbeRecord }),
    detectOtherGpus({ run, nodePath, timeoutMs: opts.graphicsTimeoutMs, env, signal: opts.signal }),
    providersP
  ])
  const covered = new Set<GpuVendor>([
    ...(nvidia.probe.status === 'ok' ? ['nvidia' as const] : []),
    ...(rocm.probe.status === 'ok' ? ['amd' as const] : [])
  ])
  const probes: ProbeRecord[] = [...cpu.probes, nvidia.probe, rocm.probe, others.probe, providers.probe]
  for (const p of probes) log.debug(`probe ${p.probe}: ${p.status}`, { reason: p.reason, ms: p.ms })
  return {
    detectedAt: new Date().toISOString(),
    platform,
    arch: cpu.cpu.arch,
    cpu: cpu.cpu,
    memory: cpu.memory,
    gpus: [...nvidia.gpus, ...rocm.gpus, ...withoutVendors(others.gpus, covered)],
    providers: providers.providers,
    probes
  }
}

/** The short form of a profile that goes into adverts. Memory sizes a tool did not report are 0. */
export function summarizeHardware (profile: HardwareProfile): HardwareSummary {
  return {
    cpu: {
      model: profile.cpu.model,
      physicalCores: profile.cpu.cores.physical,
      logicalCores: profile.cpu.cores.logical,
      flags: [...profile.cpu.flags]
    },
    memoryTotalMB: profile.memory.totalMB,
    gpus: profile.gpus.map((g) => ({
      vendor: g.vendor,
      name: g.name,
      memoryTotalMB: g.memoryTotalMB ?? 0,
      ...(g.memoryFreeMB === undefined ? {} : { memoryFreeMB: g.memoryFreeMB })
    })),
    providers: profile.providers.filter((p: ProviderStatus) => p.available).map((p) => p.name)
  }
}
