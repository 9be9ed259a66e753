/**
 * An independent float64 forward pass of the generated LLaVA-NeXT-shaped
 * model's vision side, in plain TypeScript from the generator's weights:
 * the patch convolution written as sums over pixels, the class token and
 * positions, pre-LayerNorm, CLIP's pre-LN layers (softmax attention,
 * quick_gelu MLP), the class position dropped, the projector (linear, erf
 * GELU, linear). It shares nothing with the ONNX graph writer but the
 * weights. The decoder side is test/helpers/lm-reference.ts with `embeds`.
 */
import type { LlavaWeights, LmLinear, VisionLayerNorm } from '../../src/models/generate/index.ts'

type Vec = Float64Array

function linear (x: Vec, l: LmLinear): Vec {
  const out = new Float64Array(l.outDim)
  for (let o = 0; o < l.outDim; o++) {
    let s = l.bias?.[o] ?? 0
    for (let i = 0; i < l.inDim; i++) s += (x[i] as number) * (l.weight[i * l.outDim + o] as number)
    out[o] = s
  }
  return out
}

function layerNorm (x: Vec, ln: VisionLayerNorm, eps: number): Vec {
  let mean = 0
  for (const v of x) mean += v
  mean /= x.length
  let variance = 0
  for (const v of x) variance += (v - mean) ** 2
  variance /= x.length
  const inv = 1 / Math.sqrt(variance + eps)
  return x.map((v, i) => (v - mean) * inv * (ln.gamma[i] as number) + (ln.beta[i] as number))
}

/** erf to ~1e-12: its Maclaurin series below 3, the asymptotic series of erfc above (its first omitted term is < 1e-8 there). */
function erf (x: number): number {
  const z = Math.abs(x)
  let r: number
  if (z < 3) {
    // erf z = 2/√π Σ (−1)^n z^(2n+1) / (n! (2n+1))
    let term = z
    let sum = z
    for (let n = 1; n < 200; n++) {
      term *= -z * z / n
      const add = term / (2 * n + 1)
      sum += add
      if (Math.abs(add) < 1e-17) break
    }
    r = (2 / Math.sqrt(Math.PI)) * sum
  } else {
    // erfc z ≈ e^(−z²) / (z √π) · (1 − 1/(2z²) + 3/(2z²)² − 15/(2z²)³ + 105/(2z²)⁴)
    const u = 1 / (2 * z * z)
    r = 1 - Math.exp(-z * z) / (z * Math.sqrt(Math.PI)) * (1 - u + 3 * u * u - 15 * u ** 3 + 105 * u ** 4)
  }
  return x < 0 ? -r : r
}

const gelu = (v: number): number => 0.5 * v * (1 + erf(v / Math.SQRT2))
const quickGelu = (v: number): number => v / (1 + Math.exp(-1.702 * v))

/** Projected features of one tile: pixels [3][side·patch][side·patch] (CHW, flat) → [patches][text hidden]. */
export function referenceTileFeatures (w: LlavaWeights, pixels: ArrayLike<number>): Vec[] {
  const v = w.shape.vision
  const h = v.hiddenSize
  const p = v.patchSize
  const T = v.imageSize
  const side = T / p
  const heads = v.numAttentionHeads
  const d = h / heads
  const tokens: Vec[] = [Float64Array.from(w.classEmbedding)]
  for (let py = 0; py < side; py++) {
    for (let px = 0; px < side; px++) {
      const e = new Float64Array(h)
      for (let o = 0; o < h; o++) {
        let s = 0
        for (let c = 0; c < 3; c++) {
          for (let ky = 0; ky < p; ky++) {
            for (let kx = 0; kx < p; kx++) s += (w.patchEmbedding[((o * 3 + c) * p + ky) * p + kx] as number) * (pixels[(c * T + py * p + ky) * T + px * p + kx] as number)
          }
        }
        e[o] = s
      }
      tokens.push(e)
    }
  }
  let xs = tokens.map((t, i) => layerNorm(t.map((val, j) => val + (w.positionEmbedding[i * h + j] as number)), w.preLayerNorm, v.layerNormEps))
  for (const layer of w.layers) {
    const n1 = xs.map((x) => layerNorm(x, layer.layerNorm1, v.layerNormEps))
    const q = n1.map((x) => linear(x, layer.qProj))
    const k = n1.map((x) => linear(x, layer.kProj))
    const val = n1.map((x) => linear(x, layer.vProj))
    xs = xs.map((x, i) => {
      const context = new Float64Array(h)
      for (let head = 0; head < heads; head++) {
        const scores = k.map((kj) => {
          let s = 0
          for (let e = 0; e < d; e++) s += (q[i] as Vec)[head * d + e] as number * (kj[head * d + e] as number)
          return s / Math.sqrt(d)
        })
        const max = Math.max(...scores)
        const weights = scores.map((s) => Math.exp(s - max))
        const sum = weights.reduce((a, b) => a + b, 0)
        weights.forEach((wt, j) => {
          for (let e = 0; e < d; e++) context[head * d + e] = (context[head * d + e] as number) + (wt / sum) * ((val[j] as Vec)[head * d + e] as number)
        })
      }
      const attn = linear(context, layer.outProj)
      return x.map((xv, e) => xv + (attn[e] as number))
    })
    xs = xs.map((x) => {
      const f = linear(layerNorm(x, layer.layerNorm2, v.layerNormEps), layer.fc1).map(quickGelu)
      const out = linear(f, layer.fc2)
      return x.map((xv, e) => xv + (out[e] as number))
    })
  }
  return xs.slice(1).map((x) => linear(linear(x, w.projector1).map(gelu), w.projector2))
}
