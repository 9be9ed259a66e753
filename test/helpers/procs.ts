/**
 * Start real ipfs-accelerate processes for integration tests, on 127.0.0.1
 * only, with mDNS off, and stop them for sure afterwards.
 *
 * Every process started here is tracked. Under `node --test`:
 * - one started inside a test and still running when the test ends is
 *   stopped then (SIGTERM, then SIGKILL), also when the test failed half-way
 *   (a test may still hand it to its file's `after` hook: stopping twice is
 *   harmless);
 * - one started in a `before` hook lives until the file ends;
 * - when a test fails, the log of every process it could have talked to
 *   (started during it, or alive through it) is printed under it;
 * - whatever still runs when the file's process exits gets SIGKILL.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const CLI = join(ROOT, 'bin', 'ipfs-accelerate.js')

/** A started process, its label for logs, and its stderr (the last LOG_KEEP bytes). */
interface Tracked { proc: ChildProcess, label: string, log: () => string, test: string | undefined, logAt: number }
const LOG_KEEP = 1 << 20
/** Lines of a process's log printed under a failed test. */
const LOG_LINES = 80
const tracked = new Set<Tracked>()
let currentTest: string | undefined

/** Track `proc`: its stderr is kept (bounded) for failure reports, and it is ended with the test or file that started it. */
export function track (proc: ChildProcess, label: string): () => string {
  let err = ''
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString()
    if (err.length > 2 * LOG_KEEP) err = err.slice(-LOG_KEEP)
  })
  tracked.add({ proc, label, log: () => err, test: currentTest, logAt: 0 })
  return () => err
}

const running = (p: ChildProcess): boolean => p.exitCode === null && p.signalCode === null

process.on('exit', () => {
  for (const t of tracked) if (running(t.proc)) t.proc.kill('SIGKILL')
})

if (process.env.NODE_TEST_CONTEXT !== undefined) {
  const { afterEach, beforeEach } = await import('node:test')
  beforeEach((t) => {
    currentTest = t.name
    for (const p of tracked) p.logAt = p.log().length
  })
  afterEach(async (t) => {
    currentTest = undefined
    // `passed` is in Node's TestContext since 21.7; @types/node 24 does not declare it yet.
    const passed = (t as unknown as { passed: boolean }).passed
    if (!passed) {
      for (const p of tracked) {
        if (p.test !== t.name && !running(p.proc) && p.logAt >= p.log().length) continue
        const log = p.log()
        const lines = log.slice(p.logAt <= log.length ? p.logAt : 0).trimEnd().split('\n')
        const shown = lines.slice(-LOG_LINES)
        process.stderr.write(`\n--- log of ${p.label} (pid ${p.proc.pid}, ${running(p.proc) ? 'running' : `exited ${p.proc.exitCode ?? p.proc.signalCode}`}) during "${t.name}"${lines.length > shown.length ? `, last ${shown.length} of ${lines.length} lines` : ''} ---\n${shown.join('\n')}\n--- end of ${p.label} ---\n`)
      }
    }
    const left = [...tracked].filter((p) => p.test === t.name && running(p.proc))
    await Promise.all(left.map(async (p) => { await stopProc(p.proc, 10_000) }))
    for (const p of [...tracked]) if (p.test === t.name) tracked.delete(p)
    if (left.length > 0 && !passed) process.stderr.write(`"${t.name}" ended with ${left.length} process(es) it started still running; stopped them: ${left.map((p) => p.label).join(', ')}\n`)
  })
}

export interface WorkerProc {
  proc: ChildProcess
  dataDir: string
  peerId: string
  multiaddrs: string[]
  httpUrl: string
  stderr: () => string
}

export async function tempDir (prefix: string): Promise<string> {
  return await mkdtemp(join(tmpdir(), prefix))
}

/** Start a worker and wait (bounded) for its ready line; `models: null` passes no --models (the node picks its defaults). */
export async function startWorker (opts: { dataDir?: string, models?: string | null, dtype?: string, bootstrap?: string[], config?: Record<string, unknown>, timeoutMs?: number, env?: NodeJS.ProcessEnv } = {}): Promise<WorkerProc> {
  const dataDir = opts.dataDir ?? await tempDir('ia-worker-')
  const args = [CLI, 'start', '--json', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--http', '127.0.0.1:0', ...(opts.models === null ? [] : ['--models', opts.models ?? 'demo/tiny-random']), '--dtype', opts.dtype ?? 'auto']
  for (const b of opts.bootstrap ?? []) args.push('--bootstrap', b)
  if (opts.config !== undefined) {
    const file = join(dataDir, 'test-config.json')
    await writeFile(file, JSON.stringify(opts.config))
    args.push('--config', file)
  }
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, IPFS_ACCELERATE_LOG_LEVEL: 'info', ...opts.env } })
  const stderr = track(proc, `worker ${dataDir}`)
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`worker not ready within ${opts.timeoutMs ?? 60_000} ms:\n${stderr()}`)) }, opts.timeoutMs ?? 60_000)
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined) { clearTimeout(timer); resolve(JSON.parse(line)) }
    })
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`worker exited with ${code} before ready:\n${stderr()}`)) })
  })
  return { proc, dataDir, peerId: ready.peerId as string, multiaddrs: ready.multiaddrs as string[], httpUrl: ready.httpUrl as string, stderr }
}

/**
 * Start several workers at once. If any fails to start, the ones that did
 * are stopped before the first failure is thrown, so a failed `before` hook
 * leaves no sibling running until its file ends.
 */
export async function startWorkers (opts: ReadonlyArray<Parameters<typeof startWorker>[0]>): Promise<WorkerProc[]> {
  const settled = await Promise.allSettled(opts.map(async (o) => await startWorker(o)))
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed === undefined) return settled.map((r) => (r as PromiseFulfilledResult<WorkerProc>).value)
  await Promise.all(settled.map(async (r) => { if (r.status === 'fulfilled') await stopProc(r.value.proc, 10_000) }))
  throw failed.reason
}

/** SIGTERM, wait for a clean exit (bounded), else SIGKILL. Resolves with the exit code. */
export async function stopProc (proc: ChildProcess, timeoutMs = 30_000): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
  return await new Promise((resolve) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL') }, timeoutMs)
    proc.once('exit', (code) => { clearTimeout(timer); resolve(code) })
    proc.kill('SIGTERM')
  })
}

/** A store serving its data dir (test/helpers/store-peer.ts) as its own process, once it has printed its address. */
export async function startStorePeer (dataDir: string): Promise<{ proc: ChildProcess, addr: string, peerId: string }> {
  const proc = spawn(process.execPath, [join(ROOT, 'test', 'helpers', 'store-peer.ts'), '--data-dir', dataDir], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
  const err = track(proc, `store peer ${dataDir}`)
  const ready = await new Promise<{ addr: string, peerId: string }>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`store peer not ready in 30 s:\n${err()}`)) }, 30_000)
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined) { clearTimeout(timer); resolve(JSON.parse(line) as { addr: string, peerId: string }) }
    })
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`store peer exited with ${code}:\n${err()}`)) })
  })
  return { proc, ...ready }
}

/** Run a process to completion (bounded); collect stdout and stderr. */
export async function runProc (args: string[], opts: { timeoutMs?: number, env?: NodeJS.ProcessEnv, input?: string } = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } })
  let stdout = ''
  proc.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  const stderr = track(proc, args.map((a) => a.startsWith(ROOT) ? a.slice(ROOT.length) : a).join(' ').slice(0, 120))
  proc.stdin.end(opts.input ?? '')
  const timer = setTimeout(() => { proc.kill('SIGKILL') }, opts.timeoutMs ?? 60_000)
  const code = await new Promise<number | null>((resolve) => { proc.once('exit', (c) => { resolve(c) }) })
  clearTimeout(timer)
  return { code, stdout, stderr: stderr() }
}

/** A worker's /healthz (null when it does not answer: stopped or killed). */
export async function health (url: string): Promise<{ jobs: Record<string, number>, queues: Record<string, Record<string, number | boolean>> } | null> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) })
    return await res.json() as { jobs: Record<string, number>, queues: Record<string, Record<string, number | boolean>> }
  } catch (err) {
    void err // a worker that died or stopped answers nothing
    return null
  }
}

/** Poll (bounded) until one of the workers holds at least `minHeld` jobs (counted on the worker); returns it. */
export async function waitForJobInHand<W extends { httpUrl: string }> (workers: readonly W[], timeoutMs = 30_000, minHeld = 1): Promise<W> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    for (const w of workers) {
      const h = await health(w.httpUrl)
      if ((h?.jobs.held ?? 0) >= minHeld) return w
    }
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`no worker held a job within ${timeoutMs} ms`)
}
