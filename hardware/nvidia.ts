/**
 * NVIDIA GPUs through `nvidia-smi` found on PATH:
 *   nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits
 *   nvidia-smi -q -d COMPUTE      (its header names the CUDA version)
 * Every ending — missing tool, hang, error exit, output we cannot read —
 * becomes a reason, never a guess.
 */
import { ProbeError } from '../src/errors.ts'
import type { CommandRunner, ExecutableCheck } from './exec.ts'
import { DEFAULT_TOOL_TIMEOUT_MS, describeFailure, findOnPath, firstLine } from './exec.ts'
import type { GpuInfo, ProbeRecord } from './types.ts'

export const NVIDIA_SMI = 'nvidia-smi'

/** Fields asked of --query-gpu, in order. compute_cap needs driver >= 510. */
export const QUERY_FIELDS: readonly string[] = Object.freeze([
  'index', 'name', 'uuid', 'memory.total', 'memory.free', 'memory.used', 'compute_cap', 'driver_version', 'pci.bus_id'
])
const QUERY_FIELDS_OLD_DRIVER: readonly string[] = Object.freeze(QUERY_FIELDS.filter((f) => f !== 'compute_cap'))

export function queryArgs (fields: readonly string[] = QUERY_FIELDS): string[] {
  return [`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits']
}
export const CUDA_VERSION_ARGS: readonly string[] = Object.freeze(['-q', '-d', 'COMPUTE'])

export interface NvidiaInputs {
  run: CommandRunner
  /** PATH to search for nvidia-smi. */
  pathEnv: string | undefined
  isExecutable?: ExecutableCheck
  timeoutMs?: number
  /** CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER of the process that will run the sessions. */
  cudaVisibleDevices?: string
  cudaDeviceOrder?: string
  signal?: AbortSignal
}

export interface NvidiaDetection {
  gpus: GpuInfo[]
  probe: ProbeRecord
}

const NOT_AVAILABLE = /^\[?(N\/A|Not Supported|Unknown Error|Insufficient Permissions|GPU is lost|Requested functionality has been deprecated)\]?$/i

/** Parse `--query-gpu=... --format=csv,noheader,nounits` output. Throws ProbeError on anything else. */
export function parseNvidiaQuery (text: string, fields: readonly string[] = QUERY_FIELDS): GpuInfo[] {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '')
  if (lines.length === 0) throw new ProbeError('nvidia-smi printed no GPU rows')
  return lines.map((line) => parseRow(line, fields))
}

function parseRow (line: string, fields: readonly string[]): GpuInfo {
  let parts = line.split(', ')
  const nameAt = fields.indexOf('name')
  if (parts.length > fields.length && nameAt >= 0) {
    // Only the name is free text; a ", " inside it splits it.
    const extra = parts.length - fields.length
    parts = [...parts.slice(0, nameAt), parts.slice(nameAt, nameAt + extra + 1).join(', '), ...parts.slice(nameAt + extra + 1)]
  }
  if (parts.length !== fields.length) {
    throw new ProbeError(`nvidia-smi printed a row with ${parts.length} fields, expected ${fields.length} (${fields.join(',')}): ${JSON.stringify(line.slice(0, 200))}`)
  }
  const get = (f: string): string | undefined => {
    const v = parts[fields.indexOf(f)]?.trim()
    return v === undefined || v === '' || NOT_AVAILABLE.test(v) ? undefined : v
  }
  const num = (f: string, required = false): number | undefined => {
    const v = get(f)
    if (v === undefined) {
      if (required) throw new ProbeError(`nvidia-smi gave no ${f} in row ${JSON.stringify(line.slice(0, 200))}`)
      return undefined
    }
    if (!/^\d+(\.\d+)?$/.test(v)) throw new ProbeError(`nvidia-smi gave a non-numeric ${f} ${JSON.stringify(v)} in row ${JSON.stringify(line.slice(0, 200))}`)
    return Number(v)
  }
  const index = num('index', true) as number
  const name = get('name')
  if (name === undefined) throw new ProbeError(`nvidia-smi gave no name in row ${JSON.stringify(line.slice(0, 200))}`)
  const cc = get('compute_cap')
  if (cc !== undefined && !/^\d+\.\d+$/.test(cc)) throw new ProbeError(`nvidia-smi gave compute capability ${JSON.stringify(cc)}, expected like 8.9`)
  const gpu: GpuInfo = { vendor: 'nvidia', index, name, source: 'nvidia-smi' }
  assign(gpu, 'uuid', get('uuid'))
  assign(gpu, 'memoryTotalMB', num('memory.total'))
  assign(gpu, 'memoryFreeMB', num('memory.free'))
  assign(gpu, 'memoryUsedMB', num('memory.used'))
  assign(gpu, 'computeCapability', cc)
  assign(gpu, 'driverVersion', get('driver_version'))
  assign(gpu, 'pciBusId', get('pci.bus_id'))
  return gpu
}

function assign<K extends keyof GpuInfo> (gpu: GpuInfo, key: K, value: GpuInfo[K] | undefined): void {
  if (value !== undefined) gpu[key] = value
}

/** The CUDA version in `nvidia-smi -q` ("CUDA Version : 12.4") or plain `nvidia-smi` ("CUDA Version: 12.4") output. */
export function parseCudaVersion (text: string): string | undefined {
  return /CUDA Version\s*:\s*(\d+\.\d+)/.exec(text)?.[1]
}

/**
 * Which GPUs the CUDA runtime will see, and their CUDA ordinals, from
 * CUDA_VISIBLE_DEVICES (indices or GPU- UUID prefixes; the list ends at the
 * first entry that matches nothing, as CUDA does). Returns the visible GPUs
 * in CUDA order and notes on what was hidden.
 */
export function applyCudaVisibility (gpus: GpuInfo[], visible: string | undefined): { gpus: GpuInfo[], notes: string[] } {
  if (visible === undefined) return { gpus, notes: [] }
  const out: GpuInfo[] = []
  for (const raw of visible.split(',')) {
    const entry = raw.trim()
    const match = /^\d+$/.test(entry)
      ? gpus.find((g) => g.index === Number(entry))
      : entry.startsWith('GPU-') ? gpus.find((g) => g.uuid?.startsWith(entry) === true) : undefined
    if (match === undefined || out.includes(match)) break
    out.push(match)
  }
  const hidden = gpus.filter((g) => !out.includes(g))
  const notes = hidden.length === 0 ? [] : [`CUDA_VISIBLE_DEVICES=${JSON.stringify(visible)} hides ${hidden.map((g) => `GPU ${g.index}`).join(', ')}`]
  return { gpus: out, notes }
}

/** Run nvidia-smi and parse what it says. Never throws for a missing or broken tool: the probe record says why. */
export async function detectNvidia (inputs: NvidiaInputs): Promise<NvidiaDetection> {
  const started = performance.now()
  const timeoutMs = inputs.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS
  const ms = (): number => Math.round(performance.now() - started)
  const path = await findOnPath(NVIDIA_SMI, inputs.pathEnv, inputs.isExecutable)
  if (path === undefined) {
    return { gpus: [], probe: { probe: NVIDIA_SMI, status: 'missing', reason: 'nvidia-smi not found on PATH (no NVIDIA driver installed, or PATH lacks it)', ms: ms() } }
  }
  const opts = { timeoutMs, signal: inputs.signal }
  let fields = QUERY_FIELDS
  const [firstQuery, versionOutcome] = await Promise.all([
    inputs.run(path, queryArgs(fields), opts),
    inputs.run(path, CUDA_VERSION_ARGS, opts)
  ])
  let query = firstQuery
  if (query.kind === 'exit' && query.code !== 0 && /not a valid field to query/i.test(query.stdout + query.stderr)) {
    // Drivers before 510 do not know compute_cap.
    fields = QUERY_FIELDS_OLD_DRIVER
    query = await inputs.run(path, queryArgs(fields), opts)
  }
  if (query.kind !== 'exit' || query.code !== 0) {
    const status = query.kind === 'timeout' ? 'timeout' : query.kind === 'missing' ? 'missing' : 'failed'
    return { gpus: [], probe: { probe: NVIDIA_SMI, status, reason: describeFailure(NVIDIA_SMI, query, timeoutMs), path, ms: ms() } }
  }
  let gpus: GpuInfo[]
  try {
    gpus = parseNvidiaQuery(query.stdout, fields)
  } catch (err) {
    return { gpus: [], probe: { probe: NVIDIA_SMI, status: 'unexpected-output', reason: `unexpected nvidia-smi output: ${(err as Error).message}`, path, ms: ms() } }
  }
  const notes: string[] = []
  if (fields === QUERY_FIELDS_OLD_DRIVER) notes.push('driver too old to report compute capability')
  const cudaVersion = versionOutcome.kind === 'exit' && versionOutcome.code === 0 ? parseCudaVersion(versionOutcome.stdout) : undefined
  if (cudaVersion === undefined) {
    notes.push(versionOutcome.kind === 'exit' && versionOutcome.code === 0
      ? `no "CUDA Version" in \`nvidia-smi -q\` output: ${firstLine(versionOutcome.stdout)}`
      : `CUDA version unknown: ${describeFailure('nvidia-smi -q', versionOutcome, timeoutMs)}`)
  }
  for (const g of gpus) if (cudaVersion !== undefined) g.cudaVersion = cudaVersion

  const visible = applyCudaVisibility(gpus, inputs.cudaVisibleDevices)
  visible.gpus.forEach((g, i) => { g.cudaOrdinal = i })
  notes.push(...visible.notes)
  const names = new Set(visible.gpus.map((g) => g.name))
  if (visible.gpus.length > 1 && names.size > 1 && inputs.cudaDeviceOrder !== 'PCI_BUS_ID') {
    notes.push('GPUs differ and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA may number them fastest-first, unlike nvidia-smi; set CUDA_DEVICE_ORDER=PCI_BUS_ID')
  }
  const summary = gpus.map((g) => `${g.index}: ${g.name}${g.memoryTotalMB === undefined ? '' : ` ${g.memoryTotalMB} MB`}`).join('; ')
  return {
    gpus,
    probe: {
      probe: NVIDIA_SMI,
      status: 'ok',
      reason: `${gpus.length} GPU${gpus.length === 1 ? '' : 's'} (${summary}); driver ${gpus[0]?.driverVersion ?? '?'}, CUDA ${cudaVersion ?? '?'}${notes.length > 0 ? '; ' + notes.join('; ') : ''}`,
      path,
      ms: ms()
    }
  }
}
