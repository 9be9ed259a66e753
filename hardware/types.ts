/**
 * The shape of what `hardware/` finds out about a host. Every fact says
 * where it came from; every probe that could not answer says why.
 */
import type { ProviderName } from '../src/interfaces/index.ts'

/** How an external tool or in-process probe ended. */
export type ProbeStatus =
  | 'ok' // answered, and the answer parsed
  | 'missing' // the tool is not installed (not on PATH, or the file is absent)
  | 'timeout' // ran past its time limit and was killed
  | 'failed' // ran and exited non-zero, or could not be started
  | 'unexpected-output' // exited 0 but printed something we cannot parse
  | 'skipped' // not run on this platform or by request

/** One probe's outcome, kept in the profile so `hardware` can show it. */
export interface ProbeRecord {
  /** e.g. 'nvidia-smi', 'rocm-smi', 'systeminformation.graphics', 'onnxruntime', '/proc/cpuinfo'. */
  probe: string
  status: ProbeStatus
  /** Human-readable: what was found, or why nothing was. */
  reason: string
  /** Resolved executable or file, where there is one. */
  path?: string
  /** Wall time of the probe. */
  ms: number
}

export interface CpuInfo {
  /** 'GenuineIntel', 'AuthenticAMD', 'ARM', ... (as the CPU reports it). */
  vendor: string
  /** Marketing name, e.g. 'Intel(R) Xeon(R) Processor', 'Neoverse-V1'. */
  model: string
  /** Node's process.arch: 'x64', 'arm64', ... */
  arch: string
  cores: { physical: number, logical: number }
  /**
   * Instruction sets that matter for inference, canonical lower-case names:
   * x86 sse4_2 avx avx2 fma f16c avx512f avx512bw avx512_vnni avx512_bf16
   * avx512_fp16 avx_vnni amx_tile amx_int8 amx_bf16; ARM neon fp16 dotprod
   * i8mm bf16 sve sve2.
   */
  flags: string[]
  /** Every flag the kernel reports (x86 `flags`, ARM `Features`). */
  allFlags: string[]
}

export interface MemoryInfo {
  totalMB: number
  /** MemFree: memory nobody uses. */
  freeMB: number
  /** MemAvailable: what new allocations can get without swapping (includes reclaimable cache). */
  availableMB: number
}

export type GpuVendor = 'nvidia' | 'amd' | 'intel' | 'apple' | 'other'

export interface GpuInfo {
  vendor: GpuVendor
  /** Index as the vendor tool numbers it (nvidia-smi index, rocm-smi cardN); position for others. */
  index: number
  name: string
  /** Which tool reported it. */
  source: 'nvidia-smi' | 'rocm-smi' | 'systeminformation'
  uuid?: string
  memoryTotalMB?: number
  memoryFreeMB?: number
  memoryUsedMB?: number
  /** NVIDIA compute capability, e.g. '9.0'. */
  computeCapability?: string
  driverVersion?: string
  /** Highest CUDA version the driver supports (nvidia-smi header). */
  cudaVersion?: string
  pciBusId?: string
  /**
   * The device id CUDA (and ONNX Runtime's CUDA provider) gives this GPU:
   * its position among the GPUs CUDA_VISIBLE_DEVICES leaves visible.
   * Absent for a GPU hidden from CUDA, and for non-NVIDIA GPUs.
   */
  cudaOrdinal?: number
  /** AMD gfx target, e.g. 'gfx90a'. */
  gfxVersion?: string
}

export interface ProviderStatus {
  name: ProviderName
  /** A probe session was created and ran on this provider. */
  available: boolean
  /** Why it is (or is not) usable: the probe's own error message where it failed. */
  reason: string
  /** Listed by onnxruntime-node's listSupportedBackends(). */
  listed: boolean
  /** Shipped inside the onnxruntime-node package (no extra libraries needed). */
  bundled?: boolean
  /** Provider libraries looked for next to onnxruntime_binding.node, and whether each is there. */
  libraries?: Array<{ file: string, present: boolean }>
  /** Time the probe session took (create + one run). */
  probeMs?: number
}

export interface HardwareProfile {
  /** ISO time of detection. */
  detectedAt: string
  platform: string
  arch: string
  cpu: CpuInfo
  memory: MemoryInfo
  gpus: GpuInfo[]
  providers: ProviderStatus[]
  probes: ProbeRecord[]
}
