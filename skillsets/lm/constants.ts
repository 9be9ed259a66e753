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
 * Batches are padded only by whole multiples of this many cache positions:
 * ONNX Runtime's CPU MatMul sums over 256-long blocks of K, and its softmax
 * over 16-float lanes, so a row padded by a multiple of 256 gives the same
 * bits as the row alone (measured; other amounts change the last bits).
 */
export const EXACT_PAD_MULTIPLE = 256
