/**
 * The generated Qwen2-shaped LM on onnxruntime-node against an independent
 * float64 forward pass with its own KV cache (test/helpers/lm-reference.ts):
 * a prompt with an empty past, then single-token steps that feed `present`
 * back as `past`; a left-padded batch; greedy decoding with the cache against
 * recomputing the whole sequence each step.
 */
import { before, test } from 'node:test'
import assert from 'node:assert/strict'
import ort from 'onnxruntime-node'
import { buildLmOnnx, generateLmWeights, LM_IO, LM_SHAPES } from '../../src/models/generate/index.ts'
import type { LmSize, LmWeights } from '../../src/models/generate/index.ts'
import { mulberry32 } from '../../src/models/generate/prng.ts'
import { argmax, emptyCache, positionsFromMask, referenceForward, referenceGreedy, slot } from '../helpers/lm-reference.ts'
import type { RefCache } from '../helpers/lm-reference.ts'

const SEED = 11
/** Largest |ORT − reference| allowed, relative to the largest |logit| (float32 against float64; seen: ≤ 1.3e-6; a broken mask or RoPE: ≥ 1e-1). */
const TOLERANCE = 1e-5

type Past = Record<string, ort.Tensor>
interface Model { w: LmWeights, session: ort.InferenceSession }

const models = new Map<LmSize, Model>()
async function model (size: LmSize): Promise<Model> {
  let m = models.get(size)
  if (m === undefined) {
    const w = generateLmWeights(LM_SHAPES[size], SEED)
    m = { w, session: await ort.InferenceSession.create(buildLmOnnx(w), { intraOpNumThreads: 1 }) }
    models.set(size, m)
  }
  return m
}

before(async () => { await model('tiny') })

const int64 = (rows: number[][]): ort.Tensor =>
  new ort.Tensor('int64', BigInt64Array.from(rows.flat(), (v) => BigInt(v)), [rows.length, (rows[0] ?? []).length])

function emptyPast (w: LmWeights, batch: number): Past {
  const past: Past = {}
  const dims = [batch, w.shape.numKeyValueHeads, 0, w.shape.headDim]
  w.layers.forEach((_, i) => {
    past[LM_IO.pastKey(i)] = new ort.Tensor('float32', new Float32Array(0), dims)
    past[LM_IO.pastValue(i)] = new ort.Tensor('float32', new Float32Array(0), dims)
  })
  return past
}

/** One ORT step: logits [batch][seq][vocab] and the present cache renamed as the next past. */
async function ortStep ({ w, session }: Model, ids: number[][], positions: number[][], mask: number[][], past: Past): Promise<{ logits: Float32Array[][], next: Past, out: ort.InferenceSession.OnnxValueMapType }> {
  const out = await session.run({ [LM_IO.inputIds]: int64(ids), [LM_IO.positionIds]: int64(positions), [LM_IO.attentionMask]: int64(mask), ...past })
  const t = out[LM_IO.logits] as ort.Tensor
  const [batch, seq, vocab] = t.dims as [number, number, number]
  assert.deepEqual(t.dims, [ids.length, (ids[0] ?? []).length, w.shape.vocabSize])
  const data = t.data as Float32Array
  const logits = Array.from({ length: batch }, (_, b) => Array.from({ length: seq }, (_, i) => data.subarray((b * seq + i) * vocab, (b * seq + i + 1) * vocab)))
  const next: Past = {}
  w.layers.forEach((_, i) => {
    next[LM_IO.pastKey(i)] = out[LM_IO.presentKey(i)] as ort.Tensor
    next[LM_IO.pastValue(i)] = out[LM_IO.presentValue(i)] as ort.Tensor
  })
  return { logits, next, out }
}

/** max |a − b| / max(1, max |b|) over the rows given. */
function relativeError (a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  let diff = 0
  let scale = 1
  a.forEach((row, r) => {
    const ref = b[r] as ArrayLike<number>
    assert.equal(row.length, ref.length)
    for (let i = 0; i < row.length; i++) {
      diff = Math.max(diff, Math.abs((row[i] as number) - (ref[i] as number)))
      scale = Math.max(scale, Math.abs(ref[i] as number))
    }
  })
  return diff / scale
}

function randomIds (n: number, seed: number, vocab: number): number[] {
  const u = mulberry32(seed)
  return Array.from({ length: n }, () => Math.floor(u() * (vocab - 3)))
}

/** ORT's present cache of layer `l` against the reference's, for every row and kv head. */
function assertCacheMatches (m: Model, out: ort.InferenceSession.OnnxValueMapType, cache: RefCache, rows: number): void {
  const { numKeyValueHeads: kvHeads, headDim: d } = m.w.shape
  m.w.layers.forEach((_, l) => {
    for (const [name, ref] of [[LM_IO.presentKey(l), cache.keys], [LM_IO.presentValue(l), cache.values]] as const) {
      const t = out[name] as ort.Tensor
      const total = t.dims[2] as number
      assert.deepEqual(t.dims, [rows, kvHeads, total, d], name)
      const data = t.data as Float32Array
      for (let b = 0; b < rows; b++) {
        for (let kv = 0; kv < kvHeads; kv++) {
          const got = Array.from({ length: total }, (_, p) => data.subarray(((b * kvHeads + kv) * total + p) * d, ((b * kvHeads + kv) * total + p + 1) * d))
          assert.ok(relativeError(got, slot(ref, l, b, kv)) < TOLERANCE, `${name} row ${b} kv head ${kv}`)
        }
      }
    }
  })
}

/** A prompt with an empty past, then `steps` single-token steps fed the present cache, each against the reference. */
async function promptThenSteps (m: Model, prompt: number[], steps: number): Promise<void> {
  const cache = emptyCache(m.w, 1)
  let ids = [prompt]
  let positions = [prompt.map((_, i) => i)]
  let mask = [prompt.map(() => 1)]
  let past = emptyPast(m.w, 1)
  for (let step = 0; step <= steps; step++) {
    const got = await ortStep(m, ids, positions, mask, past)
    const ref = referenceForward(m.w, ids, positions, mask, cache)
    const err = relativeError(got.logits[0] as Float32Array[], ref[0] as Float64Array[])
    assert.ok(err < TOLERANCE, `step ${step}: relative error ${err}`)
    assertCacheMatches(m, got.out, cache, 1)
    const next = argmax(got.logits[0]?.at(-1) as Float32Array)
    ids = [[next]]
    positions = [[mask[0]?.length ?? 0]]
    mask = [[...(mask[0] ?? []), 1]]
    past = got.next
  }
}

test('tiny: a prompt with an empty past, then single-token steps on the cache, match the float64 reference', async () => {
  const m = await model('tiny')
  await promptThenSteps(m, randomIds(7, 1, m.w.shape.vocabSize), 5)
})

test('tiny: a left-padded batch of two prompts matches the reference, and each row matches its prompt alone', async () => {
  const m = await model('tiny')
  const V = m.w.shape.vocabSize
  const short = randomIds(5, 2, V)
  const long = randomIds(8, 3, V)
  const pad = m.w.shape.vocabSize - 3
  let ids = [[pad, pad, pad, ...short], long]
  let mask = [[0, 0, 0, 1, 1, 1, 1, 1], long.map(() => 1)]
  let positions = mask.map(positionsFromMask)
  const cache = emptyCache(m.w, 2)
  const alone = [emptyCache(m.w, 1), emptyCache(m.w, 1)]
  let aloneIds = [short, long]
  let past = emptyPast(m.w, 2)
  for (let step = 0; step < 4; step++) {
    const got = await ortStep(m, ids, positions, mask, past)
    const ref = referenceForward(m.w, ids, positions, mask, cache)
    const err = relativeError(got.logits.flat(), ref.flat())
    assert.ok(err < TOLERANCE, `step ${step}: batch relative error ${err}`)
    assertCacheMatches(m, got.out, cache, 2)
    if (step === 0) {
      // Teeth: a reference that attends to the padding disagrees with ONNX Runtime.
      const leaky = referenceForward(m.w, ids, positions, mask, emptyCache(m.w, 2), { ignoreMask: true })
      assert.ok(relativeError(got.logits[0]?.slice(3) ?? [], leaky[0]?.slice(3) ?? []) > 1e-2, 'the padding changes what an unmasked model computes')
    }
    for (const r of [0, 1]) {
      const own = aloneIds[r] as number[]
      const start = (alone[r] as RefCache).keys[0]?.[0]?.[0]?.length ?? 0
      const single = referenceForward(m.w, [own], [own.map((_, i) => start + i)], [Array.from({ length: start + own.length }, () => 1)], alone[r] as RefCache)[0] as Float64Array[]
      const rows = (got.logits[r] as Float32Array[]).slice(-own.length)
      const e = relativeError(rows, single)
      assert.ok(e < TOLERANCE, `step ${step}, row ${r}: ${e} from the prompt run alone`)
    }
    const next = got.logits.map((rows) => argmax(rows.at(-1) as Float32Array))
    ids = next.map((t) => [t])
    aloneIds = next.map((t) => [t])
    positions = mask.map((row) => [row.reduce((a, v) => a + v, 0)])
    mask = mask.map((row) => [...row, 1])
    past = got.next
  }
})

test('small (tied lm_head, 4 layers) matches the reference on a prompt and two cached steps', async () => {
  const m = await model('small')
  await promptThenSteps(m, randomIds(6, 4, m.w.shape.vocabSize), 2)
})

test('tiny: greedy decoding with the cache equals recomputing the whole sequence each step, and the reference', async () => {
  const m = await model('tiny')
  const STEPS = 20
  for (const seed of [5, 6, 7]) {
    const prompt = randomIds(3 + seed, seed, m.w.shape.vocabSize)
    const cached: number[] = []
    let ids = [prompt]
    let mask = [prompt.map(() => 1)]
    let past = emptyPast(m.w, 1)
    for (let t = 0; t < STEPS; t++) {
      const got = await ortStep(m, ids, [ids[0]?.map((_, i) => (mask[0]?.length ?? 0) - (ids[0]?.length ?? 0) + i) ?? []], mask, past)
      const next = argmax(got.logits[0]?.at(-1) as Float32Array)
      cached.push(next)
      ids = [[next]]
      mask = [[...(mask[0] ?? []), 1]]
      past = got.next
    }
    const recomputed: number[] = []
    const seq = [...prompt]
    for (let t = 0; t < STEPS; t++) {
      const got = await ortStep(m, [seq], [seq.map((_, i) => i)], [seq.map(() => 1)], emptyPast(m.w, 1))
      const next = argmax(got.logits[0]?.at(-1) as Float32Array)
      recomputed.push(next)
      seq.push(next)
    }
    assert.deepEqual(cached, recomputed, `prompt seed ${seed}`)
    assert.deepEqual(cached, referenceGreedy(m.w, prompt, STEPS), `prompt seed ${seed}: the float64 reference`)
    assert.ok(new Set(cached).size > 1, 'greedy decoding is not stuck on one token')
  }
})
