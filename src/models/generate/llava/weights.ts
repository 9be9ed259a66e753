/**
 * Seeded weights of the generated LLaVA-NeXT-shaped model: a CLIP-like
 * vision tower (patch convolution without bias, class and position
 * embeddings, pre-LayerNorm, pre-LN layers), the projector and
 * `image_newline`, and the Qwen2-shaped decoder (the lm generator's
 * weights at the text shape). Linear weights are [in, out], as in lm/weights.ts.
 */
import type { LmLinear, LmWeights } from '../lm/weights.ts'
import { generateLmWeights } from '../lm/weights.ts'
import { normalArray, tensorSeed } from '../prng.ts'
import type { LlavaShape } from './config.ts'

export interface VisionLayerNorm { gamma: Float32Array, beta: Float32Array }

export interface VisionLayerWeights {
  layerNorm1: VisionLayerNorm
  qProj: LmLinear
  kProj: LmLinear
  vProj: LmLinear
  outProj: LmLinear
  layerNorm2: VisionLayerNorm
  fc1: LmLinear
  fc2: LmLinear
}

export interface LlavaWeights {
  shape: Readonly<LlavaShape>
  seed: number
  /** [hidden, 3, patch, patch], as PyTorch's Conv2d stores it. */
  patchEmbedding: Float32Array
  classEmbedding: Float32Array
  /** [patches + 1, hidden]: the class position first. */
  positionEmbedding: Float32Array
  preLayerNorm: VisionLayerNorm
  layers: VisionLayerWeights[]
  projector1: LmLinear
  projector2: LmLinear
  /** [text hidden] */
  imageNewline: Float32Array
  text: LmWeights
}

const NORM_STD = 0.1

function linear (seed: number, name: string, inDim: number, outDim: number, std: number): LmLinear {
  return { weight: normalArray(inDim * outDim, tensorSeed(seed, `${name}.weight`), 0, std), bias: normalArray(outDim, tensorSeed(seed, `${name}.bias`), 0, std), inDim, outDim }
}

function layerNorm (seed: number, name: string, dim: number): VisionLayerNorm {
  return { gamma: normalArray(dim, tensorSeed(seed, `${name}.weight`), 1, NORM_STD), beta: normalArray(dim, tensorSeed(seed, `${name}.bias`), 0, NORM_STD) }
}

export function generateLlavaWeights (shape: Readonly<LlavaShape>, seed: number): LlavaWeights {
  const v = shape.vision
  const h = v.hiddenSize
  const std = v.initializerRange
  if (v.imageSize % v.patchSize !== 0) throw new RangeError(`a ${v.imageSize}-pixel tile is not a whole number of ${v.patchSize}-pixel patches`)
  if (h % v.numAttentionHeads !== 0) throw new RangeError(`vision hidden ${h} is not a multiple of ${v.numAttentionHeads} heads`)
  const patches = (v.imageSize / v.patchSize) ** 2
  const t = shape.text.hiddenSize
  const p = 'vision_tower.vision_model'
  const layers: VisionLayerWeights[] = []
  for (let i = 0; i < v.numHiddenLayers; i++) {
    const l = `${p}.encoder.layers.${i}`
    layers.push({
      layerNorm1: layerNorm(seed, `${l}.layer_norm1`, h),
      qProj: linear(seed, `${l}.self_attn.q_proj`, h, h, std),
      kProj: linear(seed, `${l}.self_attn.k_proj`, h, h, std),
      vProj: linear(seed, `${l}.self_attn.v_proj`, h, h, std),
      outProj: linear(seed, `${l}.self_attn.out_proj`, h, h, std),
      layerNorm2: layerNorm(seed, `${l}.layer_norm2`, h),
      fc1: linear(seed, `${l}.mlp.fc1`, h, v.intermediateSize, std),
      fc2: linear(seed, `${l}.mlp.fc2`, v.intermediateSize, h, std)
    })
  }
  return {
    shape,
    seed,
    patchEmbedding: normalArray(h * 3 * v.patchSize * v.patchSize, tensorSeed(seed, `${p}.embeddings.patch_embedding.weight`), 0, std),
    classEmbedding: normalArray(h, tensorSeed(seed, `${p}.embeddings.class_embedding`), 0, std),
    positionEmbedding: normalArray((patches + 1) * h, tensorSeed(seed, `${p}.embeddings.position_embedding.weight`), 0, std),
    preLayerNorm: layerNorm(seed, `${p}.pre_layrnorm`, h),
    layers,
    projector1: linear(seed, 'multi_modal_projector.linear_1', h, t, std),
    projector2: linear(seed, 'multi_modal_projector.linear_2', t, t, std),
    imageNewline: normalArray(t, tensorSeed(seed, 'image_newline'), 0, std),
    text: generateLmWeights(shape.text, seed)
  }
}
