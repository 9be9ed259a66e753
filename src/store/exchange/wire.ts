/**
 * Wire format of `/ipfs-accelerate/blocks/1.0.0`. One request per stream.
 * Every frame is varint(length) + payload; the payload's first byte says
 * what it is:
 *   0x00 control: CBOR, validated with the schemas below (requests, `has`
 *        and `manifest` answers, `end`, `error`);
 *   0x01 block:   varint(cid length) + cid bytes + block bytes.
 * A `dag` request names subtree roots; the server streams every block of
 * each subtree, a parent before its children, then `end`. A `blocks`
 * request streams exactly the named blocks. A missing block ends the
 * stream with an `error` frame naming it.
 */
import { decode, encode } from 'cborg'
import type { Stream } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import { Uint8ArrayList } from 'uint8arraylist'
import { z } from 'zod'
import { ProtocolError, MessageTooLargeError } from '../../errors.ts'
import { MAX_BLOCK_BYTES } from '../blocks/cid.ts'

export const BLOCKS_PROTOCOL = '/ipfs-accelerate/blocks/1.0.0'
export const WIRE_VERSION = 1
export const KIND_CONTROL = 0
export const KIND_BLOCK = 1
export const MAX_CONTROL_BYTES = 4 * 1024 * 1024
export const MAX_FRAME_BYTES = MAX_BLOCK_BYTES + 256
export const MAX_ROOTS_PER_REQUEST = 4096
/** Cache keys in one lookup: a job's texts, asked in one round trip. */
export const MAX_CACHE_KEYS = 256

const v = z.literal(WIRE_VERSION)
const cidBytes = z.instanceof(Uint8Array).refine((b) => b.byteLength > 0 && b.byteLength <= 128, 'CID bytes')
const roots = z.array(cidBytes).min(1).max(MAX_ROOTS_PER_REQUEST)

export const requestSchema = z.discriminatedUnion('t', [
  z.strictObject({ v, t: z.literal('dag'), roots }),
  z.strictObject({ v, t: z.literal('blocks'), roots }),
  z.strictObject({ v, t: z.literal('has'), roots }),
  z.strictObject({ v, t: z.literal('manifest'), ref: z.string().min(1).max(300) }),
  z.strictObject({ v, t: z.literal('cache'), keys: z.array(z.string().regex(/^[0-9a-f]{64}$/)).min(1).max(MAX_CACHE_KEYS) })
])
export type Request = z.infer<typeof requestSchema>

export const replySchema = z.discriminatedUnion('t', [
  z.strictObject({ v, t: z.literal('end'), blocks: z.number().int().nonnegative() }),
  z.strictObject({ v, t: z.literal('has'), have: z.array(z.boolean()).max(MAX_ROOTS_PER_REQUEST) }),
  z.strictObject({ v, t: z.literal('manifest'), record: z.unknown() }),
  z.strictObject({ v, t: z.literal('none') }),
  z.strictObject({ v, t: z.literal('error'), code: z.string().regex(/^ERR_[A-Z0-9_]{1,60}$/), message: z.string().max(2000), cid: z.string().max(200).optional() })
])
export type Reply = z.infer<typeof replySchema>

function varintBytes (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return Uint8Array.from(out)
}

export function controlFrame (msg: Request | Reply): Uint8Array {
  const body = encode(msg)
  if (body.byteLength + 1 > MAX_CONTROL_BYTES) throw new MessageTooLargeError(`control message of ${body.byteLength} bytes is over ${MAX_CONTROL_BYTES}`)
  const payloadLen = body.byteLength + 1
  const prefix = varintBytes(payloadLen)
  const out = new Uint8Array(prefix.byteLength + payloadLen)
  out.set(prefix, 0)
  out[prefix.byteLength] = KIND_CONTROL
  out.set(body, prefix.byteLength + 1)
  return out
}

/** A block frame as a list (no copy of the block bytes). */
export function blockFrame (cid: CID, bytes: Uint8Array): Uint8ArrayList {
  const cidLen = varintBytes(cid.bytes.byteLength)
  const payloadLen = 1 + cidLen.byteLength + cid.bytes.byteLength + bytes.byteLength
  const lenBytes = varintBytes(payloadLen)
  const head = new Uint8Array(lenBytes.byteLength + 1 + cidLen.byteLength + cid.bytes.byteLength)
  head.set(lenBytes, 0)
  head[lenBytes.byteLength] = KIND_BLOCK
  head.set(cidLen, lenBytes.byteLength + 1)
  head.set(cid.bytes, lenBytes.byteLength + 1 + cidLen.byteLength)
  return new Uint8ArrayList(head, bytes)
}

export type Frame =
  | { kind: 'control', msg: unknown }
  | { kind: 'block', cid: CID, bytes: Uint8Array }

function decodePayload (payload: Uint8Array): Frame {
  const kind = payload[0]
  if (kind === KIND_CONTROL) {
    let msg: unknown
    try {
      msg = decode(payload.subarray(1), { useMaps: false, rejectDuplicateMapKeys: true, allowUndefined: false })
    } catch (err) {
      throw new ProtocolError(`not valid CBOR: ${(err as Error).message}`, { cause: err })
    }
    return { kind: 'control', msg }
  }
  if (kind === KIND_BLOCK) {
    let pos = 1
    let cidLen = 0
    let shift = 0
    for (;;) {
      const b = payload[pos++]
      if (b === undefined || shift > 14) throw new ProtocolError('bad CID length in a block frame')
      cidLen += (b & 0x7f) << shift
      if ((b & 0x80) === 0) break
      shift += 7
    }
    if (cidLen === 0 || pos + cidLen > payload.byteLength) throw new ProtocolError('truncated block frame')
    let cid: CID
    try {
      cid = CID.decode(payload.subarray(pos, pos + cidLen))
    } catch (err) {
      throw new ProtocolError(`bad CID in a block frame: ${(err as Error).message}`, { cause: err })
    }
    return { kind: 'block', cid, bytes: payload.subarray(pos + cidLen) }
  }
  throw new ProtocolError(`unknown frame kind ${String(kind)}`)
}

export function parseControl<S extends z.ZodType> (msg: unknown, schema: S): z.infer<S> {
  const parsed = schema.safeParse(msg)
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new ProtocolError(`invalid message: ${problems}`)
  }
  return parsed.data
}

/**
 * Reads frames from a stream with backpressure: past `highWater` buffered
 * bytes the stream is paused (yamux then stops granting window), and it is
 * resumed once the reader has consumed below half of that.
 */
export class FrameReader {
  private readonly stream: Stream
  private readonly buf = new Uint8ArrayList()
  private readonly highWater: number
  private readonly maxFrame: number
  private ended = false
  private error: Error | undefined
  private wake: (() => void) | undefined
  private paused = false
  private resuming = false

  constructor (stream: Stream, options: { highWater?: number, maxFrame?: number } = {}) {
    this.stream = stream
    this.highWater = options.highWater ?? 8 * 1024 * 1024
    this.maxFrame = options.maxFrame ?? MAX_FRAME_BYTES
    // a paused stream keeps what is in flight (up to the yamux window) in its own buffer
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, 32 * 1024 * 1024)
    stream.addEventListener('message', (evt) => {
      this.buf.append(evt.data)
      this.maybePause()
      this.notify()
    })
    stream.addEventListener('remoteCloseWrite', () => { this.ended = true; this.notify() })
    stream.addEventListener('close', (evt) => {
      this.ended = true
      if (evt.error !== undefined) this.error = evt.error
      this.notify()
    })
  }

  private notify (): void {
    const w = this.wake
    this.wake = undefined
    w?.()
  }

  /** The next frame, or undefined at a clean end of stream. */
  async next (signal?: AbortSignal): Promise<Frame | undefined> {
    for (;;) {
      signal?.throwIfAborted()
      const frame = this.tryParse()
      if (frame !== undefined) return frame
      if (this.error !== undefined) throw this.error
      if (this.ended) {
        if (this.buf.byteLength > 0) throw new ProtocolError(`stream ended inside a frame (${this.buf.byteLength} bytes left)`)
        return undefined
      }
      // about to wait for data: a paused stream would never deliver the rest of this frame
      this.maybeResume()
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          this.wake = undefined
          reject(signal?.reason)
        }
        this.wake = () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        }
        signal?.addEventListener('abort', onAbort, { once: true })
      })
    }
  }

  private tryParse (): Frame | undefined {
    const buf = this.buf
    let len = 0
    let shift = 0
    let pos = 0
    for (;;) {
      if (pos >= buf.byteLength) return undefined
      const b = buf.get(pos++)
      len += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) break
      shift += 7
      if (shift > 28) throw new ProtocolError('frame length varint too long')
    }
    if (len === 0 || len > this.maxFrame) throw new MessageTooLargeError(`frame of ${len} bytes (limit ${this.maxFrame})`)
    if (buf.byteLength < pos + len) return undefined
    const payload = buf.subarray(pos, pos + len)
    buf.consume(pos + len)
    if (buf.byteLength < this.highWater / 2) this.maybeResume()
    return decodePayload(payload)
  }

  private maybePause (): void {
    if (this.paused || this.resuming || this.buf.byteLength <= this.highWater || this.stream.readStatus !== 'readable') return
    this.paused = true
    this.stream.pause()
  }

  /**
   * resume() first dispatches what the stream buffered (our listener runs
   * inside it) and only then lets the muxer grant window again: pausing from
   * inside that dispatch would be undone by it, and the stream would then
   * buffer without limit. So pause again, if need be, after resume returns.
   */
  private maybeResume (): void {
    if (!this.paused) return
    this.paused = false
    if (this.stream.readStatus !== 'paused') return
    this.resuming = true
    try {
      this.stream.resume()
    } finally {
      this.resuming = false
    }
    this.maybePause()
  }
}

/** Send bytes, waiting (at most `stallMs`) for the stream to drain when its buffers are full. */
export async function sendFrame (stream: Stream, data: Uint8Array | Uint8ArrayList, signal?: AbortSignal, stallMs = 60_000): Promise<void> {
  if (stream.send(data)) return
  const timeout = AbortSignal.timeout(stallMs)
  try {
    await stream.onDrain({ signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]) })
  } catch (err) {
    if (timeout.aborted && signal?.aborted !== true) throw new ProtocolError(`the peer read nothing for ${stallMs} ms`, { cause: err })
    throw err
  }
}
