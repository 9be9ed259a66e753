/**
 * Choosing the next token from one row of logits: pure functions and a
 * per-job seeded generator, so a job's draws depend on its seed and its own
 * logits only, never on the jobs it shares batches with (transformers.js's
 * generate() has one global generator and ignores top_p).
 *
 * Order, as Hugging Face applies them: repetition penalty (a processor,
 * also in greedy mode), then the warpers temperature → top_k → top_p, then
 * a draw from the softmax. Ties are broken by the lower token id.
 */

export interface SamplingParams {
  /** 0: greedy. */
  temperature: number
  /** 0: off. */
  topK: number
  /** 1: off. */
  topP: number
  /** 1: off. */
  repetitionPenalty: number
}

/**
 * xoshiro128** seeded through splitmix32: 32-bit integer arithmetic only, so
 * every host draws the same numbers for a seed.
 */
export class JobRandom {
  private s0: number
  private s1: number
  private s2: number
  private s3: number

  constructor (seed: number) {
    let x = seed >>> 0
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0
      let z = x
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    this.s0 = next(); this.s1 = next(); this.s2 = next(); this.s3 = next()
  }

  /** The next uint32. */
  nextUint32 (): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0
    const t = (this.s1 << 9) >>> 0
    this.s2 = (this.s2 ^ this.s0) >>> 0
    this.s3 = (this.s3 ^ this.s1) >>> 0
    this.s1 = (this.s1 ^ this.s2) >>> 0
    this.s0 = (this.s0 ^ this.s3) >>> 0
    this.s2 = (this.s2 ^ t) >>> 0
    this.s3 = rotl(this.s3, 11)
    return result
  }

  /** A float in [0, 1) with 53 random bits. */
  nextFloat (): number {
    const hi = this.nextUint32() >>> 5
    const lo = this.nextUint32() >>> 6
    return (hi * 67108864 + lo) / 9007199254740992
  }
}

function rotl (x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}

/** Hugging Face's repetition penalty, in place over float64 scores: each id seen once is divided (positive) or multiplied (negative). */
export function applyRepetitionPenalty (scores: Float64Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return
  for (const id of new Set(seen)) {
    if (id < 0 || id >= scores.length) continue
    const s = scores[id] as number
    scores[id] = s < 0 ? s * penalty : s / penalty
  }
}

/** Index of the largest score; the lowest index on ties. */
export function argmax (scores: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < scores.length; i++) if ((scores[i] as number) > (scores[best] as number)) best = i
  return best
}

/**
 * The candidates left after temperature, top_k and top_p, with their
 * probabilities, most likely first (ties: lower id first).
 */
export function candidates (scores: Float64Array, p: SamplingParams): { ids: number[], probs: number[] } {
  const order = Array.from(scores.keys()).sort((a, b) => (scores[b] as number) - (scores[a] as number) || a - b)
  let keep = order.length
  if (p.topK > 0 && p.topK < keep) {
    // Hugging Face keeps every token tied with the k-th.
    const kth = scores[order[p.topK - 1] as number] as number
    keep = p.topK
    while (keep < order.length && scores[order[keep] as number] === kth) keep++
  }
  const max = scores[order[0] as number] as number
  const weights = new Array<number>(keep)
  let sum = 0
  for (let i = 0; i < keep; i++) {
    const w = Math.exp(((scores[order[i] as number] as number) - max) / p.temperature)
    weights[i] = w
    sum += w
  }
  let probs = weights.map((w) => w / sum)
  if (p.topP < 1) {
    // Keep the smallest prefix whose mass reaches top_p (at least one token).
    let mass = 0
    let n = 0
    while (n < keep) {
      mass += probs[n] as number
      n++
      if (mass >= p.topP) break
    }
    keep = n
    const kept = probs.slice(0, keep)
    const total = kept.reduce((a, b) => a + b, 0)
    probs = kept.map((x) => x / total)
  }
  return { ids: order.slice(0, keep), probs: probs.slice(0, keep) }
}

/**
 * The next token: greedy when temperature is 0, else one draw from `rng`.
 * `logits` is the model's float32 row; the math is float64.
 */
export function nextToken (logits: ArrayLike<number>, seen: readonly number[], p: SamplingParams, rng: JobRandom): number {
  const scores = Float64Array.from(logits as ArrayLike<number>)
  applyRepetitionPenalty(scores, seen, p.repetitionPenalty)
  if (p.temperature === 0) return argmax(scores)
  if (p.topK === 0 && p.topP === 1) return drawAll(scores, p.temperature, rng.nextFloat())
  const { ids, probs } = candidates(scores, p)
  const u = rng.nextFloat()
  let acc = 0
  for (let i = 0; i < ids.length; i++) {
    acc += probs[i] as number
    if (u < acc) return ids[i] as number
  }
  return ids[ids.length - 1] as number
}

/** A draw over every id, in id order: no sort over the vocabulary when neither top_k nor top_p cuts it. */
function drawAll (scores: Float64Array, temperature: number, u: number): number {
  const max = scores[argmax(scores)] as number
  let sum = 0
  for (let i = 0; i < scores.length; i++) { const w = Math.exp(((scores[i] as number) - max) / temperature); scores[i] = w; sum += w }
  const target = u * sum
  let acc = 0
  for (let i = 0; i < scores.length; i++) {
    acc += scores[i] as number
    if (target < acc) return i
  }
  return scores.length - 1
}
