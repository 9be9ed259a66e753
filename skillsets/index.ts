/**
 * The skillsets this node can run: a frozen name → skillset table. Add a
 * skillset here when it is built.
 * Streaming skillsets (`streaming: true`, see StreamingSkillset: `lm`, the
 * streaming stand-in) sit in the same table; `isStreamingSkillset` tells
 * them apart.
 */
import type { AnySkillset, Skillset, StreamingSkillset } from '../src/interfaces/index.ts'
import { isStreamingSkillset } from '../src/interfaces/index.ts'
import { SkillsetNotFoundError } from '../src/errors.ts'
import { detrSkillset } from './detr/index.ts'
import { embedSkillset } from './embed/index.ts'
import { lmSkillset } from './lm/index.ts'
import { llavaNextSkillset } from './llava-next/index.ts'
import { standInSkillset } from './stand-in/index.ts'
import { standInStreamSkillset } from './stand-in-stream/index.ts'

export const SKILLSETS: Readonly<Record<string, AnySkillset>> = Object.freeze({
  embed: embedSkillset,
  lm: lmSkillset as unknown as StreamingSkillset,
  /** Object detection; a bad image fails only its own job (an Error in its slot of the runner's outputs). */
  detr: detrSkillset as Skillset,
  'llava-next': llavaNextSkillset as unknown as StreamingSkillset,
  /** Timers only, for tests and benchmarks; serves only models asked for by id (no offline default). */
  'stand-in': standInSkillset as Skillset,
  /** The streaming twin of the stand-in (timers only), for tests of the streaming path. */
  'stand-in-stream': standInStreamSkillset as StreamingSkillset
})

/** The skillset called `name`; throws SkillsetNotFoundError for any other name. */
export function getSkillset (name: string): AnySkillset {
  if (!Object.hasOwn(SKILLSETS, name)) {
    throw new SkillsetNotFoundError(`unknown skillset "${name}": this node has ${Object.keys(SKILLSETS).join(', ')}`)
  }
  return SKILLSETS[name] as AnySkillset
}

/** A skillset whose runner takes batches; throws SkillsetNotFoundError for a streaming one. */
export function getBatchSkillset (name: string): Skillset {
  const s = getSkillset(name)
  if (isStreamingSkillset(s)) throw new SkillsetNotFoundError(`skillset "${name}" streams: it has no batch runner (use the streaming path)`)
  return s
}

/** A streaming skillset; throws SkillsetNotFoundError for a batch one. */
export function getStreamingSkillset (name: string): StreamingSkillset {
  const s = getSkillset(name)
  if (!isStreamingSkillset(s)) throw new SkillsetNotFoundError(`skillset "${name}" does not stream`)
  return s
}
