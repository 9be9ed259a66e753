/**
 * Bounds on images as job inputs, shared by the image skillsets (`detr`,
 * `llava-next`). The node's config block `images` sets them
 * (src/config/schema.ts); these are the defaults and the hard ceilings.
 */

import type { ImageLimits } from '../../src/interfaces/index.ts'

export type { ImageLimits }

const MiB = 1024 * 1024

export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = Object.freeze({
  maxBytes: 32 * MiB,
  maxPixels: 40_000_000,
  maxSide: 16_384
})

/** Hard ceilings: config may lower the limits, never raise them past these (libvips's own side limit is 2^24; a pixel costs 3 bytes decoded). */
export const IMAGE_LIMIT_CEILINGS: Readonly<ImageLimits> = Object.freeze({
  maxBytes: 256 * MiB,
  maxPixels: 268_402_689,
  maxSide: 65_500
})

/**
 * Images up to this many bytes travel inside the job (the assign frame);
 * larger ones travel as a content-store CID that the worker fetches from the
 * client. Below the image skillsets' 16 MiB input frame limit
 * (src/node/frame-limits.ts).
 */
export const DEFAULT_INLINE_IMAGE_BYTES = 4 * MiB
/** Images in one job (llava-next takes one; detr up to this many). */
export const MAX_IMAGES_PER_JOB = 16
