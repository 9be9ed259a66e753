/**
 * The embed skillset on a generated tiny BERT, against an independent forward
 * pass in plain TypeScript (float64) from the generator's weights.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BERT_SHAPES, generateBertModel, generateBertWeights } from '../../src/models/generate/index.ts'
import type { BertWeights, LayerNorm, Linear } from '../../src/models/generate/index.ts'
import { createEmbedSkillset, embedSkillset } from '../../skillsets/embed/index.ts'
import type { EmbedOutput, EmbedRunner } from '../../skillsets/embed/index.ts'
import type { ExecutionPlan } from '../../src/interfaces/index.ts'

// ---- reference forward pass ----------------------------------------------

type Mat = Float64Array[] // rows

function erf (x: number): number {
  const ax = Math.abs(x)
  if (ax < 3) { // Maclaurin series, exact to ~1e-13 here
    let term = x
    let sum = x
    for (let n = 1; n < 80; n++) {
      term *= -x * x / n
      sum += term / (2 * n + 1)
      if (Math.abs(term) < 1e-17) break
    }
    return sum * 2 / Math.sqrt(Math.PI)
  }
  // Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7) where erf is within 2.3e-5 of ±1
  const t = 1 / (1 + 0.3275911 * ax)
  const y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-ax * ax)
  return Math.sign(x) * y
}

function linear (x: Mat, l: Linear): Mat {
  return x.map((row) => {
    const out = new Float64Array(l.outDim)
    for (let o = 0; o < l.outDim; o++) {
      let s = l.bias[o] as number
      for (let i = 0; i < l.inDim; i++) s += (row[i] as number) * (l.weight[i * l.outDim + o] as number)
      out[o] = s
    }
    return out
  })
}

function layerNorm (x: Mat, ln: LayerNorm, eps: number): Mat {
  return x.map((row) => {
    const n = row.length
    const mean = row.reduce((a, b) => a + b, 0) / n
    const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / n
    const inv = 1 / Math.sqrt(variance + eps)
    return row.map((v, i) => (v - mean) * inv * (ln.gamma[i] as number) + (ln.beta[i] as number))
  })
}

const add = (a: Mat, b: Mat): Mat => a.map((r, i) => r.map((v, j) => v + ((b[i] as Float64Array)[j] as number)))

/** Hidden states of one sequence; `mask` (default all 1) masks keys out of attention. */
function referenceHidden (w: BertWeights, ids: number[], mask: number[] = ids.map(() => 1)): Mat {
  const { hiddenSize: h, numAttentionHeads: heads, layerNormEps: eps } = w.shape
  const hd = h / heads
  const emb = ids.map((id, t) => Float64Array.from({ length: h }, (_, d) =>
    (w.wordEmbeddings[id * h + d] as number) + (w.positionEmbeddings[t * h + d] as number) + (w.tokenTypeEmbeddings[d] as number)))
  let x = layerNorm(emb, w.embeddingLayerNorm, eps)
  for (const layer of w.layers) {
    const q = linear(x, layer.query)
    const k = linear(x, layer.key)
    const v = linear(x, layer.value)
    const ctx: Mat = x.map(() => new Float64Array(h))
    for (let head = 0; head < heads; head++) {
      const o = head * hd
      for (let i = 0; i < ids.length; i++) {
        const scores = ids.map((_, j) => {
          if (mask[j] === 0) return -Infinity
          let s = 0
          for (let d = 0; d < hd; d++) s += ((q[i] as Float64Array)[o + d] as number) * ((k[j] as Float64Array)[o + d] as number)
          return s / Math.sqrt(hd)
        })
        const max = Math.max(...scores)
        const e = scores.map((s) => Math.exp(s - max))
        const z = e.reduce((a, b) => a + b, 0)
        const out = ctx[i] as Float64Array
        for (let j = 0; j < ids.length; j++) {
          const p = (e[j] as number) / z
          const vj = v[j] as Float64Array
          for (let d = 0; d < hd; d++) out[o + d] = (out[o + d] as number) + p * (vj[o + d] as number)
        }
      }
    }
    const x1 = layerNorm(add(linear(ctx, layer.attentionOutput), x), layer.attentionLayerNorm, eps)
    const f = linear(x1, layer.intermediate).map((r) => r.map((u) => 0.5 * u * (1 + erf(u / Math.SQRT2))))
    x = layerNorm(add(linear(f, layer.output), x1), layer.outputLayerNorm, eps)
  }
  return x
}

function referenceEmbedding (w: BertWeights, ids: number[], pooling: 'mean' | 'cls', normalize: boolean, mask?: number[]): Float64Array {
  const hs = referenceHidden(w, ids, mask)
  const keep = mask ?? ids.map(() => 1)
  const n = keep.reduce((a, b) => a + b, 0)
  let v = pooling === 'cls'
    ? Float64Array.from(hs[0] as Float64Array)
    : Float64Array.from({ length: w.shape.hiddenSize }, (_, d) => hs.reduce((s, row, t) => s + (keep[t] as number) * (row[d] as number), 0) / n)
  if (normalize) {
    const norm = Math.sqrt(v.reduce((s, a) => s + a * a, 0))
    v = v.map((a) => a / norm)
  }
  return v
}

function maxAbsDiff (a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)))
  return m
}

// ---- the test --------------------------------------------------------------

const SEED = 11
const ID = 'test/tiny'
const TEXTS = [
  'Hello world!',
  'The quick brown fox jumps over the lazy dog, again and again, until the dog finally wakes up.',
  'Zürich: 42 nodes.',
  'a',
  'Peers share embedding vectors across a content-addressed network of inference workers, each one with its own queue.'
]
const JOBS: Array<{ texts: string[], pooling?: 'mean' | 'cls', normalize?: boolean }> = [
  { texts: [TEXTS[0]!, TEXTS[1]!] },
  { texts: [TEXTS[2]!], pooling: 'cls', normalize: false },
  { texts: [TEXTS[3]!, TEXTS[4]!, TEXTS[0]!], pooling: 'mean', normalize: false }
]
const plan = (dtype: 'fp32' | 'q8'): ExecutionPlan => ({ modelId: ID, device: 'cpu', provider: 'cpu', dtype, intraOpThreads: 1, reasons: [], fallbacks: [] })

let root: string
let weights: BertWeights
let idsOf: (text: string) => number[]
let runner: EmbedRunner
let outputs: EmbedOutput[]

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ipfs-accelerate-ref-'))
  await generateBertModel({ size: 'tiny', seed: SEED, outDir: join(root, ID) })
  weights = generateBertWeights(BERT_SHAPES.tiny, SEED)
  const { AutoTokenizer, env } = await import('@huggingface/transformers')
  env.allowRemoteModels = false
  env.localModelPath = root
  const tokenizer = await AutoTokenizer.from_pretrained(ID)
  idsOf = (text) => tokenizer.encode(text)
  runner = await embedSkillset.load({ id: ID, localModelPath: root }, plan('fp32'))
  outputs = await runner.run(JOBS.map((j) => embedSkillset.parseInput(j)))
})

after(async () => {
  await runner?.dispose()
  await rm(root, { recursive: true, force: true })
})

test('the texts tokenize into word pieces, not [UNK]', () => {
  for (const text of TEXTS) {
    const ids = idsOf(text)
    assert.equal(ids[0], 2, '[CLS] first')
    assert.equal(ids.at(-1), 3, '[SEP] last')
    assert.ok(!ids.includes(1), `no [UNK] in ${JSON.stringify(text)}: ${ids.join(' ')}`)
  }
  const lengths = new Set(TEXTS.map((t) => idsOf(t).length))
  assert.ok(lengths.size >= 4, 'texts of different lengths, so the batch is padded')
})

test('one batch of several jobs matches the reference forward pass (max abs diff <= 1e-4)', () => {
  assert.equal(outputs.length, JOBS.length)
  JOBS.forEach((job, j) => {
    const out = outputs[j]!
    assert.equal(out.count, job.texts.length)
    assert.equal(out.dims, 32)
    job.texts.forEach((text, i) => {
      const ref = referenceEmbedding(weights, idsOf(text), job.pooling ?? 'mean', job.normalize ?? true)
      const got = out.embeddings.subarray(i * out.dims, (i + 1) * out.dims)
      const diff = maxAbsDiff(got, ref)
      assert.ok(diff <= 1e-4, `job ${j} text ${i}: max abs diff ${diff}`)
    })
  })
})

test('the comparison has teeth: a perturbed weight or an ignored mask is caught', () => {
  const text = TEXTS[0]!
  const got = outputs[0]!.embeddings.subarray(0, 32)
  const ids = idsOf(text)
  const perturbed = generateBertWeights(BERT_SHAPES.tiny, SEED)
  perturbed.layers[1]!.value.weight[5]! += 0.05
  assert.ok(maxAbsDiff(got, referenceEmbedding(perturbed, ids, 'mean', true)) > 1e-3, 'one changed weight')
  // The text padded to the batch's longest, with the padding attended and pooled:
  // what the model would give if it ignored attention_mask.
  const longest = Math.max(...TEXTS.map((t) => idsOf(t).length))
  const padded = [...ids, ...Array<number>(longest - ids.length).fill(0)]
  assert.ok(maxAbsDiff(got, referenceEmbedding(weights, padded, 'mean', true)) > 1e-3, 'mask ignored')
  const noPoolMask = referenceEmbedding(weights, padded, 'mean', true, padded.map((_, t) => t < ids.length ? 1 : 0))
  assert.ok(maxAbsDiff(got, noPoolMask) <= 1e-4, 'masked padding changes nothing')
})

test('small inference calls (token budget) give the same vectors as one big call', async () => {
  const small = createEmbedSkillset({ maxBatchTokens: 24 })
  const r = await small.load({ id: ID, localModelPath: root }, plan('fp32'))
  try {
    const again = await r.run(JOBS.map((j) => small.parseInput(j)))
    again.forEach((o, j) => assert.ok(maxAbsDiff(o.embeddings, outputs[j]!.embeddings) <= 1e-5, `job ${j}`))
  } finally {
    await r.dispose()
  }
})

test('the q8 model loads and stays close to fp32', async () => {
  const r = await embedSkillset.load({ id: ID, localModelPath: root }, plan('q8'))
  try {
    const [q] = await r.run([embedSkillset.parseInput({ texts: TEXTS })])
    const [f] = await runner.run([embedSkillset.parseInput({ texts: TEXTS })])
    for (let i = 0; i < TEXTS.length; i++) {
      let cos = 0
      for (let d = 0; d < 32; d++) cos += q!.embeddings[i * 32 + d]! * f!.embeddings[i * 32 + d]!
      assert.ok(cos > 0.99, `text ${i}: cosine ${cos}`)
    }
  } finally {
    await r.dispose()
  }
})
