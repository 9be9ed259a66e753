/**
 * A job channel: one `/ipfs-accelerate/job/1.0.0` stream between a worker
 * and a client, opened by the worker on its first bid to that client and
 * reused for every later job between them. Frames name their job; a reader
 * loop hands each frame to whoever waits for that job, or to `onUnclaimed`
 * (a client's new bids). Opening a stream per job cost more than the rest of
 * a small job's trip (~3 ms here), so the stream stays open until it fails
 * or idles out; when it ends, everyone waiting on it gets the error.
 */
import type { Stream } from '@libp2p/interface'
import type { z } from 'zod'
import { ProtocolError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import { FrameStream } from './framing.ts'

interface Waiter { resolve: (msg: { t: string, jobId: string }) => void, reject: (err: Error) => void }

export interface JobChannelInit<S extends z.ZodType<{ t: string, jobId: string }>> {
  stream: Stream
  /** The remote peer id. */
  peer: string
  /** Schema of the frames this side receives. */
  incoming: S
  log: Logger
  /** A frame nobody waits for (a client's bids; anything else is logged and dropped). */
  onUnclaimed?: (msg: z.infer<S>, channel: JobChannel<S>) => void
  onClose?: (channel: JobChannel<S>) => void
}

export class JobChannel<S extends z.ZodType<{ t: string, jobId: string }> = z.ZodType<{ t: string, jobId: string }>> {
  readonly peer: string
  private readonly frames: FrameStream
  private readonly init: JobChannelInit<S>
  private readonly waiters = new Map<string, Waiter>()
  private closedWith: Error | undefined
  private writing: Promise<void> = Promise.resolve()

  constructor (init: JobChannelInit<S>) {
    this.init = init
    this.peer = init.peer
    this.frames = new FrameStream(init.stream)
    void this.readLoop()
  }

  get closed (): boolean { return this.closedWith !== undefined }

  private async readLoop (): Promise<void> {
    try {
      for (;;) {
        const msg = await this.frames.read(this.init.incoming)
        const w = this.waiters.get(msg.jobId)
        if (w !== undefined) {
          this.waiters.delete(msg.jobId)
          w.resolve(msg)
        } else if (this.init.onUnclaimed !== undefined) {
          this.init.onUnclaimed(msg, this)
        } else {
          this.init.log.debug('dropped a frame for a job nobody waits for', { peer: this.peer, jobId: msg.jobId, t: msg.t })
        }
      }
    } catch (err) {
      this.end(err instanceof Error ? err : new ProtocolError(String(err)))
    }
  }

  /** Wait for the next frame about `jobId` (register before sending what it answers). */
  async wait (jobId: string, signal: AbortSignal): Promise<z.infer<S>> {
    if (this.closedWith !== undefined) throw this.closedWith
    return await new Promise<z.infer<S>>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiters.delete(jobId)
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
      }
      if (signal.aborted) { onAbort(); return }
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiters.set(jobId, {
        resolve: (m) => { signal.removeEventListener('abort', onAbort); resolve(m as z.infer<S>) },
        reject: (e) => { signal.removeEventListener('abort', onAbort); reject(e) }
      })
    })
  }

  /** Send one frame; frames from concurrent jobs go out one after another. */
  async send (msg: { t: string, jobId: string, [key: string]: unknown }, signal?: AbortSignal): Promise<void> {
    if (this.closedWith !== undefined) throw this.closedWith
    const write = this.writing.then(async () => { await this.frames.write(msg, signal) })
    this.writing = write.catch(() => undefined) // the error reaches this send's caller; later sends still queue
    await write
  }

  /** End the channel: every waiter gets `err` (or a plain closed error). */
  end (err?: Error): void {
    if (this.closedWith !== undefined) return
    this.closedWith = err ?? new ProtocolError(`the job channel with ${this.peer} closed`)
    for (const w of this.waiters.values()) w.reject(this.closedWith)
    this.waiters.clear()
    if (err === undefined) void this.frames.close()
    else this.frames.abort(err)
    this.init.onClose?.(this)
  }
}
