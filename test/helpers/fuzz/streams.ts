/**
 * Stream tools for the fuzzers: a one-shot request (send bytes, close our
 * end, collect the answer until the worker closes or resets the stream) and
 * a bounded pool that runs many of them a few at a time.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import type { FuzzInput, Mutation, Tally } from './mutate.ts'

export interface ShotResult {
  /** The worker reset the stream (aborted it) rather than closing it. */
  reset: boolean
  /** Nothing ended the stream within the wait: we aborted it. */
  timedOut: boolean
  answer: Uint8ArrayList
  /** The stream could not be opened at all. */
  openError?: string
}

/** Wait for a stream to end (close or reset), collecting what arrives; abort it after `timeoutMs`. */
export async function collect (stream: Stream, timeoutMs: number): Promise<Omit<ShotResult, 'openError'>> {
  const answer = new Uint8ArrayList()
  stream.addEventListener('message', (evt) => { answer.append(evt.data) })
  return await new Promise((resolve) => {
    const timer = setTimeout(() => {
      resolve({ reset: false, timedOut: true, answer })
      stream.abort(new Error('fuzz: no end within the wait'))
    }, timeoutMs)
    const done = (reset: boolean): void => { clearTimeout(timer); resolve({ reset, timedOut: false, answer }) }
    if (stream.status !== 'open') { done(stream.status === 'reset' || stream.status === 'aborted'); return }
    stream.addEventListener('close', (evt) => { done(evt.error !== undefined) })
    stream.addEventListener('remoteCloseWrite', () => {
      // the worker has said all it will: close ours too (it may already be)
      stream.close().catch((err: unknown) => { stream.abort(err as Error) })
    })
  })
}

/** Open a stream, send `bytes`, close our writing end and wait for the worker to end the stream. */
export async function oneShot (node: Libp2p, peer: PeerId, protocol: string, bytes: Uint8Array | Uint8ArrayList, timeoutMs: number): Promise<ShotResult> {
  let stream: Stream
  try {
    stream = await node.dialProtocol(peer, protocol, { signal: AbortSignal.timeout(timeoutMs) })
  } catch (err) {
    return { reset: false, timedOut: false, answer: new Uint8ArrayList(), openError: (err as Error).message }
  }
  const ended = collect(stream, timeoutMs)
  try {
    if (!stream.send(bytes)) await stream.onDrain({ signal: AbortSignal.timeout(timeoutMs) })
    await stream.close({ signal: AbortSignal.timeout(timeoutMs) })
  } catch (err) {
    void err // the worker reset the stream while we wrote: `ended` says so
  }
  return await ended
}

/** Run `n` tasks, `width` at a time, in order of index. */
export async function pool (n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < n) await task(next++)
  }
  await Promise.all(Array.from({ length: Math.min(width, n) }, lane))
}

/** Send each input on a stream of its own, `width` at a time; tally resets, timeouts and open errors (as rejected). */
export async function shoot (node: Libp2p, peer: PeerId, protocol: string, inputs: ReadonlyArray<{ kind: string, bytes: Uint8Array }>, tally: Tally, opts: { width: number, timeoutMs: number, onResult?: (r: ShotResult, input: FuzzInput) => void }): Promise<void> {
  await pool(inputs.length, opts.width, async (i) => {
    const input = inputs[i]!
    const r = await oneShot(node, peer, protocol, input.bytes, opts.timeoutMs)
    tally.count(input.kind as Mutation)
    if (r.reset) tally.resets++
    if (r.timedOut) tally.timeouts++
    if (r.openError !== undefined) tally.rejected++
    opts.onResult?.(r, { kind: input.kind as Mutation, bytes: input.bytes })
  })
}
