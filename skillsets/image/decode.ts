/**
 * Decoding an image in the inference thread with sharp (libvips): the
 * format is checked by signature, the canvas it claims against the pixel
 * limits before any pixel is decoded (so a decompression bomb costs a
 * header read), and a truncated or corrupt file fails with a clear error
 * rather than a half-grey image. The result is 8-bit sRGB, 3 channels,
 * row-major (HWC); alpha is dropped, grey is expanded. EXIF orientation
 * is applied (a phone photo stored sideways is seen upright), as
 * transformers' `load_image` does (`ImageOps.exif_transpose`): boxes and
 * tiles refer to the upright image, whose width and height are given.
 */
import { InputTooLargeError, InvalidInputError } from '../../src/errors.ts'
import type { ImageLimits } from './limits.ts'
import { checkImageBytes } from './source.ts'
import type { ImageFormat } from './source.ts'

export interface RgbImage {
  width: number
  height: number
  /** width × height × 3 bytes, R G B per pixel, rows top to bottom. */
  data: Uint8Array
}

type Sharp = typeof import('sharp').default
let sharpModule: Promise<Sharp> | undefined
/** sharp, imported on first use (not when this module loads), with libvips's operation cache off. */
export async function loadSharp (): Promise<Sharp> {
  sharpModule ??= import('sharp').then((m) => {
    const s = m.default
    // No libvips operation cache across jobs: memory stays bounded by the job in hand.
    s.cache(false)
    return s
  })
  return await sharpModule
}

const SHARP_FORMAT: Readonly<Record<string, ImageFormat>> = Object.freeze({ png: 'png', jpeg: 'jpeg', jpg: 'jpeg', webp: 'webp' })

/** Decode `bytes` to RGB within `limits`; InvalidInputError for a non-image or a broken one, InputTooLargeError past a limit. */
export async function decodeImage (bytes: Uint8Array, limits: ImageLimits, what = 'image'): Promise<RgbImage> {
  const format = checkImageBytes(bytes, limits, what)
  const sharp = await loadSharp()
  const options = { limitInputPixels: limits.maxPixels, failOn: 'error' as const, sequentialRead: true }
  let meta: Awaited<ReturnType<ReturnType<Sharp>['metadata']>>
  try {
    // metadata() reads the header only; the pixel limits are checked below, with their own message.
    meta = await sharp(bytes, { ...options, limitInputPixels: false }).metadata()
  } catch (err) {
    throw new InvalidInputError(`${what}: cannot read the ${format} image (${(err as Error).message}): send an intact PNG, JPEG or WebP file`, { cause: err })
  }
  // The upright size: EXIF orientations 5-8 swap width and height.
  const width = meta.autoOrient?.width ?? meta.width ?? 0
  const height = meta.autoOrient?.height ?? meta.height ?? 0
  if (SHARP_FORMAT[meta.format ?? ''] !== format) throw new InvalidInputError(`${what}: the file starts like ${format} but decodes as ${String(meta.format)}: send a PNG, JPEG or WebP file`)
  if (width < 1 || height < 1) throw new InvalidInputError(`${what}: the ${format} image has no pixels (${width}×${height})`)
  if (width > limits.maxSide || height > limits.maxSide) throw new InputTooLargeError(`${what}: the image is ${width}×${height}, a side over the limit of ${limits.maxSide} pixels (images.maxSide): scale it down`)
  if (width * height > limits.maxPixels) throw new InputTooLargeError(`${what}: the image is ${width}×${height} = ${width * height} pixels, over the limit of ${limits.maxPixels} (images.maxPixels): scale it down`)
  try {
    const { data, info } = await sharp(bytes, options).autoOrient().removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true })
    if (info.channels !== 3 || info.width !== width || info.height !== height || data.byteLength !== width * height * 3) {
      throw new Error(`decoded to ${info.width}×${info.height}×${info.channels}, expected ${width}×${height}×3`)
    }
    return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) }
  } catch (err) {
    throw new InvalidInputError(`${what}: cannot decode the ${format} image (${(err as Error).message}): send an intact PNG, JPEG or WebP file`, { cause: err })
  }
}
