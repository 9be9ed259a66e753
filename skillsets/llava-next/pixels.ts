/**
 * The pixel side of anyres preprocessing, in the inference thread: one
 * decoded RGB image becomes `pixel_values` for its tiles, [tiles, 3, T, T]
 * float32 (T = the tile side): the whole image resized to T × T first, then
 * the image resized to fit the best resolution (aspect kept), padded to it
 * with black (0 before rescaling, as the reference pads the uint8 image),
 * cut into T × T tiles row by row; each pixel rescaled and normalised,
 * (v · rescale − mean) / std per channel.
 *
 * Resizing is sharp's (libvips) `cubic` kernel, which is Catmull-Rom, the
 * same cubic (a = −0.5) as PIL's BICUBIC that the reference uses, both
 * widened by the scale when shrinking. They are not bit-identical: libvips
 * shrinks by whole factors with a box filter before the cubic step on large
 * reductions, and the two round to 8 bits at different points, so a pixel
 * may differ by a few levels from the Python processor's.
 */
import { InvalidInputError } from '../../src/errors.ts'
import type { RgbImage } from '../image/index.ts'
import { loadSharp } from '../image/decode.ts'
import type { AnyresLayout } from './anyres.ts'
import { padOffsets, patchOutputSize } from './anyres.ts'

export interface Normalisation {
  /** Per channel, R G B. */
  mean: readonly [number, number, number]
  std: readonly [number, number, number]
  rescale: number
}

async function resizeRgb (image: RgbImage, width: number, height: number): Promise<Uint8Array> {
  if (image.width === width && image.height === height) return image.data
  const sharp = await loadSharp()
  const { data, info } = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(width, height, { fit: 'fill', kernel: 'cubic' })
    .raw()
    .toBuffer({ resolveWithObject: true })
  if (info.width !== width || info.height !== height || info.channels !== 3) {
    throw new InvalidInputError(`image: resizing gave ${info.width}×${info.height}×${info.channels}, expected ${width}×${height}×3`)
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

/** Write one T × T tile of `src` (width `srcWidth`, HWC) at (x0, y0) into `out` at tile `t`, CHW, normalised; pixels outside `src` are black. */
function writeTile (out: Float32Array, t: number, side: number, src: Uint8Array, srcWidth: number, srcHeight: number, x0: number, y0: number, n: Normalisation): void {
  const plane = side * side
  const base = t * 3 * plane
  for (let c = 0; c < 3; c++) {
    const std = n.std[c] as number
    const scale = n.rescale / std
    const shift = (n.mean[c] as number) / std
    for (let y = 0; y < side; y++) {
      const sy = y0 + y
      for (let x = 0; x < side; x++) {
        const sx = x0 + x
        const v = sy >= 0 && sy < srcHeight && sx >= 0 && sx < srcWidth ? src[(sy * srcWidth + sx) * 3 + c] as number : 0
        out[base + c * plane + y * side + x] = v * scale - shift
      }
    }
  }
}

/** `pixel_values` of one image for its layout: [layout.tiles, 3, side, side], base image first. */
export async function anyresPixels (image: RgbImage, layout: AnyresLayout, tileSize: number, n: Normalisation): Promise<Float32Array> {
  const out = new Float32Array(layout.tiles * 3 * tileSize * tileSize)
  const base = await resizeRgb(image, tileSize, tileSize)
  writeTile(out, 0, tileSize, base, tileSize, tileSize, 0, 0, n)
  const fit = patchOutputSize({ height: image.height, width: image.width }, layout.best)
  const resized = await resizeRgb(image, fit.width, fit.height)
  const { top, left } = padOffsets(fit, layout.best)
  for (let r = 0; r < layout.rows; r++) {
    for (let c = 0; c < layout.cols; c++) {
      // The tile's origin in the resized image: its place in the padded canvas, less the padding.
      writeTile(out, 1 + r * layout.cols + c, tileSize, resized, fit.width, fit.height, c * tileSize - left, r * tileSize - top, n)
    }
  }
  return out
}
