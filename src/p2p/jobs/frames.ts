/**
 * Framing of a job link. Each frame names its job outside its body:
 *
 *   varint(len jobId) jobId varint(len body) body(CBOR)
 *
 * so a reader knows whose frame it is before it reads the body. A body over
 * its job's limit (the limits differ per skillset and direction) is skipped
 * as it streams by, without buffering, and only that job fails; a body that
 * does not decode or validate fails only its job too. Only a broken header
 * (bad varint, bad job id) ends the link, since the reader cannot find the
 * next frame after it.
 */
import { Uint8ArrayList } from 'uint8arraylist'
import { ProtocolError } from '../../errors.ts'
import { encodeMessage } from '../wire/codec.ts'
import { MAX_FRAME_BYTES } from '../wire/protocol.ts'

const JOB_ID = /^[A-Za-z0-9_-]{8,64}$/
const MAX_JOB_ID_BYTES = 64
const utf8 = new TextEncoder()
const latin1 = new TextDecoder('latin1')

function varint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  out.push(n)
  return Uint8Array.from(out)
}

/** One frame on the wire. `maxBytes` bounds the body (the frame's own limit). */
export function encodeFrame (msg: { jobId: string }, maxBytes: number = MAX_FRAME_BYTES): Uint8ArrayList {
  const id = utf8.encode(msg.jobId)
  const body = encodeMessage(msg, Math.min(maxBytes, MAX_FRAME_BYTES))
  return new Uint8ArrayList(varint(id.byteLength), id, varint(body.byteLength), body)
}

export interface FrameSink {
  /** The body limit for this job's next frame, by what this side knows of the job. */
  limitFor(jobId: string): number
  frame(jobId: string, body: Uint8Array): void
  /** A body over its limit was skipped. */
  oversize(jobId: string, bytes: number, limit: number): void
}

type State =
  | { k: 'idLen' }
  | { k: 'id', len: number }
  | { k: 'bodyLen', jobId: string }
  | { k: 'body', jobId: string, len: number }
  | { k: 'skip', jobId: string, left: number }

export class FrameReader {
  private readonly buf = new Uint8ArrayList()
  private state: State = { k: 'idLen' }
  private readonly sink: FrameSink

  constructor (sink: FrameSink) {
    this.sink = sink
  }

  /** Bytes held, waiting for the rest of a frame. */
  get buffered (): number { return this.buf.byteLength }

  /** Whether a frame has begun and not ended (its header or body is partly read, or a body is being skipped). */
  get midFrame (): boolean { return this.state.k !== 'idLen' || this.buf.byteLength > 0 }

  /** Feed bytes as they arrive; throws ProtocolError on a header it cannot parse. */
  push (chunk: Uint8Array | Uint8ArrayList): void {
    this.buf.append(chunk)
    for (;;) {
      const s = this.state
      if (s.k === 'skip') {
        const n = Math.min(s.left, this.buf.byteLength)
        this.buf.consume(n)
        s.left -= n
        if (s.left > 0) return
        this.state = { k: 'idLen' }
        continue
      }
      if (s.k === 'idLen' || s.k === 'bodyLen') {
        const v = this.readVarint(s.k === 'idLen' ? 1 : 4)
        if (v === undefined) return
        if (s.k === 'idLen') {
          if (v < 8 || v > MAX_JOB_ID_BYTES) throw new ProtocolError(`a job frame names a job id of ${v} bytes (8-${MAX_JOB_ID_BYTES} allowed)`)
          this.state = { k: 'id', len: v }
        } else {
          const limit = Math.min(this.sink.limitFor(s.jobId), MAX_FRAME_BYTES)
          if (v > limit) {
            this.sink.oversize(s.jobId, v, limit)
            this.state = { k: 'skip', jobId: s.jobId, left: v }
          } else {
            this.state = { k: 'body', jobId: s.jobId, len: v }
          }
        }
        continue
      }
      if (this.buf.byteLength < s.len) return
      const bytes = this.buf.subarray(0, s.len)
      this.buf.consume(s.len)
      if (s.k === 'id') {
        const jobId = latin1.decode(bytes)
        if (!JOB_ID.test(jobId)) throw new ProtocolError('a job frame names an invalid job id')
        this.state = { k: 'bodyLen', jobId }
      } else {
        this.state = { k: 'idLen' }
        this.sink.frame(s.jobId, bytes)
      }
    }
  }

  /** A varint of at most `maxBytes` bytes from the front of the buffer, or undefined until it is whole. */
  private readVarint (maxBytes: number): number | undefined {
    let n = 0
    for (let i = 0; i < this.buf.byteLength; i++) {
      const b = this.buf.get(i)
      n += (b & 0x7f) * 2 ** (7 * i)
      if ((b & 0x80) === 0) {
        this.buf.consume(i + 1)
        return n
      }
      if (i + 1 >= maxBytes) throw new ProtocolError('a job frame has a malformed length')
    }
    return undefined
  }
}

