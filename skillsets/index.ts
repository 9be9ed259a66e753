/**
 * The skillsets this node can run: a frozen name → skillset table. Add a
 * skillset here when it is built (llava-next and detr are not yet).
 * Streaming skillsets (`lm`) sit in their own table until the scheduler's
 * streaming path (branch `stream`) folds both into one.
 */
import type { Skillset, StreamingSkillset } from '../src/interfaces/index.ts'
import { SkillsetNotFoundError } from '../src/errors.ts'
import { embedSkillset } from './embed/index.ts'
import { standInSkillset } from './stand-in/index.ts'
import { lmSkillset } from './lm/index.ts'

export const SKILLSETS: Readonly<Record<string, Skillset>> = Object.freeze({
  embed: embedSkillset,
  /** Timers only, for tests and benchmarks; serves only models asked for by id (no offline default). */
  'stand-in': standInSkillset as Skillset
})

/** The skillset called `name`; throws SkillsetNotFoundError for any other name. */
export function getSkillset (name: string): Skillset {
  if (!Object.hasOwn(SKILLSETS, name)) {
    throw new SkillsetNotFoundError(`unknown skillset "${name}": this node has ${Object.keys(SKILLSETS).join(', ')}`)
  }
  return SKILLSETS[name] as Skillset
}

/** Skillsets whose jobs stream (StreamingSkillset): they load through `loadStreaming`. */
export const STREAMING_SKILLSETS: Readonly<Record<string, StreamingSkillset>> = Object.freeze({
  lm: lmSkillset as unknown as StreamingSkillset
})

/** The streaming skillset called `name`; throws SkillsetNotFoundError for any other name. */
export function getStreamingSkillset (name: string): StreamingSkillset {
  if (!Object.hasOwn(STREAMING_SKILLSETS, name)) {
    throw new SkillsetNotFoundError(`unknown streaming skillset "${name}": this node has ${Object.keys(STREAMING_SKILLSETS).join(', ')}`)
  }
  return STREAMING_SKILLSETS[name] as StreamingSkillset
}
