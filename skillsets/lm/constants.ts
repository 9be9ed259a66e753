/** Defaults and bounds of the lm skillset; the limits can be set through `createLmSkillset(init)`. */

/** New tokens a job may ask for (`max_new_tokens`), and the default. */
export const MAX_NEW_TOKENS = 2048
export const DEFAULT_MAX_NEW_TOKENS = 128
/** UTF-8 bytes of the prompt (or of all messages' contents and roles), the upper bound of its tokens. */
export const MAX_PROMPT_BYTES = 16384
/** Messages in one `messages` input. */
export const MAX_MESSAGES = 64
/** Stop sequences per job, and UTF-8 bytes per stop sequence. */
export const MAX_STOPS = 4
export const MAX_STOP_BYTES = 64
/**
 * Tokens the chat template adds per message, at most (ChatML: `<|im_start|>`,
 * the role's own bytes counted separately, `\n`, `<|im_end|>`, `\n`), plus the
 * generation prompt once. Part of the client-side cost bound.
 */
export const CHAT_TOKENS_PER_MESSAGE = 8
export const CHAT_TOKENS_FIXED = 8
/**
 * KV-cache tokens the runner holds at once (sum of running jobs' costs) when
 * neither the plan nor the caller says: 4 × a default-sized job of 1 KiB of
 * prompt. A job that costs more than the budget alone still runs, alone.
 */
export const DEFAULT_KV_BUDGET_TOKENS = 8192
/**
 * Exact batching pads a row's KV cache only by whole multiples of this many
 * positions. ONNX Runtime's CPU softmax sums in 16-float lanes, so a shift
 * by another amount moves scores between lanes and changes logits in their
 * last bits; a shift by a multiple of 16 changed no bit in any measurement
 * (lengths 43-279, padding up to 745 positions, across the 256-long blocks
 * of its MatMul). The exact runner therefore runs every decode step, alone
 * or batched, with each row's attention length a multiple of 16.
 */
export const EXACT_PAD_MULTIPLE = 16

/** The past length an exact decode step gives a row whose cache holds `n` positions: past + the new token is a multiple of EXACT_PAD_MULTIPLE. */
export function canonicalPast (n: number): number {
  return Math.ceil((n + 1) / EXACT_PAD_MULTIPLE) * EXACT_PAD_MULTIPLE - 1
}

/**
 * How long an idle runner waits for jobs still preparing (llava-next:
 * decoding and tiling their images) before it prefills those that are
 * ready: jobs that arrive together share one prefill step (one
 * vision-encoder run), and one slow image holds the others up this long at most.
 */
export const GATHER_MS = 50
