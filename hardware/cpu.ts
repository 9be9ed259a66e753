/**
 * CPU and memory: instruction sets from the kernel's /proc/cpuinfo, topology
 * and memory from systeminformation (which reads lscpu and /proc/meminfo).
 */
import { readFile as fsReadFile } from 'node:fs/promises'
import type { CpuInfo, MemoryInfo, ProbeRecord } from './types.ts'

/** The parts of systeminformation's answers this module reads. */
export interface SiCpu { manufacturer: string, brand: string, vendor: string, cores: number, physicalCores: number }
export interface SiMem { total: number, free: number, available: number }
export interface CpuSources {
  /** Reads a text file (default: fs). */
  readFile: (path: string) => Promise<string>
  /** systeminformation.cpu() */
  siCpu: () => Promise<SiCpu>
  /** systeminformation.mem() */
  siMem: () => Promise<SiMem>
  /** process.arch */
  arch: string
}

export const CPUINFO_PATH = '/proc/cpuinfo'

/**
 * Kernel flag name → canonical name, for the instruction sets ONNX Runtime's
 * kernels use. x86 names are the kernel's; ARM `Features` names map to the
 * names people search for.
 */
const X86_FLAGS: Readonly<Record<string, string>> = Object.freeze({
  sse4_2: 'sse4_2',
  avx: 'avx',
  avx2: 'avx2',
  fma: 'fma',
  f16c: 'f16c',
  avx512f: 'avx512f',
  avx512bw: 'avx512bw',
  avx512_vnni: 'avx512_vnni',
  avx512_bf16: 'avx512_bf16',
  avx512_fp16: 'avx512_fp16',
  avx_vnni: 'avx_vnni',
  amx_tile: 'amx_tile',
  amx_int8: 'amx_int8',
  amx_bf16: 'amx_bf16'
})
const ARM_FEATURES: Readonly<Record<string, string>> = Object.freeze({
  asimd: 'neon',
  neon: 'neon', // 32-bit ARM kernels
  asimdhp: 'fp16',
  asimddp: 'dotprod',
  i8mm: 'i8mm',
  bf16: 'bf16',
  sve: 'sve',
  sve2: 'sve2'
})

/** Canonical order for display. */
const FLAG_ORDER: readonly string[] = Object.freeze([
  ...new Set([...Object.values(X86_FLAGS), ...Object.values(ARM_FEATURES)])
])

/** What one /proc/cpuinfo says, before systeminformation fills the gaps. */
export interface CpuinfoFacts {
  vendor?: string
  model?: string
  logicalCores: number
  /** Distinct (physical id, core id) pairs; undefined where the kernel does not print topology (ARM). */
  physicalCores?: number
  allFlags: string[]
  flags: string[]
}

const ARM_IMPLEMENTERS: Readonly<Record<string, string>> = Object.freeze({
  '0x41': 'ARM', '0x42': 'Broadcom', '0x43': 'Cavium', '0x46': 'Fujitsu', '0x48': 'HiSilicon',
  '0x4e': 'NVIDIA', '0x50': 'APM', '0x51': 'Qualcomm', '0x61': 'Apple', '0x69': 'Intel', '0xc0': 'Ampere'
})

/** Parse /proc/cpuinfo text (x86 or ARM). Throws on text that has no processor entries. */
export function parseCpuinfo (text: string): CpuinfoFacts {
  const blocks = text.split(/\n\s*\n/).map((b) => parseBlock(b)).filter((b) => b.has('processor'))
  if (blocks.length === 0) throw new Error('no "processor" entries: not /proc/cpuinfo output')
  const first = blocks[0] as Map<string, string>
  const rawFlags = first.get('flags') ?? first.get('features') ?? ''
  const allFlags = rawFlags.split(/\s+/).filter((f) => f !== '').map((f) => f.toLowerCase())
  const table = first.has('flags') ? X86_FLAGS : ARM_FEATURES
  const found = new Set(allFlags.flatMap((f) => table[f] ?? []))
  const flags = FLAG_ORDER.filter((f) => found.has(f))

  const cores = new Set<string>()
  for (const b of blocks) {
    const core = b.get('core id')
    if (core !== undefined) cores.add(`${b.get('physical id') ?? '0'}:${core}`)
  }
  const implementer = first.get('cpu implementer')
  const vendor = first.get('vendor_id') ?? (implementer === undefined ? undefined : ARM_IMPLEMENTERS[implementer.toLowerCase()] ?? `implementer ${implementer}`)
  return {
    vendor,
    model: first.get('model name'),
    logicalCores: blocks.length,
    physicalCores: cores.size > 0 ? cores.size : undefined,
    allFlags,
    flags
  }
}

function parseBlock (block: string): Map<string, string> {
  const m = new Map<string, string>()
  for (const line of block.split('\n')) {
    const i = line.indexOf(':')
    if (i <= 0) continue
    const key = line.slice(0, i).trim().toLowerCase()
    if (!m.has(key)) m.set(key, line.slice(i + 1).trim())
  }
  return m
}

const MB = 1024 * 1024

export interface CpuDetection { cpu: CpuInfo, memory: MemoryInfo, probes: ProbeRecord[] }

/** Detect CPU and memory from /proc/cpuinfo and systeminformation. */
export async function detectCpu (sources: CpuSources): Promise<CpuDetection> {
  const probes: ProbeRecord[] = []
  let t = performance.now()
  let facts: CpuinfoFacts | undefined
  const text = await sources.readFile(CPUINFO_PATH).then((s) => s, (err: unknown) => {
    probes.push({ probe: CPUINFO_PATH, status: 'missing', reason: `cannot read ${CPUINFO_PATH}: ${(err as Error).message}`, ms: ms(t) })
    return undefined
  })
  if (text !== undefined) {
    try {
      facts = parseCpuinfo(text)
      probes.push({ probe: CPUINFO_PATH, status: 'ok', reason: `${facts.logicalCores} logical CPUs, ${facts.allFlags.length} flags`, path: CPUINFO_PATH, ms: ms(t) })
    } catch (err) {
      probes.push({ probe: CPUINFO_PATH, status: 'unexpected-output', reason: `${CPUINFO_PATH}: ${(err as Error).message}`, path: CPUINFO_PATH, ms: ms(t) })
    }
  }

  t = performance.now()
  const [siCpuResult, siMemResult] = await Promise.allSettled([sources.siCpu(), sources.siMem()])
  const si = siCpuResult.status === 'fulfilled' ? siCpuResult.value : undefined
  const mem = siMemResult.status === 'fulfilled' ? siMemResult.value : undefined
  const siProblems = [siCpuResult, siMemResult].flatMap((r, i) => r.status === 'rejected' ? [`${i === 0 ? 'cpu()' : 'mem()'}: ${(r.reason as Error).message}`] : [])
  probes.push({
    probe: 'systeminformation',
    status: siProblems.length === 0 ? 'ok' : 'failed',
    reason: siProblems.length === 0 ? `${si?.physicalCores ?? '?'} physical / ${si?.cores ?? '?'} logical cores, ${Math.round((mem?.total ?? 0) / MB)} MB memory` : siProblems.join('; '),
    ms: ms(t)
  })

  const siModel = si === undefined ? undefined : `${si.manufacturer} ${si.brand}`.trim()
  const logical = positive(si?.cores) ?? facts?.logicalCores ?? 1
  const cpu: CpuInfo = {
    vendor: facts?.vendor ?? nonEmpty(si?.vendor) ?? nonEmpty(si?.manufacturer) ?? 'unknown',
    // /proc/cpuinfo's model name is the CPU's own brand string; ARM kernels print none, lscpu (via si) names the core.
    model: facts?.model ?? nonEmpty(siModel) ?? 'unknown',
    arch: sources.arch,
    cores: {
      // si takes topology from lscpu (which also knows ARM clusters); cpuinfo's core ids are the fallback.
      physical: positive(si?.physicalCores) ?? facts?.physicalCores ?? logical,
      logical
    },
    flags: facts?.flags ?? [],
    allFlags: facts?.allFlags ?? []
  }
  const memory: MemoryInfo = {
    totalMB: Math.round((mem?.total ?? 0) / MB),
    freeMB: Math.round((mem?.free ?? 0) / MB),
    availableMB: Math.round((mem?.available ?? 0) / MB)
  }
  return { cpu, memory, probes }
}

/** The real sources, systeminformation loaded on first use (no side effects at import). */
export function defaultCpuSources (): CpuSources {
  return {
    readFile: async (path) => await fsReadFile(path, 'utf8'),
    siCpu: async () => await (await import('systeminformation')).default.cpu(),
    siMem: async () => await (await import('systeminformation')).default.mem(),
    arch: process.arch
  }
}

/** Which of a CPU's instruction sets speed up int8 (quantized) inference, best first. */
const INT8_FEATURES: ReadonlyArray<readonly [string, string]> = Object.freeze([
  ['amx_int8', 'AMX int8 tiles'],
  ['avx512_vnni', 'AVX-512 VNNI int8 dot products'],
  ['avx_vnni', 'AVX-VNNI int8 dot products'],
  ['avx2', 'AVX2'],
  ['i8mm', 'ARM i8mm int8 matrix multiply'],
  ['dotprod', 'ARM dotprod int8 dot products']
] as const)

/** The best int8 feature the CPU has, with a description, or undefined. */
export function int8Capability (cpu: Pick<CpuInfo, 'flags'>): { flag: string, description: string } | undefined {
  const found = INT8_FEATURES.find(([flag]) => cpu.flags.includes(flag))
  return found === undefined ? undefined : { flag: found[0], description: found[1] }
}

function ms (t: number): number { return Math.round(performance.now() - t) }
function positive (n: number | undefined): number | undefined { return n !== undefined && Number.isFinite(n) && n > 0 ? n : undefined }
function nonEmpty (s: string | undefined): string | undefined { return s === undefined || s.trim() === '' ? undefined : s.trim() }
