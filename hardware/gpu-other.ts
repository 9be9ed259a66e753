/**
 * GPUs that neither nvidia-smi nor rocm-smi describe (Intel, Apple, virtual
 * adapters, or NVIDIA/AMD cards whose vendor tool is missing), through
 * systeminformation.graphics() run in a child process with a time limit.
 */
import { fileURLToPath } from 'node:url'
import type { CommandRunner } from './exec.ts'
import { describeFailure } from './exec.ts'
import type { GpuInfo, GpuVendor, ProbeRecord } from './types.ts'

export const SI_GRAPHICS = 'systeminformation.graphics'
export const SI_GRAPHICS_CHILD = fileURLToPath(new URL('./si-graphics.child.ts', import.meta.url))
/** lspci + clinfo + xrandr can take a while on a desktop. */
export const DEFAULT_SI_GRAPHICS_TIMEOUT_MS = 10_000

/** The fields of systeminformation's GraphicsControllerData read here. */
export interface SiController {
  vendor?: string
  model?: string
  name?: string
  vram?: number | null
  vramDynamic?: boolean
  busAddress?: string
  memoryTotal?: number
  memoryFree?: number
  driverVersion?: string
}

export interface OtherGpuInputs {
  run: CommandRunner
  /** Node.js binary for the child (process.execPath). */
  nodePath: string
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
  signal?: AbortSignal
}

const VENDOR_PATTERNS: ReadonlyArray<readonly [RegExp, GpuVendor]> = Object.freeze([
  [/nvidia/i, 'nvidia'],
  [/advanced micro devices|\bamd\b|\bati\b/i, 'amd'],
  [/intel/i, 'intel'],
  [/apple/i, 'apple']
] as const)

export function classifyVendor (vendor: string): GpuVendor {
  return VENDOR_PATTERNS.find(([re]) => re.test(vendor))?.[1] ?? 'other'
}

/** Parse the child's JSON line into controllers. Throws on anything else. */
export function parseSiGraphics (text: string): SiController[] {
  const data: unknown = JSON.parse(text)
  if (typeof data !== 'object' || data === null || !Array.isArray((data as { controllers?: unknown }).controllers)) {
    throw new Error('no "controllers" array')
  }
  return (data as { controllers: unknown[] }).controllers.filter((c): c is SiController => typeof c === 'object' && c !== null)
}

/** GPUs not of the given vendors. */
export function withoutVendors (gpus: GpuInfo[], covered: ReadonlySet<GpuVendor>): GpuInfo[] {
  return gpus.filter((g) => !covered.has(g.vendor))
}

/** Controllers → GpuInfo, leaving out vendors whose own tool answered. */
export function controllersToGpus (controllers: SiController[], covered: ReadonlySet<GpuVendor>): GpuInfo[] {
  const gpus: GpuInfo[] = []
  controllers.forEach((c, i) => {
    const vendor = classifyVendor(`${c.vendor ?? ''} ${c.model ?? ''}`)
    if (covered.has(vendor)) return
    const gpu: GpuInfo = { vendor, index: i, name: (c.name ?? c.model ?? c.vendor ?? 'unnamed display controller').trim(), source: 'systeminformation' }
    const total = c.memoryTotal ?? (c.vramDynamic === true ? undefined : c.vram ?? undefined)
    if (typeof total === 'number' && total > 0) gpu.memoryTotalMB = total
    if (typeof c.memoryFree === 'number') gpu.memoryFreeMB = c.memoryFree
    if (c.busAddress !== undefined && c.busAddress !== '') gpu.pciBusId = c.busAddress
    if (c.driverVersion !== undefined && c.driverVersion !== '') gpu.driverVersion = c.driverVersion
    gpus.push(gpu)
  })
  return gpus
}

/**
 * Every display controller systeminformation sees. Leave out the vendors
 * whose own tool answered with `withoutVendors` (they would be listed twice).
 */
export async function detectOtherGpus (inputs: OtherGpuInputs): Promise<{ gpus: GpuInfo[], probe: ProbeRecord }> {
  const timeoutMs = inputs.timeoutMs ?? DEFAULT_SI_GRAPHICS_TIMEOUT_MS
  const outcome = await inputs.run(inputs.nodePath, [SI_GRAPHICS_CHILD], { timeoutMs, env: inputs.env, signal: inputs.signal })
  if (outcome.kind !== 'exit' || outcome.code !== 0) {
    const status = outcome.kind === 'timeout' ? 'timeout' : 'failed'
    return { gpus: [], probe: { probe: SI_GRAPHICS, status, reason: describeFailure(SI_GRAPHICS, outcome, timeoutMs), ms: outcome.ms } }
  }
  let controllers: SiController[]
  try {
    controllers = parseSiGraphics(outcome.stdout)
  } catch (err) {
    return { gpus: [], probe: { probe: SI_GRAPHICS, status: 'unexpected-output', reason: `unexpected output from the systeminformation child: ${(err as Error).message}`, ms: outcome.ms } }
  }
  const gpus = controllersToGpus(controllers, new Set())
  const reason = controllers.length === 0
    ? 'no display controllers found (lspci lists none, or is not installed)'
    : `${controllers.length} display controller${controllers.length === 1 ? '' : 's'}: ${gpus.map((g) => `${g.name} (${g.vendor})`).join('; ')}`
  return { gpus, probe: { probe: SI_GRAPHICS, status: 'ok', reason, ms: outcome.ms } }
}
