/**
 * The detr output and its wire form: `{ detections: [{ label, score, box:
 * { xmin, ymin, xmax, ymax } }], width, height }`, plain CBOR values.
 * `decodeDetrOutput` checks what came off the wire before trusting it: the
 * shape, scores in [0, 1] from highest to lowest, boxes inside the image.
 */
import { z } from 'zod'
import { ProtocolError } from '../../src/errors.ts'
import { IMAGE_LIMIT_CEILINGS } from '../image/index.ts'
import type { Detection } from './postprocess.ts'
import { MAX_LABEL_CHARS, MAX_TOP_K } from './constants.ts'

export type { Box, Detection } from './postprocess.ts'

export interface DetrOutput {
  /** Best first. */
  detections: Detection[]
  /** The input image's size in pixels, which the boxes refer to. */
  width: number
  height: number
}

export interface DetrWireOutput {
  detections: Array<{ label: string, score: number, box: { xmin: number, ymin: number, xmax: number, ymax: number } }>
  width: number
  height: number
  [key: string]: unknown
}

/** To the wire: fresh plain objects. */
export function encodeDetrOutput (out: DetrOutput): DetrWireOutput {
  return {
    detections: out.detections.map((d) => ({ label: d.label, score: d.score, box: { xmin: d.box.xmin, ymin: d.box.ymin, xmax: d.box.xmax, ymax: d.box.ymax } })),
    width: out.width,
    height: out.height
  }
}

const finite = z.number().refine(Number.isFinite, 'must be a finite number')
const side = z.number().int().min(1).max(IMAGE_LIMIT_CEILINGS.maxSide)
const schema = z.strictObject({
  detections: z.array(z.strictObject({
    label: z.string().max(MAX_LABEL_CHARS),
    score: z.number().min(0).max(1),
    box: z.strictObject({ xmin: finite, ymin: finite, xmax: finite, ymax: finite })
  })).max(MAX_TOP_K),
  width: side,
  height: side
})

/** From the wire: validated. Throws ProtocolError. */
export function decodeDetrOutput (wire: unknown): DetrOutput {
  const parsed = schema.safeParse(wire)
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(output)'}: ${i.message}`).join('; ')
    throw new ProtocolError(`malformed detr output: ${problems}`, { cause: parsed.error })
  }
  const { detections, width, height } = parsed.data
  detections.forEach((d, i) => {
    const b = d.box
    if (!(b.xmin >= 0 && b.xmin <= b.xmax && b.xmax <= width && b.ymin >= 0 && b.ymin <= b.ymax && b.ymax <= height)) {
      throw new ProtocolError(`malformed detr output: detections.${i}.box is not inside the ${width}×${height} image with min ≤ max`)
    }
    if (i > 0 && d.score > (detections[i - 1] as Detection).score) throw new ProtocolError(`malformed detr output: detections.${i} scores higher than the one before it (they come best first)`)
  })
  return { detections, width, height }
}
