/**
 * Frame limits per skillset: how large a job's input (the `assign` frame),
 * its output (the `result` frame) and, for streaming skillsets, each of its
 * partials (the `partial` frame) may be on a job link. A frame over
 * its job's limit fails that job only (see src/p2p/jobs/frames.ts).
 */
import type { SkillsetName } from '../interfaces/index.ts'
import type { FrameLimits } from '../p2p/jobs/types.ts'
import { MAX_TEXTS, MAX_TOTAL_CHARS } from '../../skillsets/embed/constants.ts'

const KiB = 1024
const MiB = 1024 * KiB

/** Widest embedding a result frame may carry: 4096 dims (wider models are rare; raise it with the model). */
const MAX_WIRE_DIMS = 4096

const LIMITS: Readonly<Record<SkillsetName, FrameLimits>> = Object.freeze({
  // UTF-8 text is at most 3 bytes per UTF-16 code unit, plus CBOR framing per text.
  embed: { input: MAX_TOTAL_CHARS * 3 + MAX_TEXTS * 16 + 4 * KiB, output: MAX_TEXTS * MAX_WIRE_DIMS * 4 + 64 * KiB },
  lm: { input: 1 * MiB, output: 4 * MiB, partial: 64 * KiB },
  'llava-next': { input: 16 * MiB, output: 4 * MiB, partial: 64 * KiB },
  detr: { input: 16 * MiB, output: 1 * MiB },
  'stand-in': { input: 64 * KiB, output: 64 * KiB },
  'stand-in-stream': { input: 4 * KiB, output: 1 * MiB + 64 * KiB, partial: 1 * KiB }
})

export function frameLimits (skillset: SkillsetName): FrameLimits {
  return LIMITS[skillset]
}
