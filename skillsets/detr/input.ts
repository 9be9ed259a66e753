/**
 * The detr skillset's job input, parsed once at the boundary with zod:
 * `{ image, threshold?, top_k? }`, where `image` is the image's bytes (PNG,
 * JPEG or WebP) or `{ cid, size }` of one in the content store
 * (skillsets/image). Shape problems are InvalidInputError; an image over the
 * byte limit is InputTooLargeError. Pixels are checked when the inference
 * thread decodes the image.
 */
import { z } from 'zod'
import { InvalidInputError } from '../../src/errors.ts'
import type { ImageInputs, ImageLimits, ImageSource } from '../../src/interfaces/index.ts'
import { oneImageInputs, parseImageSource } from '../image/index.ts'
import { DEFAULT_THRESHOLD, DEFAULT_TOP_K, MAX_TOP_K } from './constants.ts'

export interface DetrInput {
  image: ImageSource
  /** Keep detections whose score is above this (0..1). */
  threshold: number
  /** Keep at most this many detections, the best first. */
  topK: number
}

const schema = z.strictObject({
  image: z.unknown().refine((v) => v !== undefined, 'image is required: the image file\'s bytes, or { cid, size }'),
  threshold: z.number().min(0).max(1).optional(),
  top_k: z.number().int().min(1).max(MAX_TOP_K).optional()
})

export function parseDetrInput (raw: unknown, limits: Pick<ImageLimits, 'maxBytes'>): DetrInput {
  const parsed = schema.safeParse(raw)
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ')
    throw new InvalidInputError(`invalid detr input: ${problems}`, { cause: parsed.error })
  }
  const { image, threshold = DEFAULT_THRESHOLD, top_k: topK = DEFAULT_TOP_K } = parsed.data
  return { image: parseImageSource(image, limits, 'detr input: image'), threshold, topK }
}

/** Where a detr input's image is, for the worker that fetches images sent by CID. */
export function detrImageInputs (limits: Pick<ImageLimits, 'maxBytes'>): ImageInputs<DetrInput> {
  return oneImageInputs<DetrInput>(limits, 'detr input: image')
}
