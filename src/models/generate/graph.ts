/**
 * The ONNX graph of a BERT encoder (post-LN, erf GELU, additive attention
 * mask), in fp32, dynamically quantized ('q8', the graph onnxruntime's
 * quantize_dynamic writes: per-tensor int8 weights behind
 * DynamicQuantizeLinear → MatMulInteger → Cast → Mul by both scales, which
 * ORT fuses into DynamicQuantizeMatMul), or statically quantized ('int8':
 * the same int8 weights, with each activation quantized by QuantizeLinear
 * with a fixed scale and zero point from activation-ranges.ts instead of
 * DynamicQuantizeLinear). Both read uint8 embedding tables through
 * Gather → DequantizeLinear.
 *
 * Dynamic quantization takes the activation scale from the min/max of the
 * whole batch tensor, so a text's vector depends on its batch-mates; the
 * static graph's arithmetic per token does not (integer accumulation is
 * exact), so it is as batch-independent as fp32.
 */
import { DT, GraphBuilder } from './onnx-builder.ts'
import type { BertWeights, LayerNorm, Linear } from './weights.ts'
import { quantizeInt8, quantizeUint8 } from './quantize.ts'
import type { ActivationQuant } from './activation-ranges.ts'
import { activationRanges } from './activation-ranges.ts'

export type GraphDtype = 'fp32' | 'q8' | 'int8'

/** What HF adds to masked-out attention scores (torch.finfo(float32).min). */
export const MASK_VALUE = -3.4028234663852886e38

const BATCH = 'batch_size'
const SEQ = 'sequence_length'

interface Ops {
  b: GraphBuilder
  /** x @ W + bias; `act` is x's fixed quantization (the static graph needs it). */
  linear(x: string, lin: Linear, name: string, act?: ActivationQuant): string
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

/** An activation quantized to uint8: the quantized value, its scale and its zero point. */
type QuantizedActivation = [string, string, string]

/**
 * int8 weights × a uint8 activation: MatMulInteger → Cast → Mul by both
 * scales → Add bias. MLAS has a u8 x s8 kernel (AVX2, AVX-512 VNNI); u8 x u8
 * weights ran no faster than fp32 here.
 */
function quantizedLinear (b: GraphBuilder, quantize: () => QuantizedActivation, lin: Linear, name: string): string {
  const q = quantizeInt8(lin.weight)
  const w = b.tensor(`${name}.weight_quantized`, [lin.inDim, lin.outDim], q.values)
  const wZero = b.tensor(`${name}.weight_zero_point`, [], new Int8Array([0]))
  const bias = b.tensor(`${name}.bias`, [lin.outDim], lin.bias)
  // Added after the weights, so the q8 graph's bytes (and CID) stay what they were.
  const xq = quantize()
  const acc = b.op('MatMulInteger', [xq[0], w, xq[2], wZero])
  const scale = b.op('Mul', [xq[1], b.tensor(`${name}.weight_scale`, [], new Float32Array([q.scale]))])
  const y = b.op('Mul', [b.op('Cast', [acc], { to: DT.FLOAT }), scale])
  return b.op('Add', [y, bias])
}

/** Embedding tables as uint8, dequantized after the lookup: only the rows used are touched. */
function quantizedGather (b: GraphBuilder, table: Float32Array, dims: number[], ids: string, name: string): string {
  const q = quantizeUint8(table)
  const t = b.tensor(`${name}_quantized`, dims, q.values)
  const zero = b.tensor(`${name}_zero_point`, [], new Uint8Array([q.zeroPoint]))
  return b.op('DequantizeLinear', [b.op('Gather', [t, ids]), b.tensor(`${name}_scale`, [], new Float32Array([q.scale])), zero])
}

function q8Ops (b: GraphBuilder): Ops {
  return {
    b,
    linear: (x, lin, name) => quantizedLinear(b, () => b.node('DynamicQuantizeLinear', [x], { nOutputs: 3 }) as QuantizedActivation, lin, name),
    gather: (table, dims, ids, name) => quantizedGather(b, table, dims, ids, name)
  }
}

/** Static quantization: each activation by QuantizeLinear with its fixed scale and zero point (quantized once per tensor). */
function int8Ops (b: GraphBuilder): Ops {
  const quantized = new Map<string, QuantizedActivation>()
  return {
    b,
    linear: (x, lin, name, act) => {
      if (act === undefined) throw new RangeError(`static int8 graph: no activation range for the input of ${name}`)
      return quantizedLinear(b, () => {
        let xq = quantized.get(x)
        if (xq === undefined) {
          const scale = b.tensor(`${name}.input_scale`, [], new Float32Array([act.scale]))
          const zero = b.tensor(`${name}.input_zero_point`, [], new Uint8Array([act.zeroPoint]))
          xq = [b.op('QuantizeLinear', [x, scale, zero]), scale, zero]
          quantized.set(x, xq)
        }
        return xq
      }, lin, name)
    },
    gather: (table, dims, ids, name) => quantizedGather(b, table, dims, ids, name)
  }
}

const OPS: Readonly<Record<GraphDtype, (b: GraphBuilder) => Ops>> = Object.freeze({ fp32: fp32Ops, q8: q8Ops, int8: int8Ops })

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
  const o = OPS[dtype](b)
  const ranges = dtype === 'int8' ? activationRanges(w) : undefined

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
    const act = ranges?.[i]
    const q = b.op('Transpose', [b.op('Reshape', [o.linear(x, layer.query, `${p}.attention.self.query`, act?.qkv), splitHeads])], { perm: [0, 2, 1, 3] })
    const k = b.op('Transpose', [b.op('Reshape', [o.linear(x, layer.key, `${p}.attention.self.key`, act?.qkv), splitHeads])], { perm: [0, 2, 3, 1] })
    const v = b.op('Transpose', [b.op('Reshape', [o.linear(x, layer.value, `${p}.attention.self.value`, act?.qkv), splitHeads])], { perm: [0, 2, 1, 3] })
    const scores = b.op('Add', [b.op('Div', [b.op('MatMul', [q, k]), b.floatScalar(Math.sqrt(headDim))]), maskBias])
    const probs = b.op('Softmax', [scores], { axis: -1 })
    const context = b.op('Reshape', [b.op('Transpose', [b.op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] }), mergeHeads])
    const attnOut = o.linear(context, layer.attentionOutput, `${p}.attention.output.dense`, act?.context)
    const x1 = layerNorm(o, b.op('Add', [attnOut, x]), layer.attentionLayerNorm, `${p}.attention.output.LayerNorm`, h, s.layerNormEps)
    // FFN with erf GELU: 0.5 · f · (1 + erf(f / √2)).
    const f = o.linear(x1, layer.intermediate, `${p}.intermediate.dense`, act?.intermediate)
    const erf = b.op('Erf', [b.op('Div', [f, b.floatScalar(Math.SQRT2)])])
    const gelu = b.op('Mul', [b.op('Mul', [f, b.op('Add', [erf, b.floatScalar(1)])]), b.floatScalar(0.5)])
    const ffnOut = o.linear(gelu, layer.output, `${p}.output.dense`, act?.output)
    x = layerNorm(o, b.op('Add', [ffnOut, x1]), layer.outputLayerNorm, `${p}.output.LayerNorm`, h, s.layerNormEps, last ? 'last_hidden_state' : undefined)
  })
  return b.encode(`bert_${dtype}`, `BERT encoder, ${s.numHiddenLayers} layers, hidden ${h}, seeded random weights (seed ${w.seed}), ${dtype}`)
}
