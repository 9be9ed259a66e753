/**
 * The ONNX graph of a small DETR-shaped detector (fp32), in the form
 * transformers.js loads with AutoModelForObjectDetection and the detr
 * skillset runs directly:
 *
 *   inputs   pixel_values  float32 [batch_size, 3, height, width]  (normalised, padded bottom/right with 0)
 *            pixel_mask    int64   [batch_size, height, width]     (1 on real pixels, 0 on padding; a
 *                                                                    mask of another size is resized to the image's, nearest)
 *   outputs  logits        float32 [batch_size, queries, labels + 1]  (the last class is "no object")
 *            pred_boxes    float32 [batch_size, queries, 4]           (sigmoid: cx, cy, w, h in 0..1)
 *
 * The computation, which test/helpers/detr-reference.ts repeats in float64:
 *
 * 1. Backbone: 3×3 convolutions of stride 2 (pads 1) + ReLU. After each,
 *    the mask is taken at every second row and column (DETR's nearest
 *    downsampling of pixel_mask: position i covers pixel 2i) and multiplies
 *    the features, so a padded position is exactly 0, which is what the
 *    convolution's own zero padding gives the image alone. The real
 *    positions of an image therefore see the same numbers whatever padding
 *    a batch adds below and to the right of it.
 * 2. Projection of the features to dModel (a 1×1 convolution, here a
 *    MatMul over the flattened positions) → memory [batch, h·w, dModel].
 * 3. DETR's sine position embedding, computed from the downsampled mask:
 *    y = cumsum of the mask down the rows, x = along the columns, each
 *    divided by its largest value (the image's real extent) + 1e-6 and
 *    times 2π; channel k of each half is sin (even k) or cos (odd k) of
 *    y (first half) or x (second half) / T^(2⌊k/2⌋/(dModel/2)). Positions
 *    are fractions of the real image, so padding does not move them.
 * 4. Decoder layers: the learned queries (query_position_embeddings, added
 *    to the hidden state, which starts at zero) attend to memory + position
 *    (keys) and memory (values); multi-head, scaled dot products, padded
 *    positions get the lowest float32 before the softmax; output
 *    projection, residual, LayerNorm; then ReLU FFN, residual, LayerNorm.
 * 5. Heads: a linear layer to the class logits; a 2-layer ReLU MLP and a
 *    sigmoid to the box. The box is relative to the real image, whose
 *    extent the positions (3.) carry.
 */
import { DT, GraphBuilder } from '../onnx-builder.ts'
import { MASK_VALUE } from '../graph.ts'
import type { DetrLayerNorm, DetrLinear, DetrWeights } from './weights.ts'

const BATCH = 'batch_size'

/** Input and output names, as transformers.js names them for DETR. */
export const DETR_IO = Object.freeze({ pixelValues: 'pixel_values', pixelMask: 'pixel_mask', logits: 'logits', boxes: 'pred_boxes' })

/** Added to the cumulative sums before dividing by the real extent (HF's eps). */
export const POSITION_EPS = 1e-6

function linear (b: GraphBuilder, x: string, l: DetrLinear, name: string): string {
  return b.op('Add', [b.op('MatMul', [x, b.tensor(`${name}.weight`, [l.inDim, l.outDim], l.weight)]), b.tensor(`${name}.bias`, [l.outDim], l.bias)])
}

function layerNorm (b: GraphBuilder, x: string, n: DetrLayerNorm, name: string, eps: number): string {
  return b.op('LayerNormalization', [x, b.tensor(`${name}.weight`, [n.weight.length], n.weight), b.tensor(`${name}.bias`, [n.bias.length], n.bias)], { axis: -1, epsilon: { float: eps } })
}

/** 1 / T^(2⌊k/2⌋/half) and the phase that makes sin into cos on odd k, for k < half. */
export function positionTables (dModel: number, temperature: number): { invFreq: Float32Array, phase: Float32Array } {
  const half = dModel / 2
  const invFreq = Float32Array.from({ length: half }, (_, k) => 1 / Math.pow(temperature, (2 * Math.floor(k / 2)) / half))
  const phase = Float32Array.from({ length: half }, (_, k) => k % 2 === 1 ? Math.PI / 2 : 0)
  return { invFreq, phase }
}

/** Build and encode the detector's graph from its weights (fp32). */
export function buildDetrOnnx (w: DetrWeights): Uint8Array {
  const s = w.shape
  const d = s.dModel
  const heads = s.numHeads
  const hd = d / heads
  const classes = w.numLabels + 1
  const b = new GraphBuilder()

  const pixels = b.input(DETR_IO.pixelValues, DT.FLOAT, [BATCH, 3, 'height', 'width'])
  const pixelMask = b.input(DETR_IO.pixelMask, DT.INT64, [BATCH, 'height', 'width'])
  b.output(DETR_IO.logits, DT.FLOAT, [BATCH, s.numQueries, classes])
  b.output(DETR_IO.boxes, DT.FLOAT, [BATCH, s.numQueries, 4])

  // 1. Backbone, with the mask downsampled alongside: [batch, 1, h, w] floats. A mask of the
  // image's size passes Resize unchanged (nearest, same size); transformers.js's own
  // DetrImageProcessor sends a 64×64 mask of ones, which becomes ones of the image's size.
  const mask4 = b.op('Unsqueeze', [b.op('Cast', [pixelMask], { to: DT.FLOAT }), b.int64s([1])])
  const maskSize = b.op('Concat', [b.op('Shape', [mask4], { start: 0, end: 2 }), b.op('Shape', [pixels], { start: 2, end: 4 })], { axis: 0 })
  let mask = b.op('Resize', [mask4, '', '', maskSize])
  const everySecond = [b.int64s([0, 0]), b.int64s([2147483647, 2147483647]), b.int64s([2, 3]), b.int64s([2, 2])]
  let x = pixels
  w.backbone.forEach((conv, i) => {
    const weight = b.tensor(`backbone.conv${i}.weight`, [conv.outChannels, conv.inChannels, 3, 3], conv.weight)
    const bias = b.tensor(`backbone.conv${i}.bias`, [conv.outChannels], conv.bias)
    mask = b.op('Slice', [mask, ...everySecond])
    x = b.op('Mul', [b.op('Relu', [b.op('Conv', [x, weight, bias], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] })]), mask])
  })

  // 2. Projection: [batch, c, h, w] → [batch, h·w, c] → [batch, h·w, d].
  const cLast = w.projection.inDim
  const flat = b.op('Transpose', [b.op('Reshape', [x, b.int64s([0, cLast, -1])])], { perm: [0, 2, 1] })
  const memory = linear(b, flat, w.projection, 'input_projection')

  // 3. Sine position embedding from the downsampled mask.
  const m3 = b.op('Squeeze', [mask, b.int64s([1])])
  const { invFreq, phase } = positionTables(d, s.positionTemperature)
  const invFreqT = b.tensor('position.inv_freq', [d / 2], invFreq)
  const phaseT = b.tensor('position.phase', [d / 2], phase)
  const axisScalar = (a: number): string => b.tensor(`const_axis_${a}`, [], new BigInt64Array([BigInt(a)]))
  const embed = (axis: number): string => {
    const cum = b.op('CumSum', [m3, axisScalar(axis)])
    const extent = b.op('Add', [b.op('ReduceMax', [cum], { axes: [axis], keepdims: 1 }), b.floatScalar(POSITION_EPS)])
    const norm = b.op('Mul', [b.op('Div', [cum, extent]), b.floatScalar(2 * Math.PI)])
    return b.op('Sin', [b.op('Add', [b.op('Mul', [b.op('Unsqueeze', [norm, b.int64s([-1])]), invFreqT]), phaseT])])
  }
  const pos = b.op('Reshape', [b.op('Concat', [embed(1), embed(2)], { axis: -1 }), b.int64s([0, -1, d])])
  const keysIn = b.op('Add', [memory, pos])
  const keyMask = b.op('Cast', [b.op('Reshape', [mask, b.int64s([0, 1, 1, -1])])], { to: DT.BOOL })

  // 4. Decoder layers.
  const queries = b.tensor('query_position_embeddings.weight', [1, s.numQueries, d], w.queries)
  const splitHeads = b.int64s([0, 0, heads, hd])
  const merge = b.int64s([0, 0, d])
  const scale = b.floatScalar(1 / Math.sqrt(hd))
  const masked = b.floatScalar(MASK_VALUE)
  let hidden: string | undefined
  w.layers.forEach((layer, i) => {
    const p = `decoder.layers.${i}`
    const qIn = hidden === undefined ? queries : b.op('Add', [hidden, queries])
    const q = b.op('Transpose', [b.op('Reshape', [linear(b, qIn, layer.q, `${p}.cross_attn.q_proj`), splitHeads])], { perm: [0, 2, 1, 3] })
    const kT = b.op('Transpose', [b.op('Reshape', [linear(b, keysIn, layer.k, `${p}.cross_attn.k_proj`), splitHeads])], { perm: [0, 2, 3, 1] })
    const v = b.op('Transpose', [b.op('Reshape', [linear(b, memory, layer.v, `${p}.cross_attn.v_proj`), splitHeads])], { perm: [0, 2, 1, 3] })
    const scores = b.op('Where', [keyMask, b.op('MatMul', [b.op('Mul', [q, scale]), kT]), masked])
    const context = b.op('MatMul', [b.op('Softmax', [scores], { axis: -1 }), v])
    const merged = b.op('Reshape', [b.op('Transpose', [context], { perm: [0, 2, 1, 3] }), merge])
    const attn = linear(b, merged, layer.o, `${p}.cross_attn.out_proj`)
    const h1 = layerNorm(b, hidden === undefined ? attn : b.op('Add', [hidden, attn]), layer.attnNorm, `${p}.cross_attn_layer_norm`, s.layerNormEps)
    const ffn = linear(b, b.op('Relu', [linear(b, h1, layer.fc1, `${p}.fc1`)]), layer.fc2, `${p}.fc2`)
    hidden = layerNorm(b, b.op('Add', [h1, ffn]), layer.ffnNorm, `${p}.final_layer_norm`, s.layerNormEps)
  })
  if (hidden === undefined) throw new RangeError('a detector needs at least one decoder layer')

  // 5. Heads.
  b.op('Add', [b.op('MatMul', [hidden, b.tensor('class_labels_classifier.weight', [d, classes], w.classHead.weight)]), b.tensor('class_labels_classifier.bias', [classes], w.classHead.bias)], undefined, DETR_IO.logits)
  const boxHidden = b.op('Relu', [linear(b, hidden, w.boxHidden, 'bbox_predictor.layers.0')])
  b.op('Sigmoid', [linear(b, boxHidden, w.boxOut, 'bbox_predictor.layers.1')], undefined, DETR_IO.boxes)

  return b.encode('detr_fp32', `DETR-shaped detector: ${w.backbone.length} stride-2 convolutions, d_model ${d}, ${heads} heads, ${w.layers.length} decoder layers, ${s.numQueries} queries, ${w.numLabels} labels + no object; seeded random weights (seed ${w.seed}), fp32`)
}
