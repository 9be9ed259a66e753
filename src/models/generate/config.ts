/**
 * Shapes of the generated BERT encoders, and the Hugging Face `config.json`
 * written next to them.
 */

export type BertSize = 'tiny' | 'minilm'

export interface BertShape {
  hiddenSize: number
  numHiddenLayers: number
  numAttentionHeads: number
  intermediateSize: number
  vocabSize: number
  maxPositionEmbeddings: number
  typeVocabSize: number
  layerNormEps: number
  /** Standard deviation of the random weights (BERT's initializer_range). */
  initializerRange: number
}

/**
 * `tiny` is for tests; `minilm` has sentence-transformers/all-MiniLM-L6-v2's
 * shape. The tiny model's weights are larger than BERT's 0.02 so that its
 * attention is far from uniform and a reference comparison has teeth.
 */
export const BERT_SHAPES: Readonly<Record<BertSize, Readonly<BertShape>>> = Object.freeze({
  tiny: Object.freeze({
    hiddenSize: 32,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    intermediateSize: 64,
    vocabSize: 1000,
    maxPositionEmbeddings: 128,
    typeVocabSize: 2,
    layerNormEps: 1e-12,
    initializerRange: 0.2
  }),
  minilm: Object.freeze({
    hiddenSize: 384,
    numHiddenLayers: 6,
    numAttentionHeads: 12,
    intermediateSize: 1536,
    vocabSize: 30522,
    maxPositionEmbeddings: 512,
    typeVocabSize: 2,
    layerNormEps: 1e-12,
    initializerRange: 0.02
  })
})

export const BERT_SIZES: readonly BertSize[] = Object.freeze(['tiny', 'minilm'])

/** The Hugging Face `config.json` of a generated model. */
export function hfConfig (shape: BertShape, size: BertSize, seed: number): Record<string, unknown> {
  return {
    _name_or_path: `ipfs-accelerate/generated-bert-${size}`,
    architectures: ['BertModel'],
    model_type: 'bert',
    attention_probs_dropout_prob: 0.1,
    classifier_dropout: null,
    hidden_act: 'gelu',
    hidden_dropout_prob: 0.1,
    hidden_size: shape.hiddenSize,
    initializer_range: shape.initializerRange,
    intermediate_size: shape.intermediateSize,
    layer_norm_eps: shape.layerNormEps,
    max_position_embeddings: shape.maxPositionEmbeddings,
    num_attention_heads: shape.numAttentionHeads,
    num_hidden_layers: shape.numHiddenLayers,
    pad_token_id: 0,
    position_embedding_type: 'absolute',
    type_vocab_size: shape.typeVocabSize,
    use_cache: false,
    vocab_size: shape.vocabSize,
    ipfs_accelerate: { generator: 'bert', size, seed, note: 'seeded RANDOM weights: the vectors mean nothing' }
  }
}
