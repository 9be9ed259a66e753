/**
 * From one image's DETR outputs to its detections (pure; no ONNX here).
 *
 * For each query: softmax over the classes in float64 (the last class is
 * "no object" and is dropped after the softmax, as DETR was trained), the
 * score is the highest probability among the real classes (ties: the lower
 * class id), and the query is kept when its score is above the threshold
 * (strictly, as Python's post_process_object_detection does). Kept queries
 * are sorted by score, highest first (ties: the lower query index), and the
 * first `topK` are returned.
 *
 * Boxes: DETR predicts (cx, cy, w, h) as fractions of the real (unpadded)
 * image; they become corners `xmin = (cx - w/2)·width` ... in the ORIGINAL
 * image's pixels (the image as sent, before the processor's resize), as
 * floats, clamped to [0, width] × [0, height]. Python's transformers returns
 * unclamped floats and transformers.js truncates them to integers without
 * clamping; we keep floats because on a small image a truncated pixel is a
 * large part of a box, and clamp because no pixel lies outside the image,
 * so a box edge there names nothing a client could crop.
 */
import { InferenceError } from '../../src/errors.ts'

export interface Box { xmin: number, ymin: number, xmax: number, ymax: number }
export interface Detection { label: string, score: number, box: Box }

export interface PostprocessOptions {
  threshold: number
  topK: number
  /** The original image's size in pixels. */
  width: number
  height: number
  /** Class id → label (id2label), one per real class. */
  labels: readonly string[]
}

const clamp = (v: number, max: number): number => v < 0 ? 0 : v > max ? max : v

/**
 * `logits` is [queries, labels + 1] and `boxes` [queries, 4], row-major, for
 * one image. Throws InferenceError for outputs of the wrong size or values
 * that are not finite (a broken model, not a bad input).
 */
export function postprocessDetections (logits: ArrayLike<number>, boxes: ArrayLike<number>, options: PostprocessOptions): Detection[] {
  const classes = options.labels.length + 1
  const queries = logits.length / classes
  if (!Number.isInteger(queries) || boxes.length !== queries * 4) {
    throw new InferenceError(`detr outputs do not fit: ${logits.length} logits for ${classes} classes (${options.labels.length} labels + no object), ${boxes.length} box values`)
  }
  const kept: Array<{ query: number, cls: number, score: number }> = []
  for (let q = 0; q < queries; q++) {
    const row = q * classes
    let max = -Infinity
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[row + c] as number)
    if (!Number.isFinite(max)) throw new InferenceError(`detr query ${q} has a logit that is not finite`)
    let sum = 0
    let best = 0
    let bestExp = -1
    for (let c = 0; c < classes; c++) {
      const e = Math.exp((logits[row + c] as number) - max)
      if (Number.isNaN(e)) throw new InferenceError(`detr query ${q} has a logit that is not finite`)
      sum += e
      if (c < classes - 1 && e > bestExp) { bestExp = e; best = c }
    }
    const score = bestExp / sum
    if (score > options.threshold) kept.push({ query: q, cls: best, score })
  }
  kept.sort((a, b) => b.score - a.score || a.query - b.query)
  return kept.slice(0, options.topK).map(({ query, cls, score }) => {
    const [cx, cy, w, h] = [0, 1, 2, 3].map((i) => boxes[query * 4 + i] as number) as [number, number, number, number]
    if (![cx, cy, w, h].every(Number.isFinite)) throw new InferenceError(`detr query ${query} has a box value that is not finite`)
    const box = {
      xmin: clamp((cx - w / 2) * options.width, options.width),
      ymin: clamp((cy - h / 2) * options.height, options.height),
      xmax: clamp((cx + w / 2) * options.width, options.width),
      ymax: clamp((cy + h / 2) * options.height, options.height)
    }
    if (box.xmin > box.xmax || box.ymin > box.ymax) throw new InferenceError(`detr query ${query} has a box of negative size (w ${w}, h ${h})`)
    return { label: options.labels[cls] as string, score, box }
  })
}
