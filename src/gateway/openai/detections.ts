/**
 * `/v1/detections` (not an OpenAI endpoint; shaped like its list answers):
 * a `detr` job's output, checked before it is passed on. The wire output
 * is `{ detections: [{ label, score, box: { xmin, ymin, xmax, ymax } }],
 * width, height }`, boxes in pixels of the image as stored.
 */
import { z } from 'zod'
import { ProtocolError } from '../../errors.ts'

const MAX_DETECTIONS = 10_000

const outputSchema = z.strictObject({
  detections: z.array(z.strictObject({
    label: z.string().max(200),
    score: z.number().min(0).max(1),
    box: z.strictObject({ xmin: z.number(), ymin: z.number(), xmax: z.number(), ymax: z.number() })
  })).max(MAX_DETECTIONS),
  width: z.number().int().min(1),
  height: z.number().int().min(1)
})

export interface Detections { data: z.infer<typeof outputSchema>['detections'], width: number, height: number }

export function decodeDetections (wire: unknown): Detections {
  const parsed = outputSchema.safeParse(wire)
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(output)'}: ${i.message}`).join('; ')
    throw new ProtocolError(`malformed detr output from the worker: ${problems}`, { cause: parsed.error })
  }
  return { data: parsed.data.detections, width: parsed.data.width, height: parsed.data.height }
}
