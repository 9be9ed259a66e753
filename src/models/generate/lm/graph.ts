/**
 * The ONNX graph of a Qwen2-shaped decoder with a KV cache, in the form
 * transformers.js runs as a merged decoder (one session, `onnx/model.onnx`):
 *
 *   inputs   input_ids       int64 [batch_size, sequence_length]
 *            (or inputs_embeds float32 [batch_size, sequence_length, hidden]: LmGraphOptions.inputsEmbeds)
 *            attention_mask  int64 [batch_size, total_sequence_length]  (past + current; 1 = attend)
 *            position_ids    int64 [batch_size, sequence_length]
 *            past_key_values.N.key/value  float32 [batch_size, kv_heads, past_sequence_length, head_dim]
 *   outputs  logits          float32 [batch_size, sequence_length, vocab]
 *            present.N.key/value  float32 [batch_size, kv_heads, total_sequence_length, head_dim]
 *
 * The batch dimension is named `batch_size` and the head counts are numbers:
 * transformers.js builds the empty first-step cache from this metadata
 * (every other named dimension becomes 0). Keys are cached after RoPE.
 *
 * Query i of the current chunk (absolute position past + i) sees key j when
 * j ≤ past + i and attention_mask[b, j] = 1. A masked score is replaced by
 * the lowest float32 (not -inf): a row with nothing to see (a left-padding
 * position) becomes a uniform average instead of NaN, and no real row is
 * affected by it.
 */
import { DT, GraphBuilder } from '../onnx-builder.ts'
import { MASK_VALUE } from '../graph.ts'
import type { LmLinear, LmWeights } from './weights.ts'

const BATCH = 'batch_size'
const SEQ = 'sequence_length'
const PAST = 'past_sequence_length'
const TOTAL = 'total_sequence_length'

/** Input and output names, as transformers.js expects them. */
export const LM_IO = Object.freeze({
  inputIds: 'input_ids',
  /** The decoder of a vision-language model takes embeddings instead of ids (llava: `decoder_model_merged.onnx`). */
  inputsEmbeds: 'inputs_embeds',
  attentionMask: 'attention_mask',
  positionIds: 'position_ids',
  logits: 'logits',
  pastKey: (i: number): string => `past_key_values.${i}.key`,
  pastValue: (i: number): string => `past_key_values.${i}.value`,
  presentKey: (i: number): string => `present.${i}.key`,
  presentValue: (i: number): string => `present.${i}.value`
})

function linear (b: GraphBuilder, x: string, l: LmLinear, name: string): string {
  const y = b.op('MatMul', [x, b.tensor(`${name}.weight`, [l.inDim, l.outDim], l.weight)])
  return l.bias === undefined ? y : b.op('Add', [y, b.tensor(`${name}.bias`, [l.outDim], l.bias)])
}

/** x / sqrt(mean(x²) + eps) · weight, over the last axis. */
function rmsNorm (b: GraphBuilder, x: string, weight: Float32Array, name: string, eps: number): string {
  const meanSquare = b.op('ReduceMean', [b.op('Mul', [x, x])], { axes: [-1], keepdims: 1 })
  const rms = b.op('Sqrt', [b.op('Add', [meanSquare, b.floatScalar(eps)])])
  return b.op('Mul', [b.op('Div', [x, rms]), b.tensor(`${name}.weight`, [weight.length], weight)])
}

/** HF's rotate_half: concat(-x[..., d/2:], x[..., :d/2]). */
function rotateHalf (b: GraphBuilder, x: string, headDim: number): string {
  const half = headDim / 2
  const x1 = b.op('Slice', [x, b.int64s([0]), b.int64s([half]), b.int64s([-1])])
  const x2 = b.op('Slice', [x, b.int64s([half]), b.int64s([headDim]), b.int64s([-1])])
  return b.op('Concat', [b.op('Neg', [x2]), x1], { axis: -1 })
}

const rope = (b: GraphBuilder, x: string, cos: string, sin: string, headDim: number): string =>
  b.op('Add', [b.op('Mul', [x, cos]), b.op('Mul', [rotateHalf(b, x, headDim), sin])])

/** inv_freq[i] = theta^(-2i/d), rounded to float32 as HF computes it. */
function inverseFrequencies (theta: number, headDim: number): Float32Array {
  return Float32Array.from({ length: headDim / 2 }, (_, i) => 1 / Math.pow(theta, (2 * i) / headDim))
}

export interface LmGraphOptions {
  /**
   * Take `inputs_embeds` float32 [batch_size, sequence_length, hidden]
   * instead of `input_ids`, and leave the embedding table out (a
   * vision-language model's decoder; its ids go through embed_tokens.onnx).
   */
  inputsEmbeds?: boolean
  graphName?: string
  description?: string
}

/** Build and encode the decoder graph from its weights (fp32). */
export function buildLmOnnx (w: LmWeights, options: LmGraphOptions = {}): Uint8Array {
  const s = w.shape
  const h = s.hiddenSize
  const d = s.headDim
  const heads = s.numAttentionHeads
  const kvHeads = s.numKeyValueHeads
  const group = heads / kvHeads
  const b = new GraphBuilder()

  const embeds = options.inputsEmbeds === true
  // `tokens`: the ids, or the embeddings; the sequence length and the logits' leading dims come from it.
  const tokens = embeds ? b.input(LM_IO.inputsEmbeds, DT.FLOAT, [BATCH, SEQ, h]) : b.input(LM_IO.inputIds, DT.INT64, [BATCH, SEQ])
  const attentionMask = b.input(LM_IO.attentionMask, DT.INT64, [BATCH, TOTAL])
  const positionIds = b.input(LM_IO.positionIds, DT.INT64, [BATCH, SEQ])
  for (let i = 0; i < s.numHiddenLayers; i++) {
    b.input(LM_IO.pastKey(i), DT.FLOAT, [BATCH, kvHeads, PAST, d])
    b.input(LM_IO.pastValue(i), DT.FLOAT, [BATCH, kvHeads, PAST, d])
  }
  b.output(LM_IO.logits, DT.FLOAT, [BATCH, SEQ, s.vocabSize])
  for (let i = 0; i < s.numHiddenLayers; i++) {
    b.output(LM_IO.presentKey(i), DT.FLOAT, [BATCH, kvHeads, TOTAL, d])
    b.output(LM_IO.presentValue(i), DT.FLOAT, [BATCH, kvHeads, TOTAL, d])
  }

  const embedTable = (): string => b.tensor('model.embed_tokens.weight', [s.vocabSize, h], w.embedTokens)
  const embed = embeds ? undefined : embedTable()
  let x = embed === undefined ? tokens : b.op('Gather', [embed, tokens])

  // RoPE tables from position_ids: cos, sin [batch, 1, seq, head_dim].
  const angles = b.op('Mul', [b.op('Unsqueeze', [b.op('Cast', [positionIds], { to: DT.FLOAT }), b.int64s([2])]), b.tensor('rope.inv_freq', [d / 2], inverseFrequencies(s.ropeTheta, d))])
  const freqs = b.op('Concat', [angles, angles], { axis: -1 })
  const cos = b.op('Unsqueeze', [b.op('Cos', [freqs]), b.int64s([1])])
  const sin = b.op('Unsqueeze', [b.op('Sin', [freqs]), b.int64s([1])])

  // What each query may see: [batch, 1, 1, seq, total], broadcast over kv heads and the group.
  const scalar = (shape: string): string => b.op('Squeeze', [shape, b.int64s([0])])
  const seqLen = scalar(b.op('Shape', [tokens], { start: 1, end: 2 }))
  const totalLen = scalar(b.op('Shape', [attentionMask], { start: 1, end: 2 }))
  const one = b.tensor('const_i_one', [], new BigInt64Array([1n]))
  const zero = b.tensor('const_i_zero', [], new BigInt64Array([0n]))
  const keyPositions = b.op('Unsqueeze', [b.op('Range', [zero, totalLen, one]), b.int64s([0])])
  const queryPositions = b.op('Unsqueeze', [b.op('Range', [b.op('Sub', [totalLen, seqLen]), totalLen, one]), b.int64s([1])])
  const causal = b.op('LessOrEqual', [keyPositions, queryPositions])
  const attended = b.op('Unsqueeze', [b.op('Cast', [attentionMask], { to: DT.BOOL }), b.int64s([1, 2, 3])])
  const allowed = b.op('And', [causal, attended])
  const masked = b.floatScalar(MASK_VALUE)
  const scale = b.floatScalar(1 / Math.sqrt(d))

  const splitQ = b.int64s([0, 0, heads, d])
  const splitKv = b.int64s([0, 0, kvHeads, d])
  const groupQ = b.int64s([0, kvHeads, group, -1, d])
  const ungroup = b.int64s([0, heads, -1, d])
  const merge = b.int64s([0, 0, heads * d])
  w.layers.forEach((layer, i) => {
    const p = `model.layers.${i}`
    const hIn = rmsNorm(b, x, layer.inputLayerNorm, `${p}.input_layernorm`, s.rmsNormEps)
    const heads4 = (y: string, split: string): string => b.op('Transpose', [b.op('Reshape', [y, split])], { perm: [0, 2, 1, 3] })
    const q = rope(b, heads4(linear(b, hIn, layer.qProj, `${p}.self_attn.q_proj`), splitQ), cos, sin, d)
    const k = rope(b, heads4(linear(b, hIn, layer.kProj, `${p}.self_attn.k_proj`), splitKv), cos, sin, d)
    const v = heads4(linear(b, hIn, layer.vProj, `${p}.self_attn.v_proj`), splitKv)
    const keys = b.op('Concat', [LM_IO.pastKey(i), k], { axis: 2 }, LM_IO.presentKey(i))
    const values = b.op('Concat', [LM_IO.pastValue(i), v], { axis: 2 }, LM_IO.presentValue(i))
    // Grouped-query attention: query head kv·group + j reads key/value head kv.
    const q5 = b.op('Reshape', [b.op('Mul', [q, scale]), groupQ])
    const keysT = b.op('Transpose', [b.op('Unsqueeze', [keys, b.int64s([2])])], { perm: [0, 1, 2, 4, 3] })
    const scores = b.op('Where', [allowed, b.op('MatMul', [q5, keysT]), masked])
    const probs = b.op('Softmax', [scores], { axis: -1 })
    const context = b.op('MatMul', [probs, b.op('Unsqueeze', [values, b.int64s([2])])])
    const merged = b.op('Reshape', [b.op('Transpose', [b.op('Reshape', [context, ungroup])], { perm: [0, 2, 1, 3] }), merge])
    x = b.op('Add', [x, linear(b, merged, layer.oProj, `${p}.self_attn.o_proj`)])

    const hPost = rmsNorm(b, x, layer.postAttentionLayerNorm, `${p}.post_attention_layernorm`, s.rmsNormEps)
    const gate = linear(b, hPost, layer.gateProj, `${p}.mlp.gate_proj`)
    const up = linear(b, hPost, layer.upProj, `${p}.mlp.up_proj`)
    const act = b.op('Mul', [b.op('Mul', [gate, b.op('Sigmoid', [gate])]), up])
    x = b.op('Add', [x, linear(b, act, layer.downProj, `${p}.mlp.down_proj`)])
  })

  // lm_head: [batch·seq, hidden] × [vocab, hidden]ᵀ by Gemm, so a tied table is stored once.
  const final = b.op('Reshape', [rmsNorm(b, x, w.norm, 'model.norm', s.rmsNormEps), b.int64s([-1, h])])
  const head = s.tieWordEmbeddings ? embed ?? embedTable() : b.tensor('lm_head.weight', [s.vocabSize, h], w.lmHead)
  const flatLogits = b.op('Gemm', [final, head], { transB: 1 })
  const leading = embeds ? b.op('Shape', [tokens], { start: 0, end: 2 }) : b.op('Shape', [tokens])
  const logitsShape = b.op('Concat', [leading, b.int64s([s.vocabSize])], { axis: 0 })
  b.op('Reshape', [flatLogits, logitsShape], undefined, LM_IO.logits)

  return b.encode(options.graphName ?? 'qwen2_fp32', options.description ?? `Qwen2-shaped decoder, ${s.numHiddenLayers} layers, hidden ${h}, ${heads} heads (${kvHeads} kv), vocab ${s.vocabSize}, seeded random weights (seed ${w.seed}), fp32`)
}
