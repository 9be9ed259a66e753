/**
 * An independent float64 forward pass of the generated DETR-shaped detector,
 * written from the math in src/models/generate/detr/graph.ts's header (not
 * from its graph builder): plain loops over the weights of
 * generateDetrWeights. One image at a time, given at its real size (no
 * padding): the ONNX graph's answer for the same image inside a padded batch
 * must agree with it, which is the padding-invariance property.
 */
import type { DetrLayerNorm, DetrLinear, DetrWeights } from '../../src/models/generate/index.ts'

/** y[n, out] = x[n, in] · W[in, out] + b */
function linear (x: Float64Array, n: number, l: DetrLinear): Float64Array {
  const y = new Float64Array(n * l.outDim)
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < l.outDim; o++) {
      let acc = l.bias[o] as number
      for (let i = 0; i < l.inDim; i++) acc += (x[r * l.inDim + i] as number) * (l.weight[i * l.outDim + o] as number)
      y[r * l.outDim + o] = acc
    }
  }
  return y
}

function layerNorm (x: Float64Array, n: number, d: number, ln: DetrLayerNorm, eps: number): Float64Array {
  const y = new Float64Array(n * d)
  for (let r = 0; r < n; r++) {
    let mean = 0
    for (let i = 0; i < d; i++) mean += x[r * d + i] as number
    mean /= d
    let variance = 0
    for (let i = 0; i < d; i++) variance += ((x[r * d + i] as number) - mean) ** 2
    variance /= d
    const inv = 1 / Math.sqrt(variance + eps)
    for (let i = 0; i < d; i++) y[r * d + i] = ((x[r * d + i] as number) - mean) * inv * (ln.weight[i] as number) + (ln.bias[i] as number)
  }
  return y
}

const relu = (v: number): number => v > 0 ? v : 0

/**
 * Run one image: `pixels` is [3, height, width] (already normalised).
 * Returns logits [queries, labels + 1] and boxes [queries, 4].
 */
export function detrReference (w: DetrWeights, pixels: Float32Array | Float64Array, height: number, width: number): { logits: Float64Array, boxes: Float64Array } {
  const s = w.shape
  // 1. Backbone: 3×3, stride 2, zero padding 1, ReLU. The image alone has no padded positions.
  let x = Float64Array.from(pixels)
  let c = 3
  let h = height
  let wd = width
  for (const conv of w.backbone) {
    const oh = Math.floor((h + 2 - 3) / 2) + 1
    const ow = Math.floor((wd + 2 - 3) / 2) + 1
    const y = new Float64Array(conv.outChannels * oh * ow)
    for (let o = 0; o < conv.outChannels; o++) {
      for (let r = 0; r < oh; r++) {
        for (let col = 0; col < ow; col++) {
          let acc = conv.bias[o] as number
          for (let i = 0; i < c; i++) {
            for (let ky = 0; ky < 3; ky++) {
              const yy = r * 2 - 1 + ky
              if (yy < 0 || yy >= h) continue
              for (let kx = 0; kx < 3; kx++) {
                const xx = col * 2 - 1 + kx
                if (xx < 0 || xx >= wd) continue
                acc += (x[(i * h + yy) * wd + xx] as number) * (conv.weight[((o * c + i) * 3 + ky) * 3 + kx] as number)
              }
            }
          }
          y[(o * oh + r) * ow + col] = relu(acc)
        }
      }
    }
    x = y
    c = conv.outChannels
    h = oh
    wd = ow
  }
  const S = h * wd
  const d = s.dModel
  // 2. Projection of each position's channels.
  const feats = new Float64Array(S * c)
  for (let p = 0; p < S; p++) for (let i = 0; i < c; i++) feats[p * c + i] = x[i * S + p] as number
  const memory = linear(feats, S, w.projection)
  // 3. Positions: a full mask, so the cumulative sums are 1..h and 1..w and the extent is h and w.
  const half = d / 2
  const keysIn = new Float64Array(S * d)
  for (let r = 0; r < h; r++) {
    for (let col = 0; col < wd; col++) {
      const p = r * wd + col
      const yn = (r + 1) / (h + 1e-6) * 2 * Math.PI
      const xn = (col + 1) / (wd + 1e-6) * 2 * Math.PI
      for (let k = 0; k < half; k++) {
        const dimT = Math.pow(s.positionTemperature, (2 * Math.floor(k / 2)) / half)
        keysIn[p * d + k] = (memory[p * d + k] as number) + (k % 2 === 0 ? Math.sin(yn / dimT) : Math.cos(yn / dimT))
        keysIn[p * d + half + k] = (memory[p * d + half + k] as number) + (k % 2 === 0 ? Math.sin(xn / dimT) : Math.cos(xn / dimT))
      }
    }
  }
  const Q = s.numQueries
  const heads = s.numHeads
  const hd = d / heads
  let hidden: Float64Array = new Float64Array(Q * d)
  for (const layer of w.layers) {
    const qIn = new Float64Array(Q * d)
    for (let i = 0; i < Q * d; i++) qIn[i] = (hidden[i] as number) + (w.queries[i] as number)
    const q = linear(qIn, Q, layer.q)
    const k = linear(keysIn, S, layer.k)
    const v = linear(memory, S, layer.v)
    const merged = new Float64Array(Q * d)
    for (let hIdx = 0; hIdx < heads; hIdx++) {
      for (let qi = 0; qi < Q; qi++) {
        const scores = new Float64Array(S)
        for (let p = 0; p < S; p++) {
          let acc = 0
          for (let j = 0; j < hd; j++) acc += (q[qi * d + hIdx * hd + j] as number) * (k[p * d + hIdx * hd + j] as number)
          scores[p] = acc / Math.sqrt(hd)
        }
        let max = -Infinity
        for (const sc of scores) max = Math.max(max, sc)
        let sum = 0
        for (let p = 0; p < scores.length; p++) { scores[p] = Math.exp((scores[p] as number) - max); sum += scores[p] as number }
        for (let j = 0; j < hd; j++) {
          let acc = 0
          for (let p = 0; p < S; p++) acc += (scores[p] as number) / sum * (v[p * d + hIdx * hd + j] as number)
          merged[qi * d + hIdx * hd + j] = acc
        }
      }
    }
    const attn = linear(merged, Q, layer.o)
    for (let i = 0; i < Q * d; i++) attn[i] = (attn[i] as number) + (hidden[i] as number)
    const h1 = layerNorm(attn, Q, d, layer.attnNorm, s.layerNormEps)
    const f1 = linear(h1, Q, layer.fc1)
    for (let i = 0; i < f1.length; i++) f1[i] = relu(f1[i] as number)
    const f2 = linear(f1, Q, layer.fc2)
    for (let i = 0; i < Q * d; i++) f2[i] = (f2[i] as number) + (h1[i] as number)
    hidden = layerNorm(f2, Q, d, layer.ffnNorm, s.layerNormEps)
  }
  const logits = linear(hidden, Q, w.classHead)
  const bh = linear(hidden, Q, w.boxHidden)
  for (let i = 0; i < bh.length; i++) bh[i] = relu(bh[i] as number)
  const boxes = linear(bh, Q, w.boxOut)
  for (let i = 0; i < boxes.length; i++) boxes[i] = 1 / (1 + Math.exp(-(boxes[i] as number)))
  return { logits, boxes }
}
