/**
 * Seeded weights of a generated BERT encoder, as Float32Arrays. The graph
 * writer and the reference tests both start from here.
 *
 * Linear weights are stored [in, out] (the layout ONNX MatMul takes), not
 * PyTorch's [out, in].
 */
import type { BertShape } from './config.ts'
import { normalArray, tensorSeed } from './prng.ts'

export interface Linear { weight: Float32Array, bias: Float32Array, inDim: number, outDim: number }
export interface LayerNorm { gamma: Float32Array, beta: Float32Array }

export interface BertLayerWeights {
  query: Linear
  key: Linear
  value: Linear
  attentionOutput: Linear
  attentionLayerNorm: LayerNorm
  intermediate: Linear
  output: Linear
  outputLayerNorm: LayerNorm
}

export interface BertWeights {
  shape: Readonly<BertShape>
  seed: number
  /** [vocabSize, hidden]; row 0 ([PAD]) is zero, as in BERT. */
  wordEmbeddings: Float32Array
  /** [maxPositionEmbeddings, hidden] */
  positionEmbeddings: Float32Array
  /** [typeVocabSize, hidden] */
  tokenTypeEmbeddings: Float32Array
  embeddingLayerNorm: LayerNorm
  layers: BertLayerWeights[]
}

/** One named tensor, in Hugging Face BERT naming. */
export interface NamedTensor { name: string, dims: number[], data: Float32Array }

const LN_STD = 0.1

function linear (seed: number, name: string, inDim: number, outDim: number, std: number): Linear {
  return {
    weight: normalArray(inDim * outDim, tensorSeed(seed, `${name}.weight`), 0, std),
    bias: normalArray(outDim, tensorSeed(seed, `${name}.bias`), 0, std),
    inDim,
    outDim
  }
}

function layerNorm (seed: number, name: string, dim: number): LayerNorm {
  return {
    gamma: normalArray(dim, tensorSeed(seed, `${name}.weight`), 1, LN_STD),
    beta: normalArray(dim, tensorSeed(seed, `${name}.bias`), 0, LN_STD)
  }
}

/** Regenerate a model's weights from its shape and seed (deterministic). */
export function generateBertWeights (shape: Readonly<BertShape>, seed: number): BertWeights {
  const h = shape.hiddenSize
  const std = shape.initializerRange
  if (h % shape.numAttentionHeads !== 0) throw new RangeError(`hidden size ${h} is not a multiple of ${shape.numAttentionHeads} heads`)
  const wordEmbeddings = normalArray(shape.vocabSize * h, tensorSeed(seed, 'embeddings.word_embeddings.weight'), 0, std)
  wordEmbeddings.fill(0, 0, h)
  const layers: BertLayerWeights[] = []
  for (let i = 0; i < shape.numHiddenLayers; i++) {
    const p = `encoder.layer.${i}`
    layers.push({
      query: linear(seed, `${p}.attention.self.query`, h, h, std),
      key: linear(seed, `${p}.attention.self.key`, h, h, std),
      value: linear(seed, `${p}.attention.self.value`, h, h, std),
      attentionOutput: linear(seed, `${p}.attention.output.dense`, h, h, std),
      attentionLayerNorm: layerNorm(seed, `${p}.attention.output.LayerNorm`, h),
      intermediate: linear(seed, `${p}.intermediate.dense`, h, shape.intermediateSize, std),
      output: linear(seed, `${p}.output.dense`, shape.intermediateSize, h, std),
      outputLayerNorm: layerNorm(seed, `${p}.output.LayerNorm`, h)
    })
  }
  return {
    shape,
    seed,
    wordEmbeddings,
    positionEmbeddings: normalArray(shape.maxPositionEmbeddings * h, tensorSeed(seed, 'embeddings.position_embeddings.weight'), 0, std),
    tokenTypeEmbeddings: normalArray(shape.typeVocabSize * h, tensorSeed(seed, 'embeddings.token_type_embeddings.weight'), 0, std),
    embeddingLayerNorm: layerNorm(seed, 'embeddings.LayerNorm', h),
    layers
  }
}

/** Number of parameters of a shape. */
export function parameterCount (shape: Readonly<BertShape>): number {
  const h = shape.hiddenSize
  const inter = shape.intermediateSize
  const emb = (shape.vocabSize + shape.maxPositionEmbeddings + shape.typeVocabSize) * h + 2 * h
  const layer = 4 * (h * h + h) + 2 * (h * inter) + inter + h + 4 * h
  return emb + shape.numHiddenLayers * layer
}
