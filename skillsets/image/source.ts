/**
 * An image as a job carries it: its encoded bytes inline, or a reference to
 * a UnixFS file in the content store (`{ cid, size }`) that the worker
 * fetches from the client before the job runs (src/node/image-inputs.ts).
 * Parsed at the boundary: the shape, the size against the limits, and for
 * inline bytes the format (PNG, JPEG or WebP by their signature). Decoding
 * happens later, in the inference thread (decode.ts).
 */
import { CID } from 'multiformats/cid'
import { InputTooLargeError, InvalidInputError } from '../../src/errors.ts'
import type { ImageInputs, ImageLimits, ImageSource } from '../../src/interfaces/index.ts'

export type { ImageInputs, ImageSource }

export type ImageFormat = 'png' | 'jpeg' | 'webp'

/** The format an image's first bytes say it is, or undefined for anything else. */
export function sniffImageFormat (bytes: Uint8Array): ImageFormat | undefined {
  const b = bytes
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) return 'png'
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg'
  if (b.length >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50) return 'webp'
  return undefined
}

function hexStart (bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 8), (v) => v.toString(16).padStart(2, '0')).join(' ')
}

/** Refuse bytes that are not a PNG, JPEG or WebP image, or over the byte limit. `what` names the field in messages. */
export function checkImageBytes (bytes: Uint8Array, limits: Pick<ImageLimits, 'maxBytes'>, what = 'image'): ImageFormat {
  if (bytes.byteLength === 0) throw new InvalidInputError(`${what}: the image is empty`)
  if (bytes.byteLength > limits.maxBytes) throw new InputTooLargeError(`${what}: the image has ${bytes.byteLength} bytes, over the limit of ${limits.maxBytes} (images.maxBytes): send a smaller image`)
  const format = sniffImageFormat(bytes)
  if (format === undefined) throw new InvalidInputError(`${what}: not a PNG, JPEG or WebP image (it starts with ${hexStart(bytes) || 'nothing'}): send the image file's own bytes`)
  return format
}

/**
 * Parse an untrusted image field: bytes (a CBOR byte string) or
 * `{ cid, size }`. Throws InvalidInputError or InputTooLargeError.
 */
export function parseImageSource (raw: unknown, limits: Pick<ImageLimits, 'maxBytes'>, what = 'image'): ImageSource {
  if (raw instanceof Uint8Array) {
    checkImageBytes(raw, limits, what)
    return { bytes: raw }
  }
  if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    const keys = Object.keys(raw)
    const v = raw as { cid?: unknown, size?: unknown }
    if (keys.length !== 2 || typeof v.cid !== 'string' || typeof v.size !== 'number') {
      throw new InvalidInputError(`${what}: expected the image's bytes, or { cid, size } of an image in the content store`)
    }
    if (v.cid.length > 200) throw new InvalidInputError(`${what}: cid is too long to be a CID`)
    let cid: CID
    try {
      cid = CID.parse(v.cid)
    } catch (err) {
      throw new InvalidInputError(`${what}: ${JSON.stringify(v.cid.slice(0, 80))} is not a CID (${(err as Error).message})`, { cause: err })
    }
    if (!Number.isSafeInteger(v.size) || v.size < 1) throw new InvalidInputError(`${what}: size must be a positive integer (the image's bytes)`)
    if (v.size > limits.maxBytes) throw new InputTooLargeError(`${what}: the image has ${v.size} bytes, over the limit of ${limits.maxBytes} (images.maxBytes): send a smaller image`)
    return { cid: cid.toString(), size: v.size }
  }
  throw new InvalidInputError(`${what}: expected the image's bytes, or { cid, size } of an image in the content store`)
}

/** The bytes of an inline image; throws for a reference the worker did not resolve (a bug in the caller). */
export function inlineBytes (source: ImageSource, what = 'image'): Uint8Array {
  if ('bytes' in source) return source.bytes
  throw new InvalidInputError(`${what}: the image ${source.cid} was not fetched before the job ran`)
}

/**
 * The `images` hook of a skillset whose input carries one `image` (detr,
 * llava-next): the worker lists it, and gives it back as bytes once fetched
 * (checked again here, since the hook may be called without the worker's
 * own checks). `what` names the field in messages.
 */
export function oneImageInputs<I extends { image: ImageSource }> (limits: Pick<ImageLimits, 'maxBytes'>, what: string): ImageInputs<I> {
  return Object.freeze({
    list: (input: I): ImageSource[] => [input.image],
    withBytes: (input: I, bytes: Uint8Array[]): I => {
      const [only] = bytes
      if (bytes.length !== 1 || only === undefined) throw new InvalidInputError(`${what}: one image expected, got ${bytes.length}`)
      checkImageBytes(only, limits, what)
      return { ...input, image: { bytes: only } }
    }
  })
}
