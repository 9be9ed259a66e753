/**
 * The `embed` skillset: texts in, one vector per text out (mean or [CLS]
 * pooling, L2-normalised by default). Inputs with the same pooling and
 * normalisation batch together; the runner runs all their texts at once.
 */
import type { ExecutionPlan, ModelLocation, Skillset } from '../../src/interfaces/index.ts'
import { MAX_DIMS, MAX_TEXT_CHARS, MAX_TEXTS, MAX_TOTAL_CHARS } from './constants.ts'
import type { EmbedInput, EmbedLimits } from './input.ts'
import { parseEmbedInput } from './input.ts'
import type { EmbedOutput, EmbedWireOutput } from './codec.ts'
import { decodeEmbedOutput, encodeEmbedOutput } from './codec.ts'
import { loadEmbedRunner } from './runner.ts'
import type { EmbedRunner } from './runner.ts'
import { sampleEmbedInput } from './sample.ts'

export type { EmbedInput, EmbedLimits } from './input.ts'
export type { EmbedOutput, EmbedWireOutput } from './codec.ts'
export type { Pooling } from './pooling.ts'
export type { EmbedRunner } from './runner.ts'

export interface EmbedSkillsetInit {
  /** Texts per job (default 256). */
  maxTexts?: number
  /** Characters per text (default 8192). */
  maxTextChars?: number
  /** Characters per job (default 524288). */
  maxTotalChars?: number
  /** Padded tokens per inference call (default 1024 on the CPU, 16384 on a GPU). */
  maxBatchTokens?: number
}

export interface EmbedSkillset extends Skillset<EmbedInput, EmbedOutput> {
  readonly limits: Readonly<EmbedLimits & { maxBatchTokens: number | undefined }>
  encodeOutput(output: EmbedOutput): EmbedWireOutput
  load(model: ModelLocation, plan: ExecutionPlan): Promise<EmbedRunner>
}

function positiveInt (name: string, v: number | undefined, dflt: number): number {
  const n = v ?? dflt
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`embed skillset: ${name} must be a positive integer, got ${String(v)}`)
  return n
}

export function createEmbedSkillset (init: EmbedSkillsetInit = {}): EmbedSkillset {
  const limits = Object.freeze({
    maxTexts: positiveInt('maxTexts', init.maxTexts, MAX_TEXTS),
    maxTextChars: positiveInt('maxTextChars', init.maxTextChars, MAX_TEXT_CHARS),
    maxTotalChars: positiveInt('maxTotalChars', init.maxTotalChars, MAX_TOTAL_CHARS),
    maxBatchTokens: init.maxBatchTokens === undefined ? undefined : positiveInt('maxBatchTokens', init.maxBatchTokens, 1)
  })
  return Object.freeze({
    name: 'embed' as const,
    limits,
    parseInput: (raw: unknown): EmbedInput => parseEmbedInput(raw, limits),
    batchKey: (input: EmbedInput): string => `${input.pooling}:${input.normalize ? 'norm' : 'raw'}`,
    cost: (input: EmbedInput): number => input.texts.length,
    sampleInput: (n: number): unknown => sampleEmbedInput(n, limits.maxTexts),
    load: async (model: ModelLocation, plan: ExecutionPlan): Promise<EmbedRunner> =>
      await loadEmbedRunner(model, plan, { maxBatchTokens: limits.maxBatchTokens }),
    encodeOutput: encodeEmbedOutput,
    decodeOutput: (wire: unknown): EmbedOutput => decodeEmbedOutput(wire, { maxTexts: limits.maxTexts, maxDims: MAX_DIMS })
  })
}

/** The embed skillset with its default limits. */
export const embedSkillset: EmbedSkillset = createEmbedSkillset()
