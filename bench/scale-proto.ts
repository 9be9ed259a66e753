/**
 * The line protocol between bench/scale.ts and its child processes
 * (scale-host.ts: worker nodes; scale-clients.ts: short-lived clients).
 * Every protocol line on a child's stdout starts with `@@scale ` and holds
 * one JSON object, so stray output from a library cannot be taken for one.
 * Requests carry `rid`; the answer carries the same `rid`. Lines without a
 * `rid` are events (job outcomes, client summaries).
 */
import type { JobClientInit } from '../src/p2p/jobs/client.ts'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'

export const PREFIX = '@@scale '

export type Json = Record<string, unknown>

/** Job-client knobs the benchmark passes through to every ClientNode (`jobs: {...}`). */
export type Knobs = Pick<JobClientInit, 'fanout' | 'bidWindowMs' | 'maxBidWindowMs' | 'roundMs' | 'maxRoundMs' | 'heartbeatMs' | 'minLeaseMs'>

/** What a node host reports of one node. */
export interface NodeStats {
  key: string
  peerId: string
  slowdown: number
  /** JobWorker counters (executions, leases, bids, busy, results, ...). */
  jobs: Record<string, number>
  /** Queue depth and held jobs now (idle check). */
  depth: number
  held: number
  /** Workers this node has live adverts from. */
  knownWorkers: number
  peers: number
  /** Gossip messages delivered to the node (first copies, valid), by kind. */
  gossipIn: { adverts: number, offers: number }
  /** Gossip message copies received on the wire (duplicates included), by kind. */
  gossipWire: { adverts: number, offers: number }
}

/** `cpuMs`: the process's CPU time so far (user + system). */
export interface HostStats { pid: number, rss: number, heapUsed: number, cpuMs: number, loopLag: { p50: number, p99: number, max: number }, nodes: NodeStats[] }

/** One job's outcome as a client host reports it. */
export interface JobOutcome {
  tag: string
  items: number
  ok: boolean
  jobId?: string
  worker?: string
  code?: string
  message?: string
  digestOk?: boolean
  bidMs?: number
  totalMs?: number
  rounds?: number
  attempts?: number
}

/** Read a stream line by line; call `fn` with each protocol line's object. */
export function onLines (stream: Readable, fn: (msg: Json) => void): void {
  const rl = createInterface({ input: stream, crlfDelay: Infinity })
  rl.on('line', (line) => {
    if (!line.startsWith(PREFIX)) return
    let msg: Json
    try {
      msg = JSON.parse(line.slice(PREFIX.length)) as Json
    } catch (err) {
      process.stderr.write(`scale: unparsable protocol line (${(err as Error).message}): ${line.slice(0, 200)}\n`)
      return
    }
    fn(msg)
  })
}

/** Write one protocol line to stdout (children). */
export function emit (msg: Json): void {
  process.stdout.write(PREFIX + JSON.stringify(msg) + '\n')
}

/**
 * A child process spoken to in protocol lines: `request` resolves with the
 * answer of the same `rid` (bounded by a timeout), `onEvent` gets the rest.
 */
export class Child {
  readonly name: string
  readonly proc: ChildProcess
  private rid = 0
  private readonly waiting = new Map<number, { resolve: (m: Json) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }>()
  private stderrTail = ''
  exited = false
  onEvent: (msg: Json) => void = () => undefined

  constructor (name: string, script: string, args: string[], env: NodeJS.ProcessEnv, cwd: string) {
    this.name = name
    this.proc = spawn(process.execPath, [script, ...args], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] })
    onLines(this.proc.stdout!, (msg) => {
      const rid = msg.rid
      if (typeof rid === 'number') {
        const w = this.waiting.get(rid)
        if (w === undefined) return
        this.waiting.delete(rid)
        clearTimeout(w.timer)
        if (typeof msg.error === 'string') w.reject(new Error(`${this.name}: ${msg.error}`))
        else w.resolve(msg)
        return
      }
      this.onEvent(msg)
    })
    this.proc.stderr!.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-8000)
    })
    this.proc.once('exit', (code, signal) => {
      this.exited = true
      for (const w of this.waiting.values()) {
        clearTimeout(w.timer)
        w.reject(new Error(`${this.name} exited (${code ?? signal}) before answering:\n${this.stderrTail.slice(-2000)}`))
      }
      this.waiting.clear()
    })
    this.proc.stdin!.on('error', () => undefined) // a child that died: its exit is handled above
  }

  get stderr (): string { return this.stderrTail }

  send (msg: Json): void {
    if (this.exited) return
    this.proc.stdin!.write(JSON.stringify(msg) + '\n')
  }

  async request (msg: Json, timeoutMs: number): Promise<Json> {
    if (this.exited) throw new Error(`${this.name} has exited`)
    const rid = ++this.rid
    return await new Promise<Json>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid)
        reject(new Error(`${this.name}: no answer to ${String(msg.cmd)} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiting.set(rid, { resolve, reject, timer })
      this.send({ ...msg, rid })
    })
  }

  /** Ask it to exit; SIGKILL when it has not within `timeoutMs`. */
  async close (timeoutMs: number): Promise<void> {
    if (this.exited) return
    const exited = new Promise<void>((resolve) => { this.proc.once('exit', () => { resolve() }) })
    this.send({ cmd: 'exit' })
    const timer = setTimeout(() => { this.proc.kill('SIGKILL') }, timeoutMs)
    await exited
    clearTimeout(timer)
  }

  kill (): void {
    if (!this.exited) this.proc.kill('SIGKILL')
  }
}

/** Read requests from stdin (children): each line one JSON object; `fn` answers. Closing stdin calls `onClose`. */
export function serve (fn: (msg: Json) => Promise<Json | undefined>, onClose: () => void): void {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
  rl.on('line', (line) => {
    if (line.trim() === '') return
    let msg: Json
    try {
      msg = JSON.parse(line) as Json
    } catch (err) {
      process.stderr.write(`bad request line: ${(err as Error).message}\n`)
      return
    }
    const rid = msg.rid
    fn(msg).then((answer) => {
      if (typeof rid === 'number') emit({ ...(answer ?? {}), rid })
    }, (err: unknown) => {
      if (typeof rid === 'number') emit({ rid, error: err instanceof Error ? err.message : String(err) })
    })
  })
  rl.on('close', onClose)
}
