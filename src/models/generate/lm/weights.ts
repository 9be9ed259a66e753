/**
 * Seeded weights of a generated decoder-only LM (Qwen2 naming), as
 * Float32Arrays. The graph writer and the reference tests both start here.
 *
 * Linear weights are stored [in, out] (the layout ONNX MatMul takes), not
 * PyTorch's [out, in]; the embedding table (and an untied lm_head) is
 * [vocab, hidden], as in PyTorch.
 */
import type { LmShape } from './config.ts'
import { normalArray, tensorSeed } from '../prng.ts'

/** x @ weight (+ bias): weight is [inDim, outDim]. */
export interface LmLinear { weight: Float32Array, bias?: Float32Array, inDim: number, outDim: number }

export interface LmLayerWeights {
  inputLayerNorm: Float32Array
  qProj: LmLinear
  kProj: LmLinear
  vProj: LmLinear
  oProj: LmLinear
  postAttentionLayerNorm: Float32Array
  gateProj: LmLinear
  upProj: LmLinear
  downProj: LmLinear
}

export interface LmWeights {
  shape: Readonly<LmShape>
  seed: number
  /** [vocabSize, hidden] */
  embedTokens: Float32Array
  layers: LmLayerWeights[]
  /** final RMSNorm [hidden] */
  norm: Float32Array
  /** [vocabSize, hidden]: the embedding table itself when tied. */
  lmHead: Float32Array
}

const NORM_STD = 0.1

function linear (seed: number, name: string, inDim: number, outDim: number, std: number, bias: boolean): LmLinear {
  const l: LmLinear = { weight: normalArray(inDim * outDim, tensorSeed(seed, `${name}.weight`), 0, std), inDim, outDim }
  if (bias) l.bias = normalArray(outDim, tensorSeed(seed, `${name}.bias`), 0, std)
  return l
}

const rmsNorm = (seed: number, name: string, dim: number): Float32Array => normalArray(dim, tensorSeed(seed, `${name}.weight`), 1, NORM_STD)

/** Regenerate a model's weights from its shape and seed (deterministic). */
export function generateLmWeights (shape: Readonly<LmShape>, seed: number): LmWeights {
  const h = shape.hiddenSize
  const std = shape.initializerRange
  if (shape.numAttentionHeads % shape.numKeyValueHeads !== 0) {
    throw new RangeError(`${shape.numAttentionHeads} attention heads are not a multiple of ${shape.numKeyValueHeads} key/value heads`)
  }
  if (shape.headDim % 2 !== 0) throw new RangeError(`RoPE needs an even head_dim, got ${shape.headDim}`)
  const q = shape.numAttentionHeads * shape.headDim
  const kv = shape.numKeyValueHeads * shape.headDim
  const layers: LmLayerWeights[] = []
  for (let i = 0; i < shape.numHiddenLayers; i++) {
    const p = `model.layers.${i}`
    layers.push({
      inputLayerNorm: rmsNorm(seed, `${p}.input_layernorm`, h),
      qProj: linear(seed, `${p}.self_attn.q_proj`, h, q, std, true),
      kProj: linear(seed, `${p}.self_attn.k_proj`, h, kv, std, true),
      vProj: linear(seed, `${p}.self_attn.v_proj`, h, kv, std, true),
      oProj: linear(seed, `${p}.self_attn.o_proj`, q, h, std, false),
      postAttentionLayerNorm: rmsNorm(seed, `${p}.post_attention_layernorm`, h),
      gateProj: linear(seed, `${p}.mlp.gate_proj`, h, shape.intermediateSize, std, false),
      upProj: linear(seed, `${p}.mlp.up_proj`, h, shape.intermediateSize, std, false),
      downProj: linear(seed, `${p}.mlp.down_proj`, shape.intermediateSize, h, std, false)
    })
  }
  const embedTokens = normalArray(shape.vocabSize * h, tensorSeed(seed, 'model.embed_tokens.weight'), 0, std)
  return {
    shape,
    seed,
    embedTokens,
    layers,
    norm: rmsNorm(seed, 'model.norm', h),
    lmHead: shape.tieWordEmbeddings ? embedTokens : normalArray(shape.vocabSize * h, tensorSeed(seed, 'lm_head.weight'), 0, std)
  }
}
