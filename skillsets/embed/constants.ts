/** Defaults of the embed skillset's limits; every one can be set through `createEmbedSkillset(init)`. */

/** Texts in one job. */
export const MAX_TEXTS = 256
/** Characters (UTF-16 code units) in one text; longer texts are refused, not cut. */
export const MAX_TEXT_CHARS = 8192
/** Characters in all texts of one job. */
export const MAX_TOTAL_CHARS = 512 * 1024
/**
 * Padded tokens (batch × longest sequence) in one inference call. A runner
 * batch over this is split into several calls, shortest texts together.
 * On the CPU, calls of 512–1024 tokens ran MiniLM faster than one call of
 * 5000 (cache-sized activations); GPUs want big calls.
 */
export const MAX_BATCH_TOKENS_CPU = 1024
export const MAX_BATCH_TOKENS_GPU = 16384
/** Largest vector width accepted from the wire. */
export const MAX_DIMS = 65536
