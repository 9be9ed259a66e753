import type { Command, ParsedArgs } from '../command.ts'
import { bool, str } from '../command.ts'
import { ConfigError, UsageError } from '../../errors.ts'
import type { ExecutionPlan } from '../../interfaces/index.ts'
import { DEFAULT_CATALOG_PATH, loadCatalog } from '../../models/catalog.ts'
import type { HardwareProfile } from '../../../hardware/index.ts'
import { detectHardware, groupFallbacks, parseDeviceSpec, planAll, summarizeHardware } from '../../../hardware/index.ts'

const HELP = `Usage: ipfs-accelerate hardware [options]

Show what this host can run on, and how each model in models.json would run
here: device, ONNX Runtime execution provider, dtype and threads, each with
its reason, and why each preferred provider was not used.

It reads /proc/cpuinfo and systeminformation (CPU, memory), runs nvidia-smi
and rocm-smi if they are on PATH (5 s limit each), lists other display
controllers, and creates one tiny probe session per ONNX Runtime provider
(cuda, tensorrt, webgpu, cpu) in a child process.

Options:
  --json                   print the whole profile, a summary and the plans
                           as JSON
  --device <spec>          plan as if the node were forced onto a device:
                           auto (default), cpu, cuda, cuda:N (N = CUDA device
                           number, 0-based), tensorrt, tensorrt:N or webgpu;
                           a device that cannot be used is an error
                           (exit 1, ERR_DEVICE_UNAVAILABLE)
  --tensorrt               prefer TensorRT over plain CUDA where it works
  --sessions <n>           sessions that run at once on the CPU (default 1);
                           intra-op threads = physical cores / n
  --catalog <path>         the model catalog to plan (default: models.json)
  -h, --help               show this help

Exit status: 0 on success (missing GPUs are information, not errors),
1 when --device names a device this host cannot use, 2 on bad arguments.

JSON fields: cpu.flags, cpu.cores, memory, gpus[] (vendor, name,
memoryTotalMB, memoryFreeMB, ...), providers[] (name, available, reason),
probes[] (probe, status, reason, ms), summary (what adverts carry), plans[]
(modelId, device, provider, dtype, intraOpThreads, gpuIndex, reasons,
fallbacks).

Examples:
  ipfs-accelerate hardware
  ipfs-accelerate hardware --json | jq '.plans[] | {modelId, provider, dtype}'
  ipfs-accelerate hardware --device cuda:1
`

function positiveInt (args: ParsedArgs, key: string): number | undefined {
  const raw = str(args, key)
  if (raw === undefined) return undefined
  if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1) throw new UsageError(`--${key} must be a whole number from 1, got ${JSON.stringify(raw)}`)
  return Number(raw)
}

/** Rows as aligned columns (the first row is the header). */
export function table (rows: string[][], indent = '  '): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  return rows.map((r) => indent + r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n')
}

export function formatHardware (profile: HardwareProfile, plans: ExecutionPlan[]): string {
  const { cpu, memory } = profile
  const out: string[] = []
  out.push(`Host      ${profile.platform} ${profile.arch}, probed ${profile.detectedAt}`)
  out.push(`CPU       ${cpu.model} (${cpu.vendor})`)
  out.push(`          ${cpu.cores.physical} physical / ${cpu.cores.logical} logical cores`)
  out.push(`          ${cpu.flags.length > 0 ? cpu.flags.join(' ') : 'no inference-relevant instruction sets reported'}`)
  out.push(`Memory    ${memory.totalMB} MB total, ${memory.availableMB} MB available, ${memory.freeMB} MB free`)
  out.push('', 'GPUs')
  if (profile.gpus.length === 0) out.push('  none found (see probes)')
  else {
    const mb = (n: number | undefined): string => n === undefined ? '?' : String(n)
    out.push(table([
      ['#', 'VENDOR', 'NAME', 'MEMORY MB (FREE/TOTAL)', 'CUDA', 'SOURCE'],
      ...profile.gpus.map((g) => [String(g.index), g.vendor, g.name, `${mb(g.memoryFreeMB)}/${mb(g.memoryTotalMB)}`, g.cudaOrdinal === undefined ? '-' : `cuda:${g.cudaOrdinal}${g.computeCapability === undefined ? '' : ` cc ${g.computeCapability}`}`, g.source])
    ]))
  }
  out.push('', 'Execution providers')
  out.push(table([['PROVIDER', 'USABLE', 'REASON'], ...profile.providers.map((p) => [p.name, p.available ? 'yes' : 'no', p.reason])]))
  out.push('', 'Probes')
  out.push(table([['PROBE', 'STATUS', 'MS', 'RESULT'], ...profile.probes.map((p) => [p.probe, p.status, String(p.ms), p.reason])]))
  out.push('', `Plans (${plans.length} model${plans.length === 1 ? '' : 's'})`)
  out.push(table([['MODEL', 'DEVICE', 'PROVIDER', 'DTYPE', 'THREADS'], ...plans.map((p) => [p.modelId, p.device, p.provider, p.dtype, String(p.intraOpThreads)])]))
  for (const p of plans) {
    out.push('', `  ${p.modelId}`)
    for (const r of p.reasons) out.push(`    - ${r}`)
  }
  const notUsed = groupFallbacks(plans)
  if (notUsed.length > 0) {
    out.push('', 'Not used')
    for (const f of notUsed) {
      out.push(`  ${f.provider} (${f.models.length === plans.length ? 'all models' : f.models.join(', ')}): ${f.reason}`)
    }
  }
  return out.join('\n') + '\n'
}

export const hardwareCommand: Command = {
  name: 'hardware',
  summary: 'show CPU, GPUs, working execution providers and the plan for each model',
  help: HELP,
  options: {
    json: { type: 'boolean' },
    device: { type: 'string' },
    tensorrt: { type: 'boolean' },
    sessions: { type: 'string' },
    catalog: { type: 'string' }
  },
  async run (args) {
    const device = str(args, 'device')
    if (device !== undefined) {
      try {
        parseDeviceSpec(device)
      } catch (err) {
        if (err instanceof ConfigError) throw new UsageError(`--device: ${err.message}`, { cause: err })
        throw err
      }
    }
    const concurrentSessions = positiveInt(args, 'sessions')
    const catalog = await loadCatalog(str(args, 'catalog') ?? DEFAULT_CATALOG_PATH)
    const profile = await detectHardware()
    const plans = planAll(catalog.models, profile, {
      ...(device === undefined ? {} : { device }),
      ...(concurrentSessions === undefined ? {} : { concurrentSessions }),
      preferTensorRT: bool(args, 'tensorrt') === true
    })
    if (bool(args, 'json') === true) {
      process.stdout.write(JSON.stringify({ ...profile, summary: summarizeHardware(profile), plans }, null, 2) + '\n')
    } else {
      process.stdout.write(formatHardware(profile, plans))
    }
    return 0
  }
}
