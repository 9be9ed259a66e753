/**
 * The generated DETR-shaped detector against an independent float64 forward
 * pass (test/helpers/detr-reference.ts): each image of a padded batch of two
 * must give what the reference computes for it alone, unpadded. A perturbed
 * weight and a mask that lies about the padding must both be caught.
 * Also: generation is deterministic, quick, and writes the HF layout.
 */
import { before, test } from 'node:test'
import assert from 'node:assert/strict'
import * as ort from 'onnxruntime-node'
import { buildDetrOnnx, COCO_LABELS, DETR_SHAPES, detrModelFiles, generateDetrWeights } from '../../src/models/generate/index.ts'
import type { DetrWeights } from '../../src/models/generate/index.ts'
import { mulberry32 } from '../../src/models/generate/prng.ts'
import { detrReference } from '../helpers/detr-reference.ts'

const shape = DETR_SHAPES.tiny
const classes = COCO_LABELS.length + 1
const Q = shape.numQueries
let weights: DetrWeights
let session: ort.InferenceSession

before(async () => {
  weights = generateDetrWeights(shape, 7)
  session = await ort.InferenceSession.create(buildDetrOnnx(weights), { intraOpNumThreads: 1 })
})

interface Img { h: number, w: number, pixels: Float32Array }
function image (h: number, w: number, seed: number): Img {
  const u = mulberry32(seed)
  return { h, w, pixels: Float32Array.from({ length: 3 * h * w }, () => u() * 4 - 2) }
}

/** Run images as one batch padded bottom/right with zeros to the largest sides; `lie` sets the whole mask to 1. */
async function runBatch (imgs: Img[], lie = false): Promise<Array<{ logits: Float32Array, boxes: Float32Array }>> {
  const H = Math.max(...imgs.map((i) => i.h))
  const W = Math.max(...imgs.map((i) => i.w))
  const px = new Float32Array(imgs.length * 3 * H * W)
  const mask = new BigInt64Array(imgs.length * H * W)
  imgs.forEach((img, b) => {
    for (let c = 0; c < 3; c++) for (let y = 0; y < img.h; y++) px.set(img.pixels.subarray((c * img.h + y) * img.w, (c * img.h + y + 1) * img.w), ((b * 3 + c) * H + y) * W)
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) mask[(b * H + y) * W + x] = lie || (y < img.h && x < img.w) ? 1n : 0n
  })
  const out = await session.run({ pixel_values: new ort.Tensor('float32', px, [imgs.length, 3, H, W]), pixel_mask: new ort.Tensor('int64', mask, [imgs.length, H, W]) })
  const logits = out.logits?.data as Float32Array
  const boxes = out.pred_boxes?.data as Float32Array
  assert.deepEqual(out.logits?.dims, [imgs.length, Q, classes])
  assert.deepEqual(out.pred_boxes?.dims, [imgs.length, Q, 4])
  return imgs.map((_, b) => ({ logits: logits.slice(b * Q * classes, (b + 1) * Q * classes), boxes: boxes.slice(b * Q * 4, (b + 1) * Q * 4) }))
}

function maxDiff (a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)))
  return m
}

// Odd and even sides, so the stride-2 rounding of the mask is exercised.
const A = image(23, 37, 1)
const B = image(30, 26, 2)

test('each image of a padded batch gives the float64 reference of that image alone', async () => {
  const [a, b] = await runBatch([A, B])
  for (const [img, out, name] of [[A, a, 'A'], [B, b, 'B']] as const) {
    const ref = detrReference(weights, img.pixels, img.h, img.w)
    const spread = Math.max(...ref.logits) - Math.min(...ref.logits)
    assert.ok(spread > 5, `the logits are far from flat (spread ${spread})`)
    assert.ok(maxDiff(out?.logits ?? [], ref.logits) < 1e-4, `${name} logits: ${maxDiff(out?.logits ?? [], ref.logits)}`)
    assert.ok(maxDiff(out?.boxes ?? [], ref.boxes) < 5e-6, `${name} boxes: ${maxDiff(out?.boxes ?? [], ref.boxes)}`)
  }
})

test('an image alone and padded inside a batch agree up to float rounding', async () => {
  const [alone] = await runBatch([A])
  const [, inBatch] = await runBatch([B, A, image(40, 41, 3)])
  assert.ok(maxDiff(alone?.logits ?? [], inBatch?.logits ?? []) < 1e-4)
  assert.ok(maxDiff(alone?.boxes ?? [], inBatch?.boxes ?? []) < 1e-5)
})

test('the comparison has teeth: a mask that hides the padding, or one changed weight, is caught', async () => {
  const [, lied] = await runBatch([B, A], true)
  const ref = detrReference(weights, A.pixels, A.h, A.w)
  assert.ok(maxDiff(lied?.logits ?? [], ref.logits) > 1e-2, 'a padded image read as all real pixels must differ')
  const perturbed: DetrWeights = { ...weights, queries: Float32Array.from(weights.queries) }
  perturbed.queries[5] = (perturbed.queries[5] as number) + 0.05
  const [a] = await runBatch([A])
  assert.ok(maxDiff(a?.logits ?? [], detrReference(perturbed, A.pixels, A.h, A.w).logits) > 1e-3)
})

test('generation is deterministic, well under a second, and writes the HF layout', () => {
  const t0 = performance.now()
  const one = detrModelFiles('tiny', 7)
  const ms = performance.now() - t0
  assert.ok(ms < 1000, `generated in ${ms.toFixed(0)} ms`)
  const two = detrModelFiles('tiny', 7)
  const other = detrModelFiles('tiny', 8)
  assert.deepEqual([...one.files.keys()], ['config.json', 'preprocessor_config.json', 'onnx/model.onnx'])
  for (const [path, bytes] of one.files) assert.deepEqual(two.files.get(path), bytes, path)
  assert.notDeepEqual(other.files.get('onnx/model.onnx'), one.files.get('onnx/model.onnx'))
  const config = JSON.parse(new TextDecoder().decode(one.files.get('config.json')))
  assert.equal(config.model_type, 'detr')
  assert.equal(config.id2label['15'], 'cat')
  assert.equal(config.label2id.person, 0)
  assert.equal(Object.keys(config.id2label).length, COCO_LABELS.length)
  const pre = JSON.parse(new TextDecoder().decode(one.files.get('preprocessor_config.json')))
  assert.equal(pre.image_processor_type, 'DetrImageProcessor')
  assert.deepEqual(pre.size, { shortest_edge: 96, longest_edge: 160 })
})
