/**
 * The `lm` skillset: text generation with a causal LM and a KV cache,
 * streamed one step at a time. `prompt` or chat `messages` in; partials of
 * `{ tokens, text }` per step; `{ text, tokens, finishReason }` at the end.
 * Jobs share one loaded model through the runner's step-level batching
 * (runner.ts); a job's cost is its KV-cache tokens (input.ts `lmCost`).
 */
import type { ExecutionPlan, ModelLocation, SkillsetLoadOptions, StreamingSkillset } from '../../src/interfaces/index.ts'
import { DEFAULT_KV_BUDGET_TOKENS, MAX_MESSAGES, MAX_NEW_TOKENS, MAX_PROMPT_BYTES, MAX_STOP_BYTES, MAX_STOPS } from './constants.ts'
import type { LmInput, LmLimits } from './input.ts'
import { lmCost, parseLmInput } from './input.ts'
import type { LmOutput, LmPartial } from './codec.ts'
import { decodeLmOutput, decodeLmPartial, encodeLmOutput, encodeLmPartial } from './codec.ts'
import { loadLm } from './model.ts'
import type { BatchPolicy } from './runner.ts'
import { LmRunner } from './runner.ts'

export type { ChatMessage, LmInput, LmLimits } from './input.ts'
export type { FinishReason, LmOutput, LmPartial } from './codec.ts'
export type { BatchPolicy, LmRunnerOptions } from './runner.ts'
export { LmRunner } from './runner.ts'
export { lmCost } from './input.ts'

export interface LmSkillsetInit extends Partial<LmLimits> {
  /** KV-cache tokens the runner holds at once (default DEFAULT_KV_BUDGET_TOKENS). */
  kvBudgetTokens?: number
  policy?: BatchPolicy
  /** Pad every decode row to a canonical length, so its logits are bit-identical alone or in any batch (default true). */
  exact?: boolean
}

export interface LmSkillset extends StreamingSkillset<LmInput, LmOutput, LmPartial> {
  readonly limits: Readonly<LmLimits & { kvBudgetTokens: number }>
  loadStreaming(model: ModelLocation, plan: ExecutionPlan, options?: SkillsetLoadOptions): Promise<LmRunner>
}

export function positiveInt (name: string, v: number | undefined, dflt: number): number {
  const n = v ?? dflt
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`skillset: ${name} must be a positive integer, got ${String(v)}`)
  return n
}

/** The limits of a generation skillset (lm, llava-next) from its init, with the defaults. */
export function lmLimits (init: LmSkillsetInit): LmLimits & { kvBudgetTokens: number } {
  return {
    maxNewTokens: positiveInt('maxNewTokens', init.maxNewTokens, MAX_NEW_TOKENS),
    maxPromptBytes: positiveInt('maxPromptBytes', init.maxPromptBytes, MAX_PROMPT_BYTES),
    maxMessages: positiveInt('maxMessages', init.maxMessages, MAX_MESSAGES),
    maxStops: positiveInt('maxStops', init.maxStops, MAX_STOPS),
    maxStopBytes: positiveInt('maxStopBytes', init.maxStopBytes, MAX_STOP_BYTES),
    kvBudgetTokens: positiveInt('kvBudgetTokens', init.kvBudgetTokens, DEFAULT_KV_BUDGET_TOKENS)
  }
}

export function createLmSkillset (init: LmSkillsetInit = {}): LmSkillset {
  const limits = Object.freeze(lmLimits(init))
  return Object.freeze({
    name: 'lm' as const,
    streaming: true as const,
    limits,
    parseInput: (raw: unknown): LmInput => parseLmInput(raw, limits),
    cost: lmCost,
    /** About `n` KV tokens: a 16-byte prompt and the rest new tokens, greedy. */
    sampleInput: (n: number): unknown => ({ prompt: 'The quick brown ', max_new_tokens: Math.max(1, Math.min(limits.maxNewTokens, Math.floor(n) - 16)) }),
    // The node's budget (scheduler.kvBudgetTokens, which its queue admits against) wins over the skillset's default.
    loadStreaming: async (model: ModelLocation, plan: ExecutionPlan, options?: SkillsetLoadOptions): Promise<LmRunner> =>
      new LmRunner(await loadLm(model, plan), { kvBudgetTokens: positiveInt('kvBudgetTokens', options?.kvBudgetTokens, limits.kvBudgetTokens), policy: init.policy, exact: init.exact }),
    encodeOutput: encodeLmOutput,
    decodeOutput: decodeLmOutput,
    encodePartial: encodeLmPartial,
    decodePartial: decodeLmPartial
  })
}

/** The lm skillset with its default limits. */
export const lmSkillset: LmSkillset = createLmSkillset()
