/**
 * Fixed activation ranges for the statically quantized ('int8') graph: a
 * float64 forward pass in plain TypeScript over a fixed, seeded set of token
 * sequences records the range of every linear layer's input. The ranges
 * depend on the weights only, never on the host (no ONNX Runtime, whose
 * kernels differ by CPU): every host writes the same bytes, so the same CID.
 * Each scale is rounded up to 4 significant bits, so a last-ulp difference
 * in Math.exp between engines cannot change it.
 *
 * Why static: with fixed scales and zero points, a text's quantized
 * activations do not depend on the texts it is batched with (dynamic
 * quantization takes them from the whole batch's min/max).
 */
import type { BertWeights, LayerNorm, Linear } from './weights.ts'
import { mulberry32 } from './prng.ts'
import { SPECIAL_IDS } from './vocab.ts'

/** A uint8 quantization of an activation: value ≈ (q - zeroPoint) × scale. */
export interface ActivationQuant { scale: number, zeroPoint: number, min: number, max: number }

/** The quantizations of one encoder layer's linear inputs. */
export interface LayerActivationQuant {
  /** The layer input (query, key and value share it). */
  qkv: ActivationQuant
  /** The attention context (input of attention.output.dense). */
  context: ActivationQuant
  /** After the attention LayerNorm (input of intermediate.dense). */
  intermediate: ActivationQuant
  /** After GELU (input of output.dense). */
  output: ActivationQuant
}

/** Calibration sequence lengths (tokens, [CLS] and [SEP] included): 152 tokens in all. */
const CALIBRATION_LENGTHS = Object.freeze([6, 12, 18, 24, 28, 64])
/** Calibration texts are drawn from this seed, mixed with the model's. */
const CALIBRATION_SEED = 0x5eed
/** The observed range is widened by this factor, for texts unlike the calibration ones. */
export const RANGE_MARGIN = 1.25

type Rows = Float64Array[]

function linear (x: Rows, l: Linear): Rows {
  return x.map((row) => {
    const out = Float64Array.from(l.bias)
    for (let i = 0; i < l.inDim; i++) {
      const xi = row[i] as number
      if (xi === 0) continue
      const base = i * l.outDim
      for (let o = 0; o < l.outDim; o++) out[o] = (out[o] as number) + xi * (l.weight[base + o] as number)
    }
    return out
  })
}

function layerNorm (x: Rows, ln: LayerNorm, eps: number): Rows {
  return x.map((row) => {
    const n = row.length
    let mean = 0
    for (const v of row) mean += v
    mean /= n
    let variance = 0
    for (const v of row) variance += (v - mean) * (v - mean)
    const inv = 1 / Math.sqrt(variance / n + eps)
    return row.map((v, i) => (v - mean) * inv * (ln.gamma[i] as number) + (ln.beta[i] as number))
  })
}

function erf (x: number): number {
  const ax = Math.abs(x)
  if (ax < 3) {
    let term = x
    let sum = x
    for (let n = 1; n < 80; n++) {
      term *= -x * x / n
      sum += term / (2 * n + 1)
      if (Math.abs(term) < 1e-17) break
    }
    return sum * 2 / Math.sqrt(Math.PI)
  }
  const t = 1 / (1 + 0.3275911 * ax)
  const y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-ax * ax)
  return Math.sign(x) * y
}

class Range {
  min = 0
  max = 0
  see (rows: Rows): void {
    for (const r of rows) {
      for (const v of r) {
        if (v < this.min) this.min = v
        if (v > this.max) this.max = v
      }
    }
  }
}

/** Round up to `bits` significant binary digits. */
function roundUpBits (v: number, bits: number): number {
  const e = Math.floor(Math.log2(v))
  const unit = 2 ** (e - bits + 1)
  return Math.ceil(v / unit) * unit
}

/** uint8 scale and zero point for a range that includes 0, widened by RANGE_MARGIN. */
export function activationQuant (min: number, max: number): ActivationQuant {
  const lo = Math.min(0, min) * RANGE_MARGIN
  const hi = Math.max(0, max) * RANGE_MARGIN
  const scale = Math.fround(hi > lo ? roundUpBits((hi - lo) / 255, 4) : 1)
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)))
  return { scale, zeroPoint, min: lo, max: hi }
}

/** The fixed token sequences the ranges come from (ids of ordinary tokens between [CLS] and [SEP]). */
export function calibrationSequences (vocabSize: number, maxPositions: number, seed: number): number[][] {
  const rnd = mulberry32((CALIBRATION_SEED ^ seed) >>> 0)
  const first = SPECIAL_IDS.mask + 1
  return CALIBRATION_LENGTHS.map((len) => {
    const n = Math.min(len, maxPositions)
    const ids: number[] = [SPECIAL_IDS.cls]
    for (let t = 1; t < n - 1; t++) ids.push(first + Math.floor(rnd() * (vocabSize - first)))
    ids.push(SPECIAL_IDS.sep)
    return ids
  })
}

/** Run the calibration sequences through the encoder and return each layer's activation quantizations. */
export function activationRanges (w: BertWeights): LayerActivationQuant[] {
  const s = w.shape
  const h = s.hiddenSize
  const heads = s.numAttentionHeads
  const hd = h / heads
  const ranges = w.layers.map(() => ({ qkv: new Range(), context: new Range(), intermediate: new Range(), output: new Range() }))
  for (const ids of calibrationSequences(s.vocabSize, s.maxPositionEmbeddings, w.seed)) {
    const emb = ids.map((id, t) => Float64Array.from({ length: h }, (_, d) =>
      (w.wordEmbeddings[id * h + d] as number) + (w.positionEmbeddings[t * h + d] as number) + (w.tokenTypeEmbeddings[d] as number)))
    let x = layerNorm(emb, w.embeddingLayerNorm, s.layerNormEps)
    w.layers.forEach((layer, li) => {
      const r = ranges[li] as (typeof ranges)[number]
      r.qkv.see(x)
      const q = linear(x, layer.query)
      const k = linear(x, layer.key)
      const v = linear(x, layer.value)
      const ctx: Rows = x.map(() => new Float64Array(h))
      for (let head = 0; head < heads; head++) {
        const o = head * hd
        for (let i = 0; i < ids.length; i++) {
          const qi = q[i] as Float64Array
          const scores = k.map((kj) => {
            let dot = 0
            for (let d = 0; d < hd; d++) dot += (qi[o + d] as number) * (kj[o + d] as number)
            return dot / Math.sqrt(hd)
          })
          const max = Math.max(...scores)
          const e = scores.map((sc) => Math.exp(sc - max))
          const z = e.reduce((a, b) => a + b, 0)
          const out = ctx[i] as Float64Array
          for (let j = 0; j < ids.length; j++) {
            const p = (e[j] as number) / z
            const vj = v[j] as Float64Array
            for (let d = 0; d < hd; d++) out[o + d] = (out[o + d] as number) + p * (vj[o + d] as number)
          }
        }
      }
      r.context.see(ctx)
      const attn = linear(ctx, layer.attentionOutput).map((row, i) => row.map((a, d) => a + ((x[i] as Float64Array)[d] as number)))
      const x1 = layerNorm(attn, layer.attentionLayerNorm, s.layerNormEps)
      r.intermediate.see(x1)
      const f = linear(x1, layer.intermediate).map((row) => row.map((u) => 0.5 * u * (1 + erf(u / Math.SQRT2))))
      r.output.see(f)
      const out = linear(f, layer.output).map((row, i) => row.map((a, d) => a + ((x1[i] as Float64Array)[d] as number)))
      x = layerNorm(out, layer.outputLayerNorm, s.layerNormEps)
    })
  }
  return ranges.map((r) => ({
    qkv: activationQuant(r.qkv.min, r.qkv.max),
    context: activationQuant(r.context.min, r.context.max),
    intermediate: activationQuant(r.intermediate.min, r.intermediate.max),
    output: activationQuant(r.output.min, r.output.max)
  }))
}
