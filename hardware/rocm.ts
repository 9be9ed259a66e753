/**
 * AMD GPUs through `rocm-smi` found on PATH:
 *   rocm-smi --showproductname --showmeminfo vram --showuniqueid --json
 * which prints {"card0": {"Card Series": ..., "VRAM Total Memory (B)": "...", ...}, "system": {...}}.
 * Key spelling changed across ROCm releases ("Card series" → "Card Series"),
 * so keys are matched without case.
 */
import { ProbeError } from '../src/errors.ts'
import type { CommandRunner, ExecutableCheck } from './exec.ts'
import { DEFAULT_TOOL_TIMEOUT_MS, describeFailure, findOnPath } from './exec.ts'
import type { GpuInfo, ProbeRecord } from './types.ts'

export const ROCM_SMI = 'rocm-smi'
export const ROCM_ARGS: readonly string[] = Object.freeze(['--showproductname', '--showmeminfo', 'vram', '--showuniqueid', '--json'])

export interface RocmInputs {
  run: CommandRunner
  pathEnv: string | undefined
  isExecutable?: ExecutableCheck
  timeoutMs?: number
  signal?: AbortSignal
}

const MB = 1024 * 1024
const NAME_KEYS: readonly string[] = Object.freeze(['card series', 'device name', 'card model'])

/** Parse rocm-smi's --json output. Throws ProbeError on anything else. */
export function parseRocmJson (text: string): GpuInfo[] {
  // Some ROCm releases print warnings before the JSON; the JSON is the line that starts with '{'.
  const start = text.search(/^\{/m)
  if (start < 0) throw new ProbeError(`rocm-smi printed no JSON object: ${JSON.stringify(text.trim().slice(0, 200))}`)
  let data: unknown
  try {
    data = JSON.parse(text.slice(start))
  } catch (err) {
    throw new ProbeError(`rocm-smi printed invalid JSON: ${(err as Error).message}`, { cause: err })
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ProbeError('rocm-smi JSON is not an object')
  const system = lower((data as Record<string, unknown>).system)
  const driverVersion = str(system.get('driver version'))
  const gpus: GpuInfo[] = []
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    const m = /^card(\d+)$/i.exec(key)
    if (m === null) continue
    const card = lower(value)
    const name = NAME_KEYS.map((k) => str(card.get(k))).find((v) => v !== undefined)
    const gpu: GpuInfo = { vendor: 'amd', index: Number(m[1]), name: name ?? `AMD GPU (${key}, no product name reported)`, source: 'rocm-smi' }
    const total = bytes(card.get('vram total memory (b)'), key, 'VRAM Total Memory (B)')
    const used = bytes(card.get('vram total used memory (b)'), key, 'VRAM Total Used Memory (B)')
    if (total !== undefined) gpu.memoryTotalMB = Math.round(total / MB)
    if (used !== undefined) gpu.memoryUsedMB = Math.round(used / MB)
    if (total !== undefined && used !== undefined) gpu.memoryFreeMB = Math.round((total - used) / MB)
    const uid = str(card.get('unique id'))
    if (uid !== undefined) gpu.uuid = uid
    const gfx = str(card.get('gfx version'))
    if (gfx !== undefined) gpu.gfxVersion = gfx
    if (driverVersion !== undefined) gpu.driverVersion = driverVersion
    gpus.push(gpu)
  }
  if (gpus.length === 0) throw new ProbeError(`rocm-smi JSON has no cardN entries (keys: ${Object.keys(data).slice(0, 10).join(', ') || 'none'})`)
  return gpus.sort((a, b) => a.index - b.index)
}

function lower (v: unknown): Map<string, unknown> {
  if (typeof v !== 'object' || v === null) return new Map()
  return new Map(Object.entries(v).map(([k, x]) => [k.toLowerCase(), x]))
}
function str (v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined
  const s = v.trim()
  return s === '' || /^n\/a$/i.test(s) ? undefined : s
}
function bytes (v: unknown, card: string, field: string): number | undefined {
  const s = str(v)
  if (s === undefined) return undefined
  if (!/^\d+$/.test(s)) throw new ProbeError(`rocm-smi gave ${card} "${field}" = ${JSON.stringify(s)}, expected a byte count`)
  return Number(s)
}

export async function detectRocm (inputs: RocmInputs): Promise<{ gpus: GpuInfo[], probe: ProbeRecord }> {
  const started = performance.now()
  const timeoutMs = inputs.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS
  const ms = (): number => Math.round(performance.now() - started)
  const path = await findOnPath(ROCM_SMI, inputs.pathEnv, inputs.isExecutable)
  if (path === undefined) {
    return { gpus: [], probe: { probe: ROCM_SMI, status: 'missing', reason: 'rocm-smi not found on PATH (no ROCm installed, or PATH lacks /opt/rocm/bin)', ms: ms() } }
  }
  const outcome = await inputs.run(path, ROCM_ARGS, { timeoutMs, signal: inputs.signal })
  if (outcome.kind !== 'exit' || outcome.code !== 0) {
    const status = outcome.kind === 'timeout' ? 'timeout' : outcome.kind === 'missing' ? 'missing' : 'failed'
    return { gpus: [], probe: { probe: ROCM_SMI, status, reason: describeFailure(ROCM_SMI, outcome, timeoutMs), path, ms: ms() } }
  }
  try {
    const gpus = parseRocmJson(outcome.stdout)
    const summary = gpus.map((g) => `${g.index}: ${g.name}${g.memoryTotalMB === undefined ? '' : ` ${g.memoryTotalMB} MB`}`).join('; ')
    return { gpus, probe: { probe: ROCM_SMI, status: 'ok', reason: `${gpus.length} GPU${gpus.length === 1 ? '' : 's'} (${summary})`, path, ms: ms() } }
  } catch (err) {
    return { gpus: [], probe: { probe: ROCM_SMI, status: 'unexpected-output', reason: `unexpected rocm-smi output: ${(err as Error).message}`, path, ms: ms() } }
  }
}
