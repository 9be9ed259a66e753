/** Reading a whole short stream (a directory ask or answer), bounded in size and time. */
import type { Stream } from '@libp2p/interface'

/**
 * Every byte a peer sends on a stream until it closes its end, bounded in
 * size and time. The listener is attached before anything is sent, so no
 * byte passes unheard.
 */
export function readAll (stream: Stream, maxBytes: number, signal: AbortSignal): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Uint8Array[] = []
    let total = 0
    const done = (err?: Error): void => {
      signal.removeEventListener('abort', onAbort)
      if (err !== undefined) reject(err)
      else resolve(Buffer.concat(chunks))
    }
    const onAbort = (): void => { done(signal.reason instanceof Error ? signal.reason : new Error('aborted')) }
    if (signal.aborted) { onAbort(); return }
    signal.addEventListener('abort', onAbort, { once: true })
    stream.addEventListener('message', (evt) => {
      const bytes = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
      total += bytes.byteLength
      if (total > maxBytes) done(new RangeError(`over ${maxBytes} bytes on a directory stream`))
      else chunks.push(bytes)
    })
    stream.addEventListener('remoteCloseWrite', () => { done() })
    stream.addEventListener('close', (evt) => { done(evt.error) })
  })
}
