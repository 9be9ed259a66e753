/**
 * Which ONNX Runtime execution providers really work here. Three facts
 * each: onnxruntime-node lists it (listSupportedBackends), its provider
 * libraries sit next to onnxruntime_binding.node (CUDA, TensorRT), and a
 * one-time probe session on a tiny model was created and ran on it. The
 * probe runs in a child process with a time limit; its error is the reason.
 */
import { access } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ProviderName } from '../src/interfaces/index.ts'
import type { CommandRunner } from './exec.ts'
import { describeFailure, firstLine } from './exec.ts'
import type { ProbeRecord, ProviderStatus } from './types.ts'

export const ORT_PROBE = 'onnxruntime'
export const ORT_PROBE_CHILD = fileURLToPath(new URL('./ort-probe.child.ts', import.meta.url))
/** Enough for a CUDA context and a TensorRT engine build of a one-node graph. */
export const DEFAULT_ORT_PROBE_TIMEOUT_MS = 30_000

/** Providers in order of preference. */
export const PROVIDER_ORDER: readonly ProviderName[] = Object.freeze(['tensorrt', 'cuda', 'webgpu', 'cpu'])

/** Libraries a non-bundled provider needs next to onnxruntime_binding.node, per platform. */
const PROVIDER_LIBRARIES: Readonly<Record<string, Partial<Record<ProviderName, readonly string[]>>>> = Object.freeze({
  linux: { cuda: ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'], tensorrt: ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_tensorrt.so'] },
  win32: { cuda: ['onnxruntime_providers_shared.dll', 'onnxruntime_providers_cuda.dll'], tensorrt: ['onnxruntime_providers_shared.dll', 'onnxruntime_providers_tensorrt.dll'] }
})

export interface Backend { name: string, bundled: boolean }
export interface SessionProbe { ok: boolean, error?: string, ms: number }

/** What the probe child reported; missing parts mean it died or timed out before printing them. */
export interface OrtReport {
  backends?: Backend[]
  probes: Map<string, SessionProbe>
  /** Why the child did not finish, if it did not. */
  failure?: string
}

export interface ProviderInputs {
  run: CommandRunner
  nodePath: string
  /** Directory of onnxruntime_binding.node. */
  bindingDir: string
  platform: string
  fileExists?: (path: string) => Promise<boolean>
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
  signal?: AbortSignal
}

/** The directory onnxruntime-node loads its native binding from. */
export function defaultBindingDir (platform: string = process.platform, arch: string = process.arch): string {
  const index = fileURLToPath(import.meta.resolve('onnxruntime-node'))
  return join(dirname(dirname(index)), 'bin', 'napi-v6', platform, arch)
}

/** Parse the child's JSON lines (possibly cut short). Lines that are not ours are skipped and counted. */
export function parseOrtReport (stdout: string): OrtReport {
  const report: OrtReport = { probes: new Map() }
  let junk = 0
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue
    let msg: unknown
    try {
      msg = JSON.parse(line)
    } catch {
      junk++
      continue
    }
    if (typeof msg !== 'object' || msg === null) { junk++; continue }
    const m = msg as Record<string, unknown>
    if (m.type === 'backends' && Array.isArray(m.backends)) {
      report.backends = m.backends.filter((b): b is Backend => typeof b === 'object' && b !== null && typeof b.name === 'string' && typeof b.bundled === 'boolean')
    } else if (m.type === 'probe' && typeof m.provider === 'string' && typeof m.ok === 'boolean') {
      report.probes.set(m.provider, { ok: m.ok, ms: typeof m.ms === 'number' ? m.ms : 0, ...(typeof m.error === 'string' ? { error: m.error } : {}) })
    } else {
      junk++
    }
  }
  if (junk > 0 && report.backends === undefined) report.failure = `the probe child printed ${junk} line(s) that are not probe results`
  return report
}

/**
 * ONNX Runtime's messages start with a source location
 * ("/onnxruntime_src/...cc:136 Func(...) cond was false. Failed to get a WebGPU adapter: ...");
 * keep what a person can act on.
 */
export function cleanOrtError (message: string): string {
  const text = message.trim()
  const m = /^\/\S+:\d+ [\s\S]*? (?:was false|failed)\.\s+([\s\S]+)$/.exec(text)
  return firstLine(m?.[1] ?? text)
}

/** Combine the three facts into one status per known provider. Pure, for tests. */
export function providerStatuses (report: OrtReport, libraries: Partial<Record<ProviderName, Array<{ file: string, present: boolean }>>>, bindingDir: string, timeoutMs: number): ProviderStatus[] {
  return PROVIDER_ORDER.map((name): ProviderStatus => {
    const libs = libraries[name]
    const base = { name, ...(libs === undefined ? {} : { libraries: libs }) }
    if (report.backends === undefined) {
      return { ...base, available: false, listed: false, reason: `onnxruntime-node could not be asked: ${report.failure ?? 'the probe child printed nothing'}` }
    }
    const backend = report.backends.find((b) => b.name === name)
    if (backend === undefined) {
      return { ...base, available: false, listed: false, reason: `onnxruntime-node does not list the ${name} backend on this platform (listSupportedBackends: ${report.backends.map((b) => b.name).join(', ')})` }
    }
    const missing = (libs ?? []).filter((l) => !l.present).map((l) => l.file)
    if (!backend.bundled && missing.length > 0) {
      return {
        ...base,
        available: false,
        listed: true,
        bundled: false,
        reason: `not bundled with onnxruntime-node, and ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing from ${bindingDir} (npm install does not run onnxruntime-node's download script: run \`npm run ort:cuda12\` with network access to fetch them from NuGet)`
      }
    }
    const probe = report.probes.get(name)
    if (probe === undefined) {
      return { ...base, available: false, listed: true, bundled: backend.bundled, reason: `the probe session did not finish: ${report.failure ?? `the probe child stopped before reaching ${name}`} (limit ${timeoutMs} ms)` }
    }
    if (!probe.ok) {
      return { ...base, available: false, listed: true, bundled: backend.bundled, probeMs: probe.ms, reason: `a probe session failed: ${cleanOrtError(probe.error ?? 'no error message')}` }
    }
    return { ...base, available: true, listed: true, bundled: backend.bundled, probeMs: probe.ms, reason: `${backend.bundled ? 'bundled' : 'provider libraries present'}; a probe session ran on it in ${probe.ms} ms` }
  })
}

async function defaultFileExists (path: string): Promise<boolean> {
  return await access(path).then(() => true, () => false)
}

/** Probe every provider once (in a child process) and say which work. */
export async function probeProviders (inputs: ProviderInputs): Promise<{ providers: ProviderStatus[], probe: ProbeRecord }> {
  const started = performance.now()
  const timeoutMs = inputs.timeoutMs ?? DEFAULT_ORT_PROBE_TIMEOUT_MS
  const exists = inputs.fileExists ?? defaultFileExists
  const libraries: Partial<Record<ProviderName, Array<{ file: string, present: boolean }>>> = {}
  for (const [name, files] of Object.entries(PROVIDER_LIBRARIES[inputs.platform] ?? {}) as Array<[ProviderName, readonly string[]]>) {
    libraries[name] = await Promise.all(files.map(async (file) => ({ file, present: await exists(join(inputs.bindingDir, file)) })))
  }
  // Session-probe what could work: bundled ones always; others only with their libraries.
  const toProbe = PROVIDER_ORDER.filter((p) => (libraries[p] ?? []).every((l) => l.present)).reverse()
  const outcome = await inputs.run(inputs.nodePath, [ORT_PROBE_CHILD, ...toProbe], { timeoutMs, env: inputs.env, signal: inputs.signal })
  const stdout = outcome.kind === 'missing' ? '' : outcome.stdout
  const report = parseOrtReport(stdout)
  const clean = outcome.kind === 'exit' && outcome.code === 0
  if (!clean) report.failure = describeFailure('the onnxruntime probe child', outcome, timeoutMs)
  const providers = providerStatuses(report, libraries, inputs.bindingDir, timeoutMs)
  const ms = Math.round(performance.now() - started)
  const usable = providers.filter((p) => p.available).map((p) => p.name)
  return {
    providers,
    probe: {
      probe: ORT_PROBE,
      status: clean && report.backends !== undefined ? 'ok' : outcome.kind === 'timeout' ? 'timeout' : report.backends === undefined && clean ? 'unexpected-output' : 'failed',
      reason: `usable providers: ${usable.join(', ') || 'none'}${clean ? '' : `; ${report.failure ?? ''}`}`,
      path: ORT_PROBE_CHILD,
      ms
    }
  }
}
