/**
 * Images in OpenAI-style requests: a `data:` URL (`data:image/png;base64,...`)
 * or, where the field is ours (`/v1/detections`), plain base64. Decoded with
 * a size bound checked before decoding, then checked for a PNG, JPEG or WebP
 * signature (skillsets/image/source.ts), so a bad image is a 400 here rather
 * than a failed job on a worker. Remote `http(s)` URLs are refused: the node
 * fetches nothing on a caller's behalf.
 */
import { InputTooLargeError, InvalidInputError, InvalidRequestError } from '../../errors.ts'
import { checkImageBytes } from '../../../skillsets/image/source.ts'

const DATA_URL = /^data:([a-z]+\/[a-z0-9.+-]+)?((?:;[a-z0-9-]+=[^;,]*)*);base64,/i
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/** The bytes of an image given as a data: URL, or (when `plainBase64`) as bare base64. */
export function decodeImage (value: string, maxBytes: number, param: string, plainBase64 = false): Uint8Array {
  const m = DATA_URL.exec(value.slice(0, 256))
  if (m === null && !plainBase64) {
    const kind = /^https?:/i.test(value) ? 'a remote URL (the node fetches nothing on a caller\'s behalf)' : 'not a data: URL'
    throw new InvalidRequestError(`${param}: ${kind}: send the image inline as data:image/png;base64,... (or jpeg, webp)`, param)
  }
  const b64 = m === null ? value : value.slice(m[0].length)
  // base64 carries 3 bytes in 4 characters: refuse an oversized image before decoding it.
  const approx = Math.floor(b64.length / 4) * 3
  if (approx > maxBytes + 3) throw new InputTooLargeError(`${param}: the image has about ${approx} bytes, over the ${maxBytes}-byte limit: send a smaller image`)
  if (b64.length % 4 !== 0 || !BASE64.test(b64)) throw new InvalidRequestError(`${param}: the image is not valid base64`, param)
  const bytes = new Uint8Array(Buffer.from(b64, 'base64'))
  try {
    checkImageBytes(bytes, { maxBytes }, param)
  } catch (err) {
    // The same refusal, naming the request's field as OpenAI errors do; a size refusal stays a 413.
    if (err instanceof InvalidInputError) throw new InvalidRequestError(err.message, param, { cause: err })
    throw err
  }
  return bytes
}
