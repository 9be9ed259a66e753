/**
 * Running external tools: never through a shell, always with a time limit
 * and an output limit. A runner resolves to what happened instead of
 * throwing, so each probe turns every ending into a reason.
 */
import { spawn } from 'node:child_process'
import { access, constants as fsConstants, stat } from 'node:fs/promises'
import { delimiter, isAbsolute, join } from 'node:path'

export const DEFAULT_TOOL_TIMEOUT_MS = 5_000
export const DEFAULT_MAX_BUFFER = 4 * 1024 * 1024

export interface RunOptions {
  timeoutMs: number
  /** Bytes of stdout (and, separately, stderr) to keep; more fails the run. */
  maxBuffer?: number
  env?: NodeJS.ProcessEnv
  signal?: AbortSignal
}

/** What running a tool came to. stdout/stderr hold what was printed, also on failure. */
export type RunOutcome =
  | { kind: 'exit', code: number, stdout: string, stderr: string, ms: number }
  | { kind: 'signal', signal: string, stdout: string, stderr: string, ms: number }
  | { kind: 'timeout', stdout: string, stderr: string, ms: number }
  | { kind: 'missing', message: string, ms: number }
  | { kind: 'error', message: string, stdout: string, stderr: string, ms: number }

export type CommandRunner = (file: string, args: readonly string[], options: RunOptions) => Promise<RunOutcome>

/**
 * The real runner: `spawn` without a shell. On timeout the child gets
 * SIGKILL and the outcome resolves at once, even if the child cannot die
 * yet (a tool stuck in the kernel driver).
 */
export const execRunner: CommandRunner = async (file, args, options) => {
  const started = performance.now()
  const maxBuffer = options.maxBuffer ?? DEFAULT_MAX_BUFFER
  return await new Promise<RunOutcome>((resolve) => {
    const out: Buffer[] = []
    const err: Buffer[] = []
    let outBytes = 0
    let errBytes = 0
    let settled = false
    const elapsed = (): number => Math.round(performance.now() - started)
    const text = (chunks: Buffer[]): string => Buffer.concat(chunks).toString('utf8')

    const child = spawn(file, args, {
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
      shell: false
    })

    const finish = (outcome: RunOutcome): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      resolve(outcome)
    }
    const kill = (): void => {
      child.kill('SIGKILL')
      // Do not wait for a child that cannot die: drop our ends of its pipes.
      child.stdout.destroy()
      child.stderr.destroy()
      child.unref()
    }
    const onAbort = (): void => {
      kill()
      finish({ kind: 'error', message: `aborted: ${String(options.signal?.reason ?? 'signal')}`, stdout: text(out), stderr: text(err), ms: elapsed() })
    }
    const timer = setTimeout(() => {
      kill()
      finish({ kind: 'timeout', stdout: text(out), stderr: text(err), ms: elapsed() })
    }, options.timeoutMs)

    if (options.signal?.aborted === true) { onAbort(); return }
    options.signal?.addEventListener('abort', onAbort, { once: true })

    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length
      if (outBytes > maxBuffer) {
        kill()
        finish({ kind: 'error', message: `printed more than ${maxBuffer} bytes on stdout`, stdout: text(out), stderr: text(err), ms: elapsed() })
        return
      }
      out.push(chunk)
    })
    child.stderr.on('data', (chunk: Buffer) => {
      errBytes += chunk.length
      if (errBytes <= maxBuffer) err.push(chunk)
    })
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        finish({ kind: 'missing', message: `${file}: not found (ENOENT)`, ms: elapsed() })
        return
      }
      finish({ kind: 'error', message: `${file}: ${e.message}`, stdout: text(out), stderr: text(err), ms: elapsed() })
    })
    child.on('close', (code, signal) => {
      if (signal !== null) finish({ kind: 'signal', signal, stdout: text(out), stderr: text(err), ms: elapsed() })
      else finish({ kind: 'exit', code: code ?? 0, stdout: text(out), stderr: text(err), ms: elapsed() })
    })
  })
}

/** Whether a path is an executable regular file. */
export type ExecutableCheck = (path: string) => Promise<boolean>

export const isExecutableFile: ExecutableCheck = async (path) => {
  const ok = await access(path, fsConstants.X_OK).then(() => true, () => false)
  if (!ok) return false
  const st = await stat(path).then((s) => s, () => undefined)
  return st?.isFile() === true
}

/**
 * Find a tool on PATH the way execvp does: the first directory that holds
 * an executable file of that name. Returns undefined when none does.
 */
export async function findOnPath (name: string, pathEnv: string | undefined, isExecutable: ExecutableCheck = isExecutableFile): Promise<string | undefined> {
  if (pathEnv === undefined || pathEnv === '') return undefined
  for (const dir of pathEnv.split(delimiter)) {
    if (dir === '' || !isAbsolute(dir)) continue
    const candidate = join(dir, name)
    if (await isExecutable(candidate)) return candidate
  }
  return undefined
}

/** The first line of a tool's complaint, for a reason string. */
export function firstLine (...texts: string[]): string {
  for (const t of texts) {
    const line = t.split('\n').map((l) => l.trim()).find((l) => l !== '')
    if (line !== undefined) return line.length > 300 ? line.slice(0, 300) + '…' : line
  }
  return '(no output)'
}

/** A reason for any outcome that is not a clean exit 0. */
export function describeFailure (tool: string, outcome: RunOutcome, timeoutMs: number): string {
  switch (outcome.kind) {
    case 'missing': return `${tool} is not installed: ${outcome.message}`
    case 'timeout': return `${tool} did not answer within ${timeoutMs} ms and was killed (a hung driver?)`
    case 'signal': return `${tool} was killed by ${outcome.signal}: ${firstLine(outcome.stderr, outcome.stdout)}`
    case 'error': return `${tool} failed: ${outcome.message}`
    case 'exit': return `${tool} exited with code ${outcome.code}: ${firstLine(outcome.stdout, outcome.stderr)}`
  }
}
