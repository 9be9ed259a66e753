/**
 * The `stand-in` skillset, for tests and the scale benchmark: `{ items }`
 * in, `{ digest }` out (sha256 of the input's canonical JSON, so every
 * result can be checked), after msPerItem × slowdown × items ms on a timer.
 * It does no blocking work, so it runs on the main thread (`inProcess`),
 * with no worker thread, transformers.js or ONNX Runtime. Its settings are
 * the node config's `standIn` block.
 */
import type { ExecutionPlan, ModelLocation, Skillset, SkillsetLoadOptions, SkillsetRunner } from '../../src/interfaces/index.ts'
import type { StandInInput, StandInOutput } from './input.ts'
import { decodeStandInOutput, encodeStandInOutput, MAX_ITEMS, parseStandInInput } from './input.ts'
import { StandInRunner, standInSettings } from './runner.ts'

export type { StandInInput, StandInOutput } from './input.ts'
export { canonicalJson, DIGEST_BYTES, MAX_ITEMS, MAX_TAG_CHARS, standInDigest } from './input.ts'
export type { StandInSettings } from './runner.ts'
export { StandInRunner, standInSettings } from './runner.ts'

export interface StandInSkillsetInit {
  /** Random source for failRate (tests make it deterministic); default Math.random. */
  random?: () => number
}

export interface StandInSkillset extends Skillset<StandInInput, StandInOutput> {
  readonly inProcess: true
  encodeOutput(output: StandInOutput): { digest: Uint8Array }
}

export function createStandInSkillset (init: StandInSkillsetInit = {}): StandInSkillset {
  const random = init.random ?? Math.random
  return Object.freeze({
    name: 'stand-in' as const,
    inProcess: true as const,
    parseInput: parseStandInInput,
    batchKey: (_input: StandInInput): string => 'stand-in',
    cost: (input: StandInInput): number => input.items,
    sampleInput: (n: number): unknown => ({ items: Math.max(1, Math.min(MAX_ITEMS, Math.floor(n))) }),
    load: async (_model: ModelLocation, _plan: ExecutionPlan, options?: SkillsetLoadOptions): Promise<SkillsetRunner<StandInInput, StandInOutput>> =>
      new StandInRunner(standInSettings(options), random),
    encodeOutput: encodeStandInOutput,
    decodeOutput: decodeStandInOutput
  })
}

/** The stand-in skillset as the registry holds it. */
export const standInSkillset: StandInSkillset = createStandInSkillset()
