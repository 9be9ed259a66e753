/**
 * DETR's image preprocessing as Python's DetrImageProcessor does it (pure,
 * no ONNX here): resize, rescale, normalise, and pad a batch bottom/right
 * with zeros plus a pixel mask.
 *
 * The output size follows Python's `get_size_with_aspect_ratio` (shortest
 * edge to `shortest_edge` unless the longest edge would pass
 * `longest_edge`): 640×480 → 1066×800 at 800/1333. transformers.js's own
 * DetrImageProcessor differs (it scales up until the long edge reaches
 * `longest_edge`: 1333×999), so it is not used for the resize.
 *
 * The resampling is PIL's bilinear resize (what Python uses for
 * `resample: 2`): a triangle filter widened by the scale factor when
 * shrinking (antialiasing), horizontal pass then vertical, rounding to
 * 8 bits after each. It is computed in float64 here, where PIL uses 22-bit
 * fixed point, so a pixel can differ from PIL's by one level.
 */
import { z } from 'zod'
import { ModelLoadError } from '../../src/errors.ts'
import type { RgbImage } from '../image/index.ts'

export type ResizeRule =
  | { kind: 'edges', shortest: number, longest: number | undefined }
  | { kind: 'fixed', height: number, width: number }
  | { kind: 'max', maxHeight: number, maxWidth: number }
  | { kind: 'none' }

export interface ProcessorSettings {
  resize: ResizeRule
  /** Multiplies the 0-255 values (1/255, or 1 without do_rescale). */
  rescale: number
  mean: readonly [number, number, number]
  std: readonly [number, number, number]
}

const side = z.number().int().min(1).max(65_500)
const triple = z.tuple([z.number(), z.number(), z.number()])
// z.object keeps the keys named here and drops the rest (a processor config has many more).
const configSchema = z.object({
  do_resize: z.boolean().optional(),
  size: z.union([
    side,
    z.object({ shortest_edge: side, longest_edge: side.nullable().optional() }),
    z.object({ height: side, width: side }),
    z.object({ max_height: side, max_width: side })
  ]).optional(),
  max_size: side.optional(),
  resample: z.number().int().optional(),
  do_rescale: z.boolean().optional(),
  rescale_factor: z.number().positive().optional(),
  do_normalize: z.boolean().optional(),
  image_mean: z.union([triple, z.number()]).optional(),
  image_std: z.union([triple, z.number()]).optional()
})

/** The settings of a DetrImageProcessor's preprocessor_config.json, with Python's defaults. Throws ModelLoadError. */
export function parseProcessorConfig (raw: unknown, what = 'preprocessor_config.json'): ProcessorSettings {
  const parsed = configSchema.safeParse(raw)
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new ModelLoadError(`${what} is not a DetrImageProcessor config this skillset can follow: ${problems}`, { cause: parsed.error })
  }
  const c = parsed.data
  if ((c.resample ?? 2) !== 2) throw new ModelLoadError(`${what}: resample ${String(c.resample)} is not bilinear (2), the only resampling the detr skillset implements`)
  let resize: ResizeRule
  const size = c.size ?? { shortest_edge: 800, longest_edge: 1333 }
  if (c.do_resize === false) resize = { kind: 'none' }
  else if (typeof size === 'number') resize = { kind: 'edges', shortest: size, longest: c.max_size ?? 1333 }
  else if ('shortest_edge' in size) resize = { kind: 'edges', shortest: size.shortest_edge, longest: size.longest_edge ?? undefined }
  else if ('max_height' in size) resize = { kind: 'max', maxHeight: size.max_height, maxWidth: size.max_width }
  else resize = { kind: 'fixed', height: size.height, width: size.width }
  const three = (v: number | [number, number, number] | undefined, dflt: readonly number[]): [number, number, number] =>
    v === undefined ? [dflt[0] as number, dflt[1] as number, dflt[2] as number] : typeof v === 'number' ? [v, v, v] : v
  const normalize = c.do_normalize ?? true
  const mean = normalize ? three(c.image_mean, [0.485, 0.456, 0.406]) : [0, 0, 0] as [number, number, number]
  const std = normalize ? three(c.image_std, [0.229, 0.224, 0.225]) : [1, 1, 1] as [number, number, number]
  if (std.some((s) => s <= 0)) throw new ModelLoadError(`${what}: image_std must be positive`)
  return { resize, rescale: (c.do_rescale ?? true) ? (c.rescale_factor ?? 1 / 255) : 1, mean, std }
}

/** Python's round(): halves to even. */
function roundHalfEven (v: number): number {
  const r = Math.round(v)
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/** The size an image of `height` × `width` is resized to, as [height, width] (Python's rules; each side at least 1). */
export function resizeOutputSize (height: number, width: number, rule: ResizeRule): [number, number] {
  const atLeast1 = (v: number): number => Math.max(1, v)
  switch (rule.kind) {
    case 'none': return [height, width]
    case 'fixed': return [rule.height, rule.width]
    case 'max': {
      const scale = Math.min(rule.maxHeight / height, rule.maxWidth / width)
      return [atLeast1(Math.trunc(height * scale)), atLeast1(Math.trunc(width * scale))]
    }
    case 'edges': {
      let size = rule.shortest
      let raw: number | undefined
      if (rule.longest !== undefined) {
        const min = Math.min(height, width)
        const max = Math.max(height, width)
        if (max / min * size > rule.longest) {
          raw = rule.longest * min / max
          size = roundHalfEven(raw)
        }
      }
      if ((height <= width && height === size) || (width <= height && width === size)) return [height, width]
      if (width < height) return [atLeast1(Math.trunc((raw ?? size) * height / width)), atLeast1(size)]
      return [atLeast1(size), atLeast1(Math.trunc((raw ?? size) * width / height))]
    }
  }
}

/** PIL's resampling taps for one axis: for each output index, its first input index and normalised triangle weights. */
function taps (inSize: number, outSize: number): { first: Int32Array, count: Int32Array, weights: Float64Array, stride: number } {
  const scale = inSize / outSize
  const filterScale = Math.max(scale, 1)
  const support = filterScale // bilinear's support is 1
  const stride = Math.ceil(support) * 2 + 1
  const first = new Int32Array(outSize)
  const count = new Int32Array(outSize)
  const weights = new Float64Array(outSize * stride)
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale
    const lo = Math.max(Math.trunc(center - support + 0.5), 0)
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - lo
    let total = 0
    for (let k = 0; k < n; k++) {
      const t = Math.abs((k + lo - center + 0.5) / filterScale)
      const w = t < 1 ? 1 - t : 0
      weights[o * stride + k] = w
      total += w
    }
    for (let k = 0; k < n; k++) weights[o * stride + k] = total === 0 ? 0 : (weights[o * stride + k] as number) / total
    first[o] = lo
    count[o] = n
  }
  return { first, count, weights, stride }
}

const clip8 = (v: number): number => v <= 0 ? 0 : v >= 255 ? 255 : Math.floor(v + 0.5)

/** Resize an RGB image (HWC, 8-bit) with PIL's antialiased bilinear filter. */
export function resizeBilinear (img: RgbImage, outHeight: number, outWidth: number): RgbImage {
  let { width, height, data } = img
  if (outWidth !== width) {
    const t = taps(width, outWidth)
    const out = new Uint8Array(height * outWidth * 3)
    for (let y = 0; y < height; y++) {
      for (let o = 0; o < outWidth; o++) {
        const lo = t.first[o] as number
        const n = t.count[o] as number
        let r = 0; let g = 0; let b = 0
        for (let k = 0; k < n; k++) {
          const w = t.weights[o * t.stride + k] as number
          const i = (y * width + lo + k) * 3
          r += (data[i] as number) * w; g += (data[i + 1] as number) * w; b += (data[i + 2] as number) * w
        }
        const j = (y * outWidth + o) * 3
        out[j] = clip8(r); out[j + 1] = clip8(g); out[j + 2] = clip8(b)
      }
    }
    data = out
    width = outWidth
  }
  if (outHeight !== height) {
    const t = taps(height, outHeight)
    const out = new Uint8Array(outHeight * width * 3)
    for (let o = 0; o < outHeight; o++) {
      const lo = t.first[o] as number
      const n = t.count[o] as number
      for (let x = 0; x < width * 3; x++) {
        let acc = 0
        for (let k = 0; k < n; k++) acc += (data[(lo + k) * width * 3 + x] as number) * (t.weights[o * t.stride + k] as number)
        out[o * width * 3 + x] = clip8(acc)
      }
    }
    data = out
    height = outHeight
  }
  return { width, height, data }
}

/** One image ready for the model: [3, height, width] float32, and the size it had when sent. */
export interface PreparedImage { pixels: Float32Array, height: number, width: number, originalWidth: number, originalHeight: number }

/** Resize, rescale and normalise one decoded image. */
export function prepareImage (img: RgbImage, settings: ProcessorSettings): PreparedImage {
  const [oh, ow] = resizeOutputSize(img.height, img.width, settings.resize)
  const resized = resizeBilinear(img, oh, ow)
  const plane = oh * ow
  const pixels = new Float32Array(3 * plane)
  for (let c = 0; c < 3; c++) {
    const mean = settings.mean[c] as number
    const std = settings.std[c] as number
    for (let i = 0; i < plane; i++) pixels[c * plane + i] = ((resized.data[i * 3 + c] as number) * settings.rescale - mean) / std
  }
  return { pixels, height: oh, width: ow, originalWidth: img.width, originalHeight: img.height }
}

/** Images padded bottom/right with zeros to the tallest and widest, and the mask (1 on real pixels). */
export function packBatch (images: readonly PreparedImage[]): { pixelValues: Float32Array, pixelMask: BigInt64Array, height: number, width: number } {
  const H = Math.max(...images.map((i) => i.height))
  const W = Math.max(...images.map((i) => i.width))
  const pixelValues = new Float32Array(images.length * 3 * H * W)
  const pixelMask = new BigInt64Array(images.length * H * W)
  images.forEach((img, b) => {
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < img.height; y++) {
        const from = (c * img.height + y) * img.width
        pixelValues.set(img.pixels.subarray(from, from + img.width), ((b * 3 + c) * H + y) * W)
      }
    }
    for (let y = 0; y < img.height; y++) pixelMask.fill(1n, (b * H + y) * W, (b * H + y) * W + img.width)
  })
  return { pixelValues, pixelMask, height: H, width: W }
}
