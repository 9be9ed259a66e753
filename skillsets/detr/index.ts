/**
 * The `detr` skillset: object detection. One image per job in (`{ image,
 * threshold?, top_k? }`), its detections out (`{ detections: [{ label,
 * score, box }], width, height }`, boxes in the image's own pixels). Any
 * detr inputs batch together: the runner pads the images of a batch to a
 * common size with a pixel mask (runner.ts). A job's cost is its one image.
 */
import type { ExecutionPlan, ImageInputs, ImageLimits, ModelLocation, Skillset, SkillsetLoadOptions, SkillsetRunner } from '../../src/interfaces/index.ts'
import { DEFAULT_IMAGE_LIMITS } from '../image/index.ts'
import type { DetrInput } from './input.ts'
import { detrImageInputs, parseDetrInput } from './input.ts'
import type { DetrOutput, DetrWireOutput } from './codec.ts'
import { decodeDetrOutput, encodeDetrOutput } from './codec.ts'
import { loadDetrRunner } from './runner.ts'
import { sampleDetrInput } from './sample.ts'

export type { DetrInput } from './input.ts'
export type { Box, Detection, DetrOutput, DetrWireOutput } from './codec.ts'
export type { DetrResult, DetrRunner, DetrRunnerOptions } from './runner.ts'
export { loadDetrRunner } from './runner.ts'
export { postprocessDetections } from './postprocess.ts'

export interface DetrSkillsetInit {
  /** Bounds on the image of a job, checked when the input is parsed (bytes) and decoded (pixels); default DEFAULT_IMAGE_LIMITS. */
  images?: ImageLimits
  /** Padded pixels per inference call (default MAX_BATCH_PIXELS). */
  maxBatchPixels?: number
}

export interface DetrSkillset extends Skillset<DetrInput, DetrOutput> {
  readonly images: ImageInputs<DetrInput>
  encodeOutput(output: DetrOutput): DetrWireOutput
}

export function createDetrSkillset (init: DetrSkillsetInit = {}): DetrSkillset {
  const limits = Object.freeze({ ...(init.images ?? DEFAULT_IMAGE_LIMITS) })
  if (init.maxBatchPixels !== undefined && (!Number.isSafeInteger(init.maxBatchPixels) || init.maxBatchPixels < 1)) {
    throw new RangeError(`detr skillset: maxBatchPixels must be a positive integer, got ${String(init.maxBatchPixels)}`)
  }
  return Object.freeze({
    name: 'detr' as const,
    parseInput: (raw: unknown): DetrInput => parseDetrInput(raw, limits),
    batchKey: (): string => 'detr',
    cost: (): number => 1,
    /** One small PNG: a detr job is one image whatever `n` is; the scheduler batches jobs. */
    sampleInput: (): unknown => sampleDetrInput(),
    images: detrImageInputs(limits),
    // The node's image limits (config `images`, given to inference threads) win over the skillset's.
    load: async (model: ModelLocation, plan: ExecutionPlan, options?: SkillsetLoadOptions): Promise<SkillsetRunner<DetrInput, DetrOutput>> =>
      await loadDetrRunner(model, plan, { images: options?.images ?? limits, maxBatchPixels: init.maxBatchPixels }),
    encodeOutput: encodeDetrOutput,
    decodeOutput: decodeDetrOutput
  })
}

/** The detr skillset with its default limits. */
export const detrSkillset: DetrSkillset = createDetrSkillset()
