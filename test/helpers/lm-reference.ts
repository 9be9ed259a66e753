/**
 * An independent float64 forward pass of the generated Qwen2-shaped LM, in
 * plain TypeScript from the generator's weights, with its own explicit KV
 * cache: embeddings, RMSNorm, RoPE (HF's rotate_half form, from position
 * ids), grouped-query attention with a causal mask that counts the past,
 * SwiGLU MLP and lm_head. It shares nothing with the ONNX graph writer but
 * the weights.
 *
 * Semantics it pins: query i of a chunk (absolute position past + i) sees key
 * j when j ≤ past + i and mask[j] = 1; a query that sees nothing averages all
 * keys uniformly (what a finite "lowest float" mask gives). Keys are cached
 * after RoPE.
 */
import type { LmLinear, LmWeights } from '../../src/models/generate/index.ts'

type Vec = Float64Array

/** Per layer, per batch row, per kv head: one cached vector per position. */
export interface RefCache { keys: Vec[][][][], values: Vec[][][][] }

export interface RefOptions {
  /** Break the model on purpose (tests that the comparison has teeth). */
  ignoreMask?: boolean
  /** Embeddings [batch][seq] to use in place of the ids' rows of the table (a vision-language decoder's inputs_embeds). */
  embeds?: Vec[][]
}

export function emptyCache (w: LmWeights, batch: number): RefCache {
  const make = (): Vec[][][][] => w.layers.map(() => Array.from({ length: batch }, () => Array.from({ length: w.shape.numKeyValueHeads }, () => [])))
  return { keys: make(), values: make() }
}

/** The cached vectors of one layer, batch row and kv head. */
export function slot (c: Vec[][][][], layer: number, batch: number, kvHead: number): Vec[] {
  const s = c[layer]?.[batch]?.[kvHead]
  if (s === undefined) throw new RangeError(`no cache slot for layer ${layer}, row ${batch}, kv head ${kvHead}`)
  return s
}

export function cacheLength (c: RefCache): number {
  return c.keys[0]?.[0]?.[0]?.length ?? 0
}

function linear (x: Vec, l: LmLinear): Vec {
  const out = new Float64Array(l.outDim)
  for (let o = 0; o < l.outDim; o++) out[o] = l.bias?.[o] ?? 0
  for (let i = 0; i < l.inDim; i++) {
    const xi = x[i] as number
    if (xi === 0) continue
    const row = i * l.outDim
    for (let o = 0; o < l.outDim; o++) out[o] = (out[o] as number) + xi * (l.weight[row + o] as number)
  }
  return out
}

function rmsNorm (x: Vec, weight: Float32Array, eps: number): Vec {
  let ms = 0
  for (const v of x) ms += v * v
  const inv = 1 / Math.sqrt(ms / x.length + eps)
  return x.map((v, i) => v * inv * (weight[i] as number))
}

/** HF rotate_half RoPE on one head vector at position `pos`. */
function rope (x: Vec, pos: number, theta: number): Vec {
  const d = x.length
  const half = d / 2
  const out = new Float64Array(d)
  for (let i = 0; i < half; i++) {
    const angle = pos * Math.pow(theta, (-2 * i) / d)
    const c = Math.cos(angle)
    const s = Math.sin(angle)
    const a = x[i] as number
    const b = x[i + half] as number
    out[i] = a * c - b * s
    out[i + half] = b * c + a * s
  }
  return out
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number)
  return s
}

/**
 * One forward step: `ids` and `positions` [batch][seq], `mask` [batch][past + seq].
 * Appends to `cache` and returns logits [batch][seq][vocab].
 */
export function referenceForward (w: LmWeights, ids: number[][], positions: number[][], mask: number[][], cache: RefCache, options: RefOptions = {}): Vec[][] {
  const s = w.shape
  const { hiddenSize: h, headDim: d, numAttentionHeads: heads, numKeyValueHeads: kvHeads } = s
  const group = heads / kvHeads
  const past = cacheLength(cache)
  return ids.map((row, b) => {
    const total = past + row.length
    const m = mask[b] as number[]
    if (m.length !== total) throw new RangeError(`mask row ${b} has ${m.length} positions, past + seq is ${total}`)
    let xs: Vec[] = options.embeds?.[b]?.map((e) => Float64Array.from(e)) ?? row.map((id) => Float64Array.from(w.embedTokens.subarray(id * h, (id + 1) * h)))
    w.layers.forEach((layer, l) => {
      const normed = xs.map((x) => rmsNorm(x, layer.inputLayerNorm, s.rmsNormEps))
      const qs = normed.map((x) => linear(x, layer.qProj))
      // Append this chunk's keys (after RoPE) and values to the cache first.
      normed.forEach((x, i) => {
        const k = linear(x, layer.kProj)
        const v = linear(x, layer.vProj)
        const pos = (positions[b] as number[])[i] as number
        for (let kv = 0; kv < kvHeads; kv++) {
          slot(cache.keys, l, b, kv).push(rope(k.subarray(kv * d, (kv + 1) * d), pos, s.ropeTheta))
          slot(cache.values, l, b, kv).push(v.slice(kv * d, (kv + 1) * d))
        }
      })
      xs = xs.map((x, i) => {
        const pos = (positions[b] as number[])[i] as number
        const context = new Float64Array(heads * d)
        for (let head = 0; head < heads; head++) {
          const kv = Math.floor(head / group)
          const keys = slot(cache.keys, l, b, kv)
          const values = slot(cache.values, l, b, kv)
          const q = rope((qs[i] as Vec).subarray(head * d, (head + 1) * d), pos, s.ropeTheta)
          const seen = keys.map((_, j) => j <= past + i && (options.ignoreMask === true || m[j] === 1))
          const scores = keys.map((k, j) => seen[j] === true ? dot(q, k) / Math.sqrt(d) : -Infinity)
          const max = Math.max(...scores)
          const weights = max === -Infinity ? scores.map(() => 1) : scores.map((v) => Math.exp(v - max))
          const sum = weights.reduce((a, c) => a + c, 0)
          for (let j = 0; j < keys.length; j++) {
            const p = (weights[j] as number) / sum
            const v = values[j] as Vec
            for (let e = 0; e < d; e++) context[head * d + e] = (context[head * d + e] as number) + p * (v[e] as number)
          }
        }
        const attn = linear(context, layer.oProj)
        return x.map((v, e) => v + (attn[e] as number))
      })
      xs = xs.map((x) => {
        const n = rmsNorm(x, layer.postAttentionLayerNorm, s.rmsNormEps)
        const gate = linear(n, layer.gateProj)
        const up = linear(n, layer.upProj)
        const act = gate.map((g, e) => (g / (1 + Math.exp(-g))) * (up[e] as number))
        const down = linear(act, layer.downProj)
        return x.map((v, e) => v + (down[e] as number))
      })
    })
    return xs.map((x) => {
      const n = rmsNorm(x, w.norm, s.rmsNormEps)
      const logits = new Float64Array(s.vocabSize)
      for (let v = 0; v < s.vocabSize; v++) logits[v] = dot(n, w.lmHead.subarray(v * h, (v + 1) * h))
      return logits
    })
  })
}

export function argmax (x: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < x.length; i++) if ((x[i] as number) > (x[best] as number)) best = i
  return best
}

/** HF's position ids for a left-padded mask: cumsum(mask) - 1, padded positions 1. */
export function positionsFromMask (mask: number[]): number[] {
  let n = 0
  return mask.map((m) => m === 1 ? n++ : 1)
}

/** Greedy decoding of one sequence with the reference and its cache: `steps` new ids. */
export function referenceGreedy (w: LmWeights, prompt: number[], steps: number): number[] {
  const cache = emptyCache(w, 1)
  const out: number[] = []
  let ids = prompt
  let positions = prompt.map((_, i) => i)
  let mask = prompt.map(() => 1)
  for (let t = 0; t < steps; t++) {
    const logits = referenceForward(w, [ids], [positions], [mask], cache)[0] as Vec[]
    const next = argmax(logits[logits.length - 1] as Vec)
    out.push(next)
    const pos = mask.length
    ids = [next]
    positions = [pos]
    mask = [...mask, 1]
  }
  return out
}
