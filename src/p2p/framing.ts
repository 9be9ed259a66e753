/** Length-prefixed CBOR frames on a libp2p stream, validated on read. */
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { LengthPrefixedStream } from '@libp2p/utils'
import type { z } from 'zod'
import { decodeMessage, encodeMessage } from './codec.ts'
import { MAX_STREAM_FRAME_BYTES } from './protocol.ts'

export class FrameStream {
  readonly stream: Stream
  private readonly lp: LengthPrefixedStream<Stream>

  constructor (stream: Stream, maxBytes = MAX_STREAM_FRAME_BYTES) {
    this.stream = stream
    this.lp = lpStream(stream, { maxDataLength: maxBytes })
  }

  async write (msg: unknown, signal?: AbortSignal): Promise<void> {
    await this.lp.write(encodeMessage(msg, MAX_STREAM_FRAME_BYTES), { signal })
  }

  async read<S extends z.ZodType> (schema: S, signal?: AbortSignal): Promise<z.infer<S>> {
    const buf = await this.lp.read({ signal })
    return decodeMessage(buf.subarray(), schema, MAX_STREAM_FRAME_BYTES)
  }

  /** Close our end gracefully; on failure abort so nothing leaks. */
  async close (): Promise<void> {
    try {
      await this.stream.close({ signal: AbortSignal.timeout(2000) })
    } catch (err) {
      this.stream.abort(err as Error)
    }
  }

  abort (err: Error): void {
    this.stream.abort(err)
  }
}
