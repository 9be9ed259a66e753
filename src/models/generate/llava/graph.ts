/**
 * The vision encoder and token embedding graphs of the generated
 * LLaVA-NeXT-shaped model, in the layout transformers.js loads for llava
 * (its third session, the decoder, is lm/graph.ts with `inputsEmbeds`):
 *
 *   onnx/vision_encoder.onnx
 *     in   pixel_values    float32 [batch_size, 3, image_size, image_size]   (one row per tile)
 *     out  image_features  float32 [batch_size, patches, text_hidden]       (projected; CLS dropped: "default")
 *          image_newline   float32 [text_hidden]                            (the learned row separator)
 *   onnx/embed_tokens.onnx
 *     in   input_ids       int64   [batch_size, sequence_length]
 *     out  inputs_embeds   float32 [batch_size, sequence_length, text_hidden]
 *
 * The tower is CLIP's: a patch convolution without bias, the class token,
 * learned positions, pre_layrnorm, pre-LN layers with quick_gelu; its last
 * layer's hidden states, less the class position, go through the projector
 * (linear, erf GELU, linear). No ONNX export of LLaVA-NeXT we found ships
 * `image_newline` apart from the weights, so it is this graph's second
 * output (a constant): the runner needs it to pack features.
 */
import { DT, GraphBuilder } from '../onnx-builder.ts'
import type { LmLinear } from '../lm/weights.ts'
import type { LlavaWeights, VisionLayerNorm } from './weights.ts'

export const LLAVA_IO = Object.freeze({
  pixelValues: 'pixel_values',
  imageFeatures: 'image_features',
  imageNewline: 'image_newline',
  inputIds: 'input_ids',
  inputsEmbeds: 'inputs_embeds'
})

const BATCH = 'batch_size'

function linear (b: GraphBuilder, x: string, l: LmLinear, name: string): string {
  const y = b.op('MatMul', [x, b.tensor(`${name}.weight`, [l.inDim, l.outDim], l.weight)])
  return l.bias === undefined ? y : b.op('Add', [y, b.tensor(`${name}.bias`, [l.outDim], l.bias)])
}

function layerNorm (b: GraphBuilder, x: string, ln: VisionLayerNorm, name: string, eps: number): string {
  const g = b.tensor(`${name}.weight`, [ln.gamma.length], ln.gamma)
  const beta = b.tensor(`${name}.bias`, [ln.beta.length], ln.beta)
  return b.op('LayerNormalization', [x, g, beta], { axis: -1, epsilon: { float: eps } })
}

export function buildVisionEncoderOnnx (w: LlavaWeights): Uint8Array {
  const v = w.shape.vision
  const h = v.hiddenSize
  const heads = v.numAttentionHeads
  const d = h / heads
  const side = v.imageSize / v.patchSize
  const t = w.shape.text.hiddenSize
  const b = new GraphBuilder()
  const pixels = b.input(LLAVA_IO.pixelValues, DT.FLOAT, [BATCH, 3, v.imageSize, v.imageSize])
  b.output(LLAVA_IO.imageFeatures, DT.FLOAT, [BATCH, side * side, t])
  b.output(LLAVA_IO.imageNewline, DT.FLOAT, [t])

  const p = 'vision_tower.vision_model'
  const conv = b.op('Conv', [pixels, b.tensor(`${p}.embeddings.patch_embedding.weight`, [h, 3, v.patchSize, v.patchSize], w.patchEmbedding)],
    { kernel_shape: [v.patchSize, v.patchSize], strides: [v.patchSize, v.patchSize] })
  const patches = b.op('Transpose', [b.op('Reshape', [conv, b.int64s([0, h, -1])])], { perm: [0, 2, 1] })
  const rows = b.op('Shape', [pixels], { start: 0, end: 1 })
  const cls = b.op('Expand', [b.tensor(`${p}.embeddings.class_embedding`, [1, 1, h], w.classEmbedding), b.op('Concat', [rows, b.int64s([1, h])], { axis: 0 })])
  const embedded = b.op('Add', [b.op('Concat', [cls, patches], { axis: 1 }), b.tensor(`${p}.embeddings.position_embedding.weight`, [side * side + 1, h], w.positionEmbedding)])
  let x = layerNorm(b, embedded, w.preLayerNorm, `${p}.pre_layrnorm`, v.layerNormEps)

  const split = b.int64s([0, 0, heads, d])
  const merge = b.int64s([0, 0, h])
  const scale = b.floatScalar(1 / Math.sqrt(d))
  w.layers.forEach((layer, i) => {
    const l = `${p}.encoder.layers.${i}`
    const n1 = layerNorm(b, x, layer.layerNorm1, `${l}.layer_norm1`, v.layerNormEps)
    const heads4 = (y: string): string => b.op('Transpose', [b.op('Reshape', [y, split])], { perm: [0, 2, 1, 3] })
    const q = heads4(b.op('Mul', [linear(b, n1, layer.qProj, `${l}.self_attn.q_proj`), scale]))
    const k = heads4(linear(b, n1, layer.kProj, `${l}.self_attn.k_proj`))
    const val = heads4(linear(b, n1, layer.vProj, `${l}.self_attn.v_proj`))
    const probs = b.op('Softmax', [b.op('MatMul', [q, b.op('Transpose', [k], { perm: [0, 1, 3, 2] })])], { axis: -1 })
    const context = b.op('Reshape', [b.op('Transpose', [b.op('MatMul', [probs, val])], { perm: [0, 2, 1, 3] }), merge])
    x = b.op('Add', [x, linear(b, context, layer.outProj, `${l}.self_attn.out_proj`)])
    const f = linear(b, layerNorm(b, x, layer.layerNorm2, `${l}.layer_norm2`, v.layerNormEps), layer.fc1, `${l}.mlp.fc1`)
    const quickGelu = b.op('Mul', [f, b.op('Sigmoid', [b.op('Mul', [f, b.floatScalar(1.702)])])])
    x = b.op('Add', [x, linear(b, quickGelu, layer.fc2, `${l}.mlp.fc2`)])
  })

  // vision_feature_select_strategy "default": drop the class position.
  const selected = b.op('Slice', [x, b.int64s([1]), b.int64s([side * side + 1]), b.int64s([1])])
  const y = linear(b, selected, w.projector1, 'multi_modal_projector.linear_1')
  const erf = b.op('Erf', [b.op('Div', [y, b.floatScalar(Math.SQRT2)])])
  const gelu = b.op('Mul', [b.op('Mul', [y, b.op('Add', [erf, b.floatScalar(1)])]), b.floatScalar(0.5)])
  b.op('Identity', [linear(b, gelu, w.projector2, 'multi_modal_projector.linear_2')], undefined, LLAVA_IO.imageFeatures)
  b.op('Identity', [b.tensor('image_newline.weight', [t], w.imageNewline)], undefined, LLAVA_IO.imageNewline)
  return b.encode('llava_next_vision_encoder_fp32', `LLaVA-NeXT-shaped vision encoder + projector (CLIP-like, ${v.numHiddenLayers} layers, hidden ${h}, ${v.imageSize}px tiles of ${v.patchSize}px patches), seeded random weights (seed ${w.seed}), fp32`)
}

export function buildEmbedTokensOnnx (w: LlavaWeights): Uint8Array {
  const s = w.shape.text
  const b = new GraphBuilder()
  const ids = b.input(LLAVA_IO.inputIds, DT.INT64, [BATCH, 'sequence_length'])
  b.output(LLAVA_IO.inputsEmbeds, DT.FLOAT, [BATCH, 'sequence_length', s.hiddenSize])
  b.op('Gather', [b.tensor('model.embed_tokens.weight', [s.vocabSize, s.hiddenSize], w.text.embedTokens), ids], undefined, LLAVA_IO.inputsEmbeds)
  return b.encode('llava_next_embed_tokens_fp32', `token embeddings of the LLaVA-NeXT-shaped model (vocab ${s.vocabSize}, hidden ${s.hiddenSize}), seeded random weights (seed ${w.seed}), fp32`)
}
