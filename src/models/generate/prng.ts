/**
 * A small seeded PRNG (mulberry32) and a Box-Muller normal sampler: the
 * generated models' weights depend on the seed only, never on the platform.
 */

/** Uniform floats in [0, 1) from a 32-bit seed (mulberry32). */
export function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return (): number => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Standard normal samples (Box-Muller; both values of each pair are used). */
export function normalSampler (uniform: () => number): () => number {
  let spare: number | undefined
  return (): number => {
    if (spare !== undefined) {
      const s = spare
      spare = undefined
      return s
    }
    // 1 - u is in (0, 1], so the log is finite.
    const u1 = 1 - uniform()
    const u2 = uniform()
    const r = Math.sqrt(-2 * Math.log(u1))
    spare = r * Math.sin(2 * Math.PI * u2)
    return r * Math.cos(2 * Math.PI * u2)
  }
}

/**
 * A seed for one named tensor: each tensor gets its own stream, so adding a
 * tensor never shifts the values of the others. FNV-1a over the name, mixed
 * with the model seed.
 */
export function tensorSeed (modelSeed: number, name: string): number {
  let h = 0x811C9DC5 ^ (modelSeed >>> 0)
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  h ^= Math.imul(modelSeed >>> 0, 0x9E3779B1) >>> 0
  return h >>> 0
}

/** A Float32Array of `n` samples of mean + std × N(0, 1), from `seed`. */
export function normalArray (n: number, seed: number, mean: number, std: number): Float32Array {
  const next = normalSampler(mulberry32(seed))
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) out[i] = mean + std * next()
  return out
}
