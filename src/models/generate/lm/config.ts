/**
 * Shapes of the generated decoder-only LMs (Qwen2's architecture: RMSNorm,
 * RoPE, grouped-query attention with q/k/v biases, SwiGLU MLP), and the
 * Hugging Face `config.json` and `generation_config.json` written next to
 * them.
 */

export type LmSize = 'tiny' | 'small' | 'bench'
export const LM_SIZES: readonly LmSize[] = Object.freeze(['tiny', 'small', 'bench'])

export interface LmShape {
  hiddenSize: number
  numHiddenLayers: number
  numAttentionHeads: number
  numKeyValueHeads: number
  headDim: number
  intermediateSize: number
  /** Tokenizer and embedding size; the last three ids are the special tokens. */
  vocabSize: number
  maxPositionEmbeddings: number
  rmsNormEps: number
  ropeTheta: number
  tieWordEmbeddings: boolean
  /** Standard deviation of the random weights (Qwen2's initializer_range is 0.02). */
  initializerRange: number
}

/**
 * `tiny` is for tests: its weights are far larger than 0.02 so that attention
 * is far from uniform and a reference comparison has teeth, and its lm_head
 * is untied so that a mistake in it cannot hide behind the embeddings.
 * `small` is the demo served by default (a few MB, generated in well under a
 * second, milliseconds per token). `bench` has about 75 M parameters, a
 * 32768-token vocabulary and tied embeddings, like the small Qwen2 models;
 * it is generated only when asked for.
 */
export const LM_SHAPES: Readonly<Record<LmSize, Readonly<LmShape>>> = Object.freeze({
  tiny: Object.freeze({
    hiddenSize: 64,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 16,
    intermediateSize: 128,
    vocabSize: 512,
    maxPositionEmbeddings: 512,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    tieWordEmbeddings: false,
    initializerRange: 0.2
  }),
  small: Object.freeze({
    hiddenSize: 256,
    numHiddenLayers: 4,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 64,
    intermediateSize: 768,
    vocabSize: 4096,
    maxPositionEmbeddings: 2048,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    initializerRange: 0.05
  }),
  bench: Object.freeze({
    hiddenSize: 768,
    numHiddenLayers: 8,
    numAttentionHeads: 12,
    numKeyValueHeads: 4,
    headDim: 64,
    intermediateSize: 2048,
    vocabSize: 32768,
    maxPositionEmbeddings: 4096,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    tieWordEmbeddings: true,
    initializerRange: 0.02
  })
})

/** The special tokens, in id order at the end of the vocabulary. */
export const LM_SPECIAL_TOKENS = Object.freeze(['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const)

export interface LmSpecialIds { endOfText: number, imStart: number, imEnd: number }

/** Ids of the special tokens of a vocabulary of `vocabSize`. */
export function lmSpecialIds (vocabSize: number): LmSpecialIds {
  return { endOfText: vocabSize - 3, imStart: vocabSize - 2, imEnd: vocabSize - 1 }
}

/** Number of parameters of a shape. */
export function lmParameterCount (s: Readonly<LmShape>): number {
  const h = s.hiddenSize
  const q = s.numAttentionHeads * s.headDim
  const kv = s.numKeyValueHeads * s.headDim
  const attention = h * q + q + 2 * (h * kv + kv) + q * h
  const mlp = 3 * h * s.intermediateSize
  const layer = attention + mlp + 2 * h
  const embeddings = s.vocabSize * h * (s.tieWordEmbeddings ? 1 : 2)
  return embeddings + s.numHiddenLayers * layer + h
}

/** The Hugging Face `config.json` (Qwen2ForCausalLM). transformers.js reads model_type, num_hidden_layers, num_key_value_heads, head_dim. */
export function lmHfConfig (s: Readonly<LmShape>, size: LmSize, seed: number): Record<string, unknown> {
  const ids = lmSpecialIds(s.vocabSize)
  return {
    _name_or_path: `ipfs-accelerate/generated-qwen2-${size}`,
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    attention_dropout: 0,
    bos_token_id: ids.endOfText,
    eos_token_id: ids.imEnd,
    pad_token_id: ids.endOfText,
    hidden_act: 'silu',
    hidden_size: s.hiddenSize,
    initializer_range: s.initializerRange,
    intermediate_size: s.intermediateSize,
    max_position_embeddings: s.maxPositionEmbeddings,
    max_window_layers: s.numHiddenLayers,
    num_attention_heads: s.numAttentionHeads,
    num_hidden_layers: s.numHiddenLayers,
    num_key_value_heads: s.numKeyValueHeads,
    head_dim: s.headDim,
    rms_norm_eps: s.rmsNormEps,
    rope_theta: s.ropeTheta,
    rope_scaling: null,
    sliding_window: null,
    use_sliding_window: false,
    tie_word_embeddings: s.tieWordEmbeddings,
    torch_dtype: 'float32',
    use_cache: true,
    vocab_size: s.vocabSize,
    ipfs_accelerate: { generator: 'qwen2', size, seed, note: 'seeded RANDOM weights: the text it writes means nothing' }
  }
}

/** The Hugging Face `generation_config.json`: greedy by default, stops at <|im_end|> or <|endoftext|>. */
export function lmGenerationConfig (s: Readonly<LmShape>): Record<string, unknown> {
  const ids = lmSpecialIds(s.vocabSize)
  return {
    bos_token_id: ids.endOfText,
    eos_token_id: [ids.imEnd, ids.endOfText],
    pad_token_id: ids.endOfText,
    do_sample: false,
    max_new_tokens: 64
  }
}
