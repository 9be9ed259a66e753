/**
 * Binary-safe encoding of protocol messages: CBOR (byte strings stay bytes),
 * size-bounded before decoding and schema-validated after it.
 */
import { decode, encode } from 'cborg'
import type { z } from 'zod'
import { MessageTooLargeError, ProtocolError } from '../../errors.ts'

export function encodeMessage (msg: unknown, maxBytes: number): Uint8Array {
  const bytes = encode(msg)
  if (bytes.byteLength > maxBytes) throw new MessageTooLargeError(`message of ${bytes.byteLength} bytes is over the ${maxBytes}-byte limit`)
  return bytes
}

export function decodeMessage<S extends z.ZodType> (bytes: Uint8Array, schema: S, maxBytes: number): z.infer<S> {
  if (bytes.byteLength > maxBytes) throw new MessageTooLargeError(`message of ${bytes.byteLength} bytes is over the ${maxBytes}-byte limit`)
  let raw: unknown
  try {
    raw = decode(bytes, { useMaps: false, rejectDuplicateMapKeys: true, allowUndefined: false })
  } catch (err) {
    throw new ProtocolError(`not valid CBOR: ${(err as Error).message}`, { cause: err })
  }
  const parsed = schema.safeParse(raw)
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new ProtocolError(`invalid message: ${problems}`)
  }
  return parsed.data
}
