/**
 * The `llava-next` skillset: text generation about one image with a
 * LLaVA-NeXT model, streamed one step at a time like `lm` (same partials
 * `{ tokens, text }` and output `{ text, tokens, finishReason }`).
 * Input: `image` (bytes or `{ cid, size }`) and lm's generation fields
 * (input.ts). The worker fetches CID images through `images`. In the
 * inference thread the image is decoded, tiled the anyres way (anyres.ts,
 * pixels.ts), its tiles go through the vision encoder together with those
 * of the jobs that join at the same step (prompts.ts), and decoding is lm's
 * runner with its step-level batching. Cost: lm's bound for the text plus
 * `maxImageTokens` (the most an image can become).
 */
import type { ExecutionPlan, ImageInputs, ImageLimits, ModelLocation, SkillsetLoadOptions, StreamingSkillset } from '../../src/interfaces/index.ts'
import { DEFAULT_IMAGE_LIMITS, oneImageInputs } from '../image/index.ts'
import type { LmOutput, LmPartial } from '../lm/codec.ts'
import { decodeLmOutput, decodeLmPartial, encodeLmOutput, encodeLmPartial } from '../lm/codec.ts'
import type { LmLimits } from '../lm/input.ts'
import type { LmSkillsetInit } from '../lm/index.ts'
import { lmLimits, positiveInt } from '../lm/index.ts'
import { LmRunner } from '../lm/runner.ts'
import type { LlavaNextInput } from './input.ts'
import { llavaNextCost, parseLlavaNextInput } from './input.ts'
import { loadLlavaNext } from './model.ts'
import { LlavaNextPrompts } from './prompts.ts'

export type { LlavaNextInput } from './input.ts'
export { IMAGE_TAG, llavaNextCost, parseLlavaNextInput } from './input.ts'
export type { AnyresConfig, AnyresLayout, Size } from './anyres.ts'
export { anyresLayout, imageTokenCount, maxImageTokens, packImageFeatures } from './anyres.ts'
export { LlavaNextPrompts } from './prompts.ts'
export { loadLlavaNext } from './model.ts'

/**
 * The most image tokens the default skillset's cost assumes: LLaVA-v1.6's
 * worst case (336-pixel tiles of 14-pixel patches, a 2 × 2 grid kept
 * whole: 576 + 48 · 49). A model whose images can become more is refused
 * at load unless the skillset is created with a larger `maxImageTokens`.
 */
export const DEFAULT_MAX_IMAGE_TOKENS = 2928

export interface LlavaNextSkillsetInit extends LmSkillsetInit {
  maxImageTokens?: number
  /** Image limits for parsing (bytes) when the node gives none (the thread gets the node's in load options). */
  images?: ImageLimits
}

/** The runner of a llava-next model: lm's LmRunner over LlavaNextPrompts, whose `stats` count vision runs and tiles. */
export type LlavaNextRunner = LmRunner<LlavaNextInput> & { readonly prompts: LlavaNextPrompts }

export interface LlavaNextSkillset extends StreamingSkillset<LlavaNextInput, LmOutput, LmPartial> {
  readonly limits: Readonly<LmLimits & { kvBudgetTokens: number, maxImageTokens: number }>
  readonly images: ImageInputs<LlavaNextInput>
  loadStreaming(model: ModelLocation, plan: ExecutionPlan, options?: SkillsetLoadOptions): Promise<LlavaNextRunner>
}

export function createLlavaNextSkillset (init: LlavaNextSkillsetInit = {}): LlavaNextSkillset {
  const limits = Object.freeze({ ...lmLimits(init), maxImageTokens: positiveInt('maxImageTokens', init.maxImageTokens, DEFAULT_MAX_IMAGE_TOKENS) })
  const parseImages = init.images ?? DEFAULT_IMAGE_LIMITS
  return Object.freeze({
    name: 'llava-next' as const,
    streaming: true as const,
    limits,
    images: oneImageInputs<LlavaNextInput>(parseImages, 'llava-next input: image'),
    parseInput: (raw: unknown): LlavaNextInput => parseLlavaNextInput(raw, limits, parseImages),
    cost: (input: LlavaNextInput): number => llavaNextCost(input, limits.maxImageTokens),
    loadStreaming: async (model: ModelLocation, plan: ExecutionPlan, options?: SkillsetLoadOptions): Promise<LlavaNextRunner> => {
      const loaded = await loadLlavaNext(model, plan, limits.maxImageTokens)
      const prompts = new LlavaNextPrompts(loaded, options?.images ?? DEFAULT_IMAGE_LIMITS)
      const runner = new LmRunner<LlavaNextInput>(loaded.lm, { kvBudgetTokens: positiveInt('kvBudgetTokens', options?.kvBudgetTokens, limits.kvBudgetTokens), policy: init.policy, exact: init.exact }, prompts)
      return Object.assign(runner, { prompts })
    },
    encodeOutput: encodeLmOutput,
    decodeOutput: decodeLmOutput,
    encodePartial: encodeLmPartial,
    decodePartial: decodeLmPartial
  })
}

/** The llava-next skillset with its default limits. */
export const llavaNextSkillset: LlavaNextSkillset = createLlavaNextSkillset()
