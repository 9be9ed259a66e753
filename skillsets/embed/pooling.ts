/**
 * Pooling of token vectors into one vector per text, and L2 normalisation:
 * pure functions over flat Float32Arrays.
 */

export type Pooling = 'mean' | 'cls'
export const POOLINGS: readonly Pooling[] = Object.freeze(['mean', 'cls'])

/** Smallest norm divided by (torch.nn.functional.normalize's eps). */
export const NORM_EPS = 1e-12
/** Smallest token count divided by (sentence-transformers' clamp). */
export const COUNT_EPS = 1e-9

/**
 * Mean of the token vectors of row `row` of a [batch, seq, dims] tensor over
 * the positions where `mask` is non-zero, written to `out` at `outOffset`.
 */
export function meanPoolRow (hidden: Float32Array, mask: ArrayLike<number | bigint>, seq: number, dims: number, row: number, out: Float32Array, outOffset: number): void {
  const acc = new Float64Array(dims)
  let count = 0
  for (let t = 0; t < seq; t++) {
    const m = Number(mask[row * seq + t])
    if (m === 0) continue
    count += m
    const base = (row * seq + t) * dims
    for (let d = 0; d < dims; d++) acc[d] = (acc[d] as number) + m * (hidden[base + d] as number)
  }
  const denom = Math.max(count, COUNT_EPS)
  for (let d = 0; d < dims; d++) out[outOffset + d] = (acc[d] as number) / denom
}

/** The first token's ([CLS]) vector of row `row`, written to `out` at `outOffset`. */
export function clsPoolRow (hidden: Float32Array, seq: number, dims: number, row: number, out: Float32Array, outOffset: number): void {
  const base = row * seq * dims
  out.set(hidden.subarray(base, base + dims), outOffset)
}

const POOL_ROW: Readonly<Record<Pooling, (hidden: Float32Array, mask: ArrayLike<number | bigint>, seq: number, dims: number, row: number, out: Float32Array, outOffset: number) => void>> = Object.freeze({
  mean: meanPoolRow,
  cls: (hidden, _mask, seq, dims, row, out, outOffset) => { clsPoolRow(hidden, seq, dims, row, out, outOffset) }
})

/** Pool every row of a [batch, seq, dims] tensor: returns [batch × dims]. */
export function pool (hidden: Float32Array, mask: ArrayLike<number | bigint>, batch: number, seq: number, dims: number, pooling: Pooling): Float32Array {
  if (hidden.length !== batch * seq * dims) throw new RangeError(`hidden states hold ${hidden.length} values, expected ${batch}×${seq}×${dims}`)
  if (mask.length !== batch * seq) throw new RangeError(`attention mask holds ${mask.length} values, expected ${batch}×${seq}`)
  const out = new Float32Array(batch * dims)
  const f = POOL_ROW[pooling]
  for (let r = 0; r < batch; r++) f(hidden, mask, seq, dims, r, out, r * dims)
  return out
}

/** Divide each of `rows` vectors of `dims` values by its L2 norm, in place. */
export function l2NormalizeRows (data: Float32Array, rows: number, dims: number): Float32Array {
  if (data.length !== rows * dims) throw new RangeError(`${data.length} values are not ${rows} rows of ${dims}`)
  for (let r = 0; r < rows; r++) {
    const base = r * dims
    let sum = 0
    for (let d = 0; d < dims; d++) {
      const v = data[base + d] as number
      sum += v * v
    }
    const inv = 1 / Math.max(Math.sqrt(sum), NORM_EPS)
    for (let d = 0; d < dims; d++) data[base + d] = (data[base + d] as number) * inv
  }
  return data
}
