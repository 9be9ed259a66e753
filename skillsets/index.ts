/**
 * The skillsets this node can run: a frozen name → skillset table. Add a
 * skillset here when it is built (lm, llava-next and detr are not yet).
 */
import type { Skillset } from '../src/interfaces/index.ts'
import { SkillsetNotFoundError } from '../src/errors.ts'
import { embedSkillset } from './embed/index.ts'
import { standInSkillset } from './stand-in/index.ts'

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
