/**
 * The ONNX graph of a BERT encoder (post-LN, erf GELU, additive attention
 * mask), in fp32 or dynamically quantized ('q8', the graph onnxruntime's
 * quantize_dynamic writes): per-tensor int8 weights behind
 * DynamicQuantizeLinear → MatMulInteger → Cast → Mul by both scales (ORT fuses
 * these into DynamicQuantizeMatMul), and uint8 embedding tables read by
 * Gather → DequantizeLinear.
 */
import { DT, GraphBuilder } from './onnx-builder.ts'
import type { BertWeights, LayerNorm, Linear } from './weights.ts'
import { quantizeInt8, quantizeUint8 } from './quantize.ts'

export type GraphDtype = 'fp32' | 'q8'

/** What HF adds to masked-out attention scores (torch.finfo(float32).min). */
export const MASK_VALUE = -3.4028234663852886e38

const BATCH = 'batch_size'
const SEQ = 'sequence_length'

interface Ops {
  b: GraphBuilder
  /** x @ W + bias */
  linear(x: string, lin: Linear, name: string): string
  /** rows of a [rows, hidden] table */
  gather(table: Float32Array, dims: number[], ids: string, name: string): string
}

function fp32Ops (b: GraphBuilder): Ops {
  return {
    b,
    linear: (x, lin, name) => {
      const w = b.tensor(`${name}.weight`, [lin.inDim, lin.outDim], lin.weight)
      const bias = b.tensor(`${name}.bias`, [lin.outDim], lin.bias)
      return b.op('Add', [b.op('MatMul', [x, w]), bias])
    },
    gather: (table, dims, ids, name) => b.op('Gather', [b.tensor(name, dims, table), ids])
  }
}

function q8Ops (b: GraphBuilder): Ops {
  const scalar = (name: string, scale: number): string => b.tensor(`${name}_scale`, [], new Float32Array([scale]))
  return {
    b,
    linear: (x, lin, name) => {
      // int8 weights: MLAS has a u8 x s8 kernel (AVX2, AVX-512 VNNI); u8 x u8 weights ran no faster than fp32 here.
      const q = quantizeInt8(lin.weight)
      const w = b.tensor(`${name}.weight_quantized`, [lin.inDim, lin.outDim], q.values)
      const wZero = b.tensor(`${name}.weight_zero_point`, [], new Int8Array([0]))
      const bias = b.tensor(`${name}.bias`, [lin.outDim], lin.bias)
      const [xq, xScale, xZero] = b.node('DynamicQuantizeLinear', [x], { nOutputs: 3 }) as [string, string, string]
      const acc = b.op('MatMulInteger', [xq, w, xZero, wZero])
      const scale = b.op('Mul', [xScale, scalar(`${name}.weight`, q.scale)])
      const y = b.op('Mul', [b.op('Cast', [acc], { to: DT.FLOAT }), scale])
      return b.op('Add', [y, bias])
    },
    gather: (table, dims, ids, name) => {
      // uint8 tables, dequantized after the lookup: only the rows used are touched.
      const q = quantizeUint8(table)
      const t = b.tensor(`${name}_quantized`, dims, q.values)
      const zero = b.tensor(`${name}_zero_point`, [], new Uint8Array([q.zeroPoint]))
      return b.op('DequantizeLinear', [b.op('Gather', [t, ids]), scalar(name, q.scale), zero])
    }
  }
}

function layerNorm (o: Ops, x: string, ln: LayerNorm, name: string, dim: number, eps: number, output?: string): string {
  const g = o.b.tensor(`${name}.weight`, [dim], ln.gamma)
  const beta = o.b.tensor(`${name}.bias`, [dim], ln.beta)
  return o.b.op('LayerNormalization', [x, g, beta], { axis: -1, epsilon: { float: eps } }, output)
}

/** Build and encode the encoder graph from its weights. */
export function buildBertOnnx (w: BertWeights, dtype: GraphDtype = 'fp32'): Uint8Array {
  const s = w.shape
  const h = s.hiddenSize
  const heads = s.numAttentionHeads
  const headDim = h / heads
  const b = new GraphBuilder()
  const o = dtype === 'q8' ? q8Ops(b) : fp32Ops(b)

  const inputIds = b.input('input_ids', DT.INT64, [BATCH, SEQ])
  const attentionMask = b.input('attention_mask', DT.INT64, [BATCH, SEQ])
  const tokenTypeIds = b.input('token_type_ids', DT.INT64, [BATCH, SEQ])
  b.output('last_hidden_state', DT.FLOAT, [BATCH, SEQ, h])

  // Embeddings: word + position + token type, then LayerNorm.
  const word = o.gather(w.wordEmbeddings, [s.vocabSize, h], inputIds, 'embeddings.word_embeddings.weight')
  const tokenType = o.gather(w.tokenTypeEmbeddings, [s.typeVocabSize, h], tokenTypeIds, 'embeddings.token_type_embeddings.weight')
  const seqLen = b.op('Shape', [inputIds], { start: 1, end: 2 })
  const posTable = b.tensor('embeddings.position_embeddings.weight', [s.maxPositionEmbeddings, h], w.positionEmbeddings)
  const positions = b.op('Slice', [posTable, b.int64s([0]), seqLen, b.int64s([0])])
  const summed = b.op('Add', [b.op('Add', [word, tokenType]), positions])
  let x = layerNorm(o, summed, w.embeddingLayerNorm, 'embeddings.LayerNorm', h, s.layerNormEps)

  // Additive mask [batch, 1, 1, seq]: 0 where attended, MASK_VALUE where padded.
  const maskF = b.op('Cast', [attentionMask], { to: DT.FLOAT })
  const inverted = b.op('Sub', [b.floatScalar(1), maskF])
  const maskBias = b.op('Unsqueeze', [b.op('Mul', [inverted, b.floatScalar(MASK_VALUE)]), b.int64s([1, 2])])

  const splitHeads = b.int64s([0, 0, heads, headDim])
  const mergeHeads = b.int64s([0, 0, h])
  w.layers.forEach((layer, i) => {
    const p = `encoder.layer.${i}`
    const last = i === w.layers.length - 1
    const q = b.op('Transpose', [b.op('Reshape', [o.linear(x, layer.query, `${p}.attention.self.query`), splitHeads])], { perm: [0, 2, 1, 3] })
    const k = b.op('Transpose', [b.op('Reshape', [o.linear(x, layer.key, `${p}.attention.self.key`), splitHeads])], { perm: [0, 2, 3, 1] })
    const v = b.op('Transpose', [b.op('Reshape', [o.linear(x, layer.value, `${p}.attention.self.value`), splitHeads])], { perm: [0, 2, 1, 3] })
    const scores = b.op('Add', [b.op('Div', [b.op('MatMul', [q, k]), b.floatScalar(Math.sqrt(headDim))]), maskBias])
    const probs = b.op('Softmax', [scores], { axis: -1 })
    const context = b.op('Reshape', [b.op('Transpose', [b.op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] }), mergeHeads])
    const attnOut = o.linear(context, layer.attentionOutput, `${p}.attention.output.dense`)
    const x1 = layerNorm(o, b.op('Add', [attnOut, x]), layer.attentionLayerNorm, `${p}.attention.output.LayerNorm`, h, s.layerNormEps)
    // FFN with erf GELU: 0.5 · f · (1 + erf(f / √2)).
    const f = o.linear(x1, layer.intermediate, `${p}.intermediate.dense`)
    const erf = b.op('Erf', [b.op('Div', [f, b.floatScalar(Math.SQRT2)])])
    const gelu = b.op('Mul', [b.op('Mul', [f, b.op('Add', [erf, b.floatScalar(1)])]), b.floatScalar(0.5)])
    const ffnOut = o.linear(gelu, layer.output, `${p}.output.dense`)
    x = layerNorm(o, b.op('Add', [ffnOut, x1]), layer.outputLayerNorm, `${p}.output.LayerNorm`, h, s.layerNormEps, last ? 'last_hidden_state' : undefined)
  })
  return b.encode(`bert_${dtype}`, `BERT encoder, ${s.numHiddenLayers} layers, hidden ${h}, seeded random weights (seed ${w.seed}), ${dtype}`)
}
