/**
 * Seeded weights of a generated DETR-shaped detector, as Float32Arrays. The
 * graph writer and the reference test (test/helpers/detr-reference.ts) both
 * start here.
 *
 * Convolution weights are [out, in, 3, 3] (ONNX Conv, PyTorch's layout);
 * linear weights are [in, out] (the layout ONNX MatMul takes).
 */
import type { DetrShape } from './config.ts'
import { COCO_LABELS } from './config.ts'
import { normalArray, tensorSeed } from '../prng.ts'

/** x @ weight + bias: weight is [inDim, outDim]. */
export interface DetrLinear { weight: Float32Array, bias: Float32Array, inDim: number, outDim: number }
export interface DetrConv { weight: Float32Array, bias: Float32Array, inChannels: number, outChannels: number }
export interface DetrLayerNorm { weight: Float32Array, bias: Float32Array }

export interface DetrDecoderLayer {
  q: DetrLinear
  k: DetrLinear
  v: DetrLinear
  o: DetrLinear
  attnNorm: DetrLayerNorm
  fc1: DetrLinear
  fc2: DetrLinear
  ffnNorm: DetrLayerNorm
}

export interface DetrWeights {
  shape: Readonly<DetrShape>
  seed: number
  /** Number of real classes; the logits have one more ("no object", last). */
  numLabels: number
  backbone: DetrConv[]
  /** 1×1 projection of the last backbone features to dModel. */
  projection: DetrLinear
  /** [numQueries, dModel]: the learned object queries (DETR's query_position_embeddings). */
  queries: Float32Array
  layers: DetrDecoderLayer[]
  classHead: DetrLinear
  boxHidden: DetrLinear
  boxOut: DetrLinear
}

function linear (seed: number, name: string, inDim: number, outDim: number, std: number): DetrLinear {
  return {
    weight: normalArray(inDim * outDim, tensorSeed(seed, `${name}.weight`), 0, std),
    bias: normalArray(outDim, tensorSeed(seed, `${name}.bias`), 0, std),
    inDim,
    outDim
  }
}

function layerNorm (seed: number, name: string, dim: number): DetrLayerNorm {
  return { weight: normalArray(dim, tensorSeed(seed, `${name}.weight`), 1, 0.1), bias: normalArray(dim, tensorSeed(seed, `${name}.bias`), 0, 0.1) }
}

/** Regenerate a detector's weights from its shape and seed (deterministic). */
export function generateDetrWeights (shape: Readonly<DetrShape>, seed: number): DetrWeights {
  const d = shape.dModel
  const std = shape.initializerRange
  if (d % shape.numHeads !== 0) throw new RangeError(`dModel ${d} is not a multiple of ${shape.numHeads} heads`)
  if (d % 4 !== 0) throw new RangeError(`the sine position embedding needs dModel divisible by 4, got ${d}`)
  const backbone: DetrConv[] = []
  let cin = 3
  shape.backboneChannels.forEach((cout, i) => {
    // He initialisation keeps the activations' scale through the ReLUs.
    const he = Math.sqrt(2 / (cin * 9))
    backbone.push({
      weight: normalArray(cout * cin * 9, tensorSeed(seed, `backbone.conv${i}.weight`), 0, he),
      bias: normalArray(cout, tensorSeed(seed, `backbone.conv${i}.bias`), 0, 0.1),
      inChannels: cin,
      outChannels: cout
    })
    cin = cout
  })
  const layers: DetrDecoderLayer[] = []
  for (let i = 0; i < shape.decoderLayers; i++) {
    const p = `decoder.layers.${i}`
    layers.push({
      q: linear(seed, `${p}.cross_attn.q_proj`, d, d, std),
      k: linear(seed, `${p}.cross_attn.k_proj`, d, d, std),
      v: linear(seed, `${p}.cross_attn.v_proj`, d, d, std),
      o: linear(seed, `${p}.cross_attn.out_proj`, d, d, std),
      attnNorm: layerNorm(seed, `${p}.cross_attn_layer_norm`, d),
      fc1: linear(seed, `${p}.fc1`, d, shape.ffnDim, std),
      fc2: linear(seed, `${p}.fc2`, shape.ffnDim, d, std),
      ffnNorm: layerNorm(seed, `${p}.final_layer_norm`, d)
    })
  }
  const numLabels = COCO_LABELS.length
  return {
    shape,
    seed,
    numLabels,
    backbone,
    projection: linear(seed, 'input_projection', cin, d, Math.sqrt(1 / cin)),
    queries: normalArray(shape.numQueries * d, tensorSeed(seed, 'query_position_embeddings.weight'), 0, 1),
    layers,
    classHead: linear(seed, 'class_labels_classifier', d, numLabels + 1, 0.5),
    boxHidden: linear(seed, 'bbox_predictor.layers.0', d, d, std),
    boxOut: linear(seed, 'bbox_predictor.layers.1', d, 4, std)
  }
}
