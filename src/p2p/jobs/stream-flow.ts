/**
 * Flow control of a streaming job's partials on the wire (job protocol
 * 1.1.0), one object per job on each side.
 *
 * The worker numbers partials from 0 (`seq`) and may have at most `window`
 * of them that the client has not acknowledged. The client acknowledges
 * (`ack` with `next`: how many partials its caller has consumed) as it hands
 * them to its caller, every ⌈window/2⌉ and on each heartbeat. So a slow
 * reader pauses its job's `emit` on the worker, and each side holds at most
 * `window` partials of a job: the worker keeps the unacknowledged ones (its
 * replay buffer: a client that lost the link resumes with `query
 * {fromSeq}`), the client those it has not handed on yet.
 *
 * Both sides hash the partials in order (sha256 over the output hash of
 * each); the worker signs the count and that hash with the result, so the
 * stream the caller saw is covered by the result's provenance.
 */
import { createHash } from 'node:crypto'
import type { Hash } from 'node:crypto'
import { JobCancelledError, ProtocolError } from '../../errors.ts'
import { hashOutput } from '../trust/provenance.ts'

/** Partials a worker may have unacknowledged per job, unless the client asks for fewer (assign `window`). */
export const DEFAULT_STREAM_WINDOW = 16

/** The running hash of a job's partials, in order. */
export class PartialsHash {
  private readonly h: Hash = createHash('sha256')
  count = 0
  add (data: Record<string, unknown>): void {
    this.h.update(hashOutput(data))
    this.count++
  }

  digest (): Uint8Array { return new Uint8Array(this.h.copy().digest()) }
}

export interface PartialOutInit {
  window: number
  /**
   * Put one partial frame on the client's current link; resolves false when
   * there is none or it broke (the stream pauses until the client resumes).
   */
  send: (seq: number, data: Record<string, unknown>) => Promise<boolean>
}

/** The worker's side: numbers partials, keeps the unacknowledged ones, pauses `emit` when the window is full. */
export class PartialOut {
  private readonly init: PartialOutInit
  private readonly buffer = new Map<number, Record<string, unknown>>()
  private waiters: Array<() => void> = []
  readonly hash = new PartialsHash()
  /** Seq of the next partial. */
  next = 0
  /** Partials the client consumed (its last ack). */
  acked = 0
  /** Partials handed to the link (seq < sent); reset when the link breaks, to what the client asks for on resume. */
  sent = 0
  /** The link broke: nothing is sent until the client resumes. */
  broken = false
  private flushing = false
  /** Times `emit` waited for the client (the job paused). */
  pauses = 0

  constructor (init: PartialOutInit) {
    this.init = init
  }

  get window (): number { return this.init.window }
  /** Partials held for a possible replay (at most `window`). */
  get buffered (): number { return this.buffer.size }
  /** Every partial is on the wire: the result may follow. */
  get flushed (): boolean { return !this.broken && this.sent === this.next }

  /** A partial from the runner: numbered, kept, sent; resolves when the window has room for the next. */
  async emit (data: Record<string, unknown>, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted()
    this.buffer.set(this.next, data)
    this.hash.add(data)
    this.next++
    this.flush()
    if (this.next - this.acked < this.init.window) return
    this.pauses++
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => { reject(signal.reason instanceof Error ? signal.reason : new JobCancelledError()) }
      signal.addEventListener('abort', onAbort, { once: true })
      const check = (): void => {
        if (this.next - this.acked < this.init.window) { signal.removeEventListener('abort', onAbort); resolve() } else this.waiters.push(check)
      }
      check()
    })
  }

  /** The client consumed `next` partials. Throws ProtocolError for an ack of partials never sent. */
  ack (next: number): void {
    if (next > this.next) throw new ProtocolError(`an ack for ${next} partials, but only ${this.next} were sent`)
    if (next <= this.acked) return
    for (let s = this.acked; s < next; s++) this.buffer.delete(s)
    this.acked = next
    if (this.sent < next) this.sent = next
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  /**
   * The client lost the link and asks again from `fromSeq`: every partial
   * from there is sent again. False when those partials are gone (the
   * client asks for ones it acknowledged, or past the end).
   */
  resume (fromSeq: number): boolean {
    if (fromSeq < this.acked || fromSeq > this.next) return false
    // Not an ack: the client may still hold those partials unconsumed, so the window keeps counting them.
    this.sent = fromSeq
    this.broken = false
    this.flush()
    return true
  }

  /** Send what is unsent, in order, on the current link. */
  flush (): void {
    if (this.flushing || this.broken) return
    this.flushing = true
    const step = (): void => {
      if (this.broken || this.sent >= this.next) { this.flushing = false; return }
      const seq = this.sent++
      const data = this.buffer.get(seq)
      if (data === undefined) { this.flushing = false; return } // acknowledged meanwhile
      // Frames are queued on the link in order: no need to wait for one to go before queueing the next.
      this.init.send(seq, data).then((ok) => { if (!ok) this.broken = true }, () => { this.broken = true })
      step()
    }
    step()
  }
}

export interface PartialInInit {
  window: number
  /** The caller's callback; awaited before the next partial is handed on. */
  onPartial: (data: Record<string, unknown>, seq: number) => void | Promise<void>
  /** Send an ack (never throws). */
  sendAck: (next: number) => void
}

/** The client's side: partials in order, handed to the caller one at a time, acknowledged as consumed. */
export class PartialIn {
  private readonly init: PartialInInit
  private chain: Promise<void> = Promise.resolve()
  private lastAck = 0
  private failed: Error | undefined
  private closed = false
  readonly hash = new PartialsHash()
  /** Seq of the next partial expected. */
  next = 0
  /** Partials the caller has consumed. */
  consumed = 0
  /** performance.now() of the first partial. */
  firstAt: number | undefined

  constructor (init: PartialInInit) {
    this.init = init
  }

  /** Handed on and not yet consumed. */
  get pending (): number { return this.next - this.consumed }

  /** A partial frame: a duplicate (a replay after resume) is dropped; a gap or a window overrun is a ProtocolError. */
  receive (seq: number, data: Record<string, unknown>): void {
    if (seq < this.next) return
    if (seq > this.next) throw new ProtocolError(`partial ${seq} arrived when ${this.next} was expected: the worker skipped some`)
    if (this.next - this.lastAck >= this.init.window) throw new ProtocolError(`the worker sent past its window of ${this.init.window} unacknowledged partials`)
    this.next++
    this.firstAt ??= performance.now()
    this.hash.add(data)
    this.chain = this.chain.then(async () => {
      if (this.failed !== undefined || this.closed) return
      await this.init.onPartial(data, seq)
      this.consumed++
      if (this.consumed - this.lastAck >= Math.max(1, Math.ceil(this.init.window / 2))) this.ackNow()
    }).catch((err: unknown) => { this.failed ??= err as Error })
  }

  /** The job ended: partials not yet handed on are dropped (the caller hears of the job's end instead). */
  close (): void {
    this.closed = true
  }

  /** Acknowledge what was consumed (also a keep-alive while the caller is slow). */
  ackNow (): void {
    this.lastAck = this.consumed
    this.init.sendAck(this.consumed)
  }

  /** Resolves once every partial received was handed to the caller; rejects with the caller's error. */
  async drained (): Promise<void> {
    await this.chain
    if (this.failed !== undefined) throw this.failed
  }

  /** The caller's callback threw: the job ends with that error. */
  get error (): Error | undefined { return this.failed }
}
