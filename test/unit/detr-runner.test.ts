/**
 * The detr runner end to end in-process, on the generated demo/detr-random
 * (its shape and seed) and real photographs: well-formed detections; a
 * batch of 4 images of different sizes gives what 4 single runs give, in
 * one inference call; bad images in a batch fail only their own slot; the
 * node's image limits apply when the thread decodes; a model with a
 * fixed-size pixel_mask runs one image per call; transformers.js's own
 * pipeline runs the generated model.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import onnxProto from 'onnx-proto'
import sharp from 'sharp'
import { generateDetrModel, COCO_LABELS } from '../../src/models/generate/index.ts'
import type { ExecutionPlan, ModelLocation } from '../../src/interfaces/index.ts'
import { InputTooLargeError, InvalidInputError, ModelLoadError } from '../../src/errors.ts'
import { createDetrSkillset, loadDetrRunner } from '../../skillsets/detr/index.ts'
import type { DetrOutput, DetrResult, DetrRunner } from '../../skillsets/detr/index.ts'
import { DEFAULT_IMAGE_LIMITS } from '../../skillsets/image/index.ts'
import { greyPng, noise, photo, pngBomb, truncated } from '../helpers/images.ts'

const ID = 'demo/detr-random'
const plan: ExecutionPlan = { modelId: ID, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] }
const detr = createDetrSkillset()
let root: string
let model: ModelLocation
let runner: DetrRunner

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ipfs-accelerate-detr-runner-'))
  await generateDetrModel({ size: 'tiny', seed: 42, outDir: join(root, ID) })
  model = { id: ID, localModelPath: root }
  runner = await loadDetrRunner(model, plan)
})

after(async () => {
  await runner?.dispose()
  await rm(root, { recursive: true, force: true })
})

const input = (image: Uint8Array, extra: Record<string, unknown> = {}) => detr.parseInput({ image, ...extra })

function ok (r: DetrResult | undefined): DetrOutput {
  if (r === undefined || r instanceof Error) assert.fail(`expected detections, got ${String(r)}`)
  return r
}

function assertWellFormed (out: DetrOutput, width: number, height: number, threshold: number): void {
  assert.equal(out.width, width)
  assert.equal(out.height, height)
  assert.ok(out.detections.length > 0, 'some detections above a low threshold')
  out.detections.forEach((d, i) => {
    assert.ok(COCO_LABELS.includes(d.label), d.label)
    assert.ok(d.score > threshold && d.score <= 1, `score ${d.score}`)
    if (i > 0) assert.ok(d.score <= (out.detections[i - 1]?.score ?? 1), 'best first')
    const b = d.box
    assert.ok(b.xmin >= 0 && b.xmin <= b.xmax && b.xmax <= width, `x ${b.xmin}..${b.xmax} in 0..${width}`)
    assert.ok(b.ymin >= 0 && b.ymin <= b.ymax && b.ymax <= height, `y ${b.ymin}..${b.ymax} in 0..${height}`)
  })
}

async function size (bytes: Uint8Array): Promise<[number, number]> {
  const m = await sharp(bytes).metadata()
  return [m.width ?? 0, m.height ?? 0]
}

test('a real photograph gives well-formed detections, in its own pixels; top_k keeps the best', async () => {
  const cat = photo('chelsea.jpg')
  const [w, h] = await size(cat)
  const [out] = await runner.run([input(cat, { threshold: 0.02 })])
  const all = ok(out)
  assertWellFormed(all, w, h, 0.02)
  assert.ok(new Set(all.detections.map((d) => d.box.xmin)).size > 1, 'the queries give different boxes')
  const [top3] = await runner.run([input(cat, { threshold: 0.02, top_k: 3 })])
  assert.deepEqual(ok(top3).detections, all.detections.slice(0, 3))
  assert.deepEqual(detr.decodeOutput(detr.encodeOutput(all)), all, 'the wire form round-trips')
})

/** The same image cropped and scaled: another size and aspect ratio. */
async function variant (): Promise<Uint8Array> {
  return new Uint8Array(await sharp(photo('chelsea.jpg')).extract({ left: 40, top: 10, width: 200, height: 250 }).resize(131, 170).png().toBuffer())
}

test('a batch of 4 images of different sizes gives the detections of 4 single runs, in one inference call', async () => {
  const images = [photo('chelsea.jpg'), photo('coffee.jpg'), photo('rocket.webp'), await variant()]
  const sizes = await Promise.all(images.map(size))
  assert.equal(new Set(sizes.map(([w, h]) => `${w}x${h}`)).size, 4, 'four different sizes')
  const inputs = images.map((im) => input(im, { threshold: 0 }))
  const alone = await Promise.all(inputs.map(async (i) => ok((await runner.run([i]))[0])))
  const before = { ...runner.stats }
  const batch = (await runner.run(inputs)).map(ok)
  assert.deepEqual({ calls: runner.stats.calls - before.calls, images: runner.stats.images - before.images }, { calls: 1, images: 4 })
  batch.forEach((out, i) => {
    const one = alone[i] as DetrOutput
    const [w, h] = sizes[i] as [number, number]
    assertWellFormed(out, w, h, 0)
    assert.deepEqual(out.detections.map((d) => d.label), one.detections.map((d) => d.label), `image ${i} labels`)
    out.detections.forEach((d, k) => {
      const o = one.detections[k]
      assert.ok(o !== undefined && Math.abs(d.score - o.score) < 1e-4, `image ${i} detection ${k} score ${d.score} vs ${o?.score}`)
      for (const key of ['xmin', 'ymin', 'xmax', 'ymax'] as const) assert.ok(Math.abs(d.box[key] - (o?.box[key] ?? NaN)) < 1e-3 * Math.max(w, h), `image ${i} detection ${k} ${key}`)
    })
  })
})

test('bad images in a batch fail only their own slot; the good ones match their single runs', async () => {
  const cat = photo('chelsea.jpg')
  const rocket = photo('rocket.webp')
  const [catAlone, rocketAlone] = (await runner.run([input(cat), input(rocket)])).map(ok)
  // Bytes that start like a PNG, so they pass parsing and fail decoding; and raw noise, as if parsing were skipped.
  const fakePng = new Uint8Array([...greyPng(2, 2).subarray(0, 8), ...noise(3000)])
  const bad = [fakePng, truncated(photo('coffee.jpg')), pngBomb()]
  const results = await runner.run([
    input(cat), input(bad[0] as Uint8Array), input(bad[1] as Uint8Array), { image: { bytes: noise(500, 9) }, threshold: 0.5, topK: 100 }, input(bad[2] as Uint8Array), input(rocket)
  ])
  assert.equal(results.length, 6)
  assert.deepEqual(results[0], catAlone)
  assert.deepEqual(results[5], rocketAlone)
  assert.ok(results[1] instanceof InvalidInputError, String(results[1]))
  assert.ok(results[2] instanceof InvalidInputError, String(results[2]))
  assert.ok(results[3] instanceof InvalidInputError, String(results[3]))
  assert.ok(results[4] instanceof InputTooLargeError, String(results[4]))
  const allBad = await runner.run([input(bad[1] as Uint8Array)])
  assert.ok(allBad[0] instanceof InvalidInputError)
})

test('the node\'s image limits (load options) apply when the thread decodes', async () => {
  const small = await loadDetrRunner(model, plan, { images: { ...DEFAULT_IMAGE_LIMITS, maxPixels: 10_000 } })
  try {
    const [big, grey] = await small.run([input(photo('chelsea.jpg')), input(greyPng(50, 40, 128), { threshold: 0 })])
    assert.ok(big instanceof InputTooLargeError, String(big))
    assert.match((big as Error).message, /images\.maxPixels/)
    assertWellFormed(ok(grey), 50, 40, 0)
  } finally {
    await small.dispose()
  }
})

test('transformers.js\'s own object-detection pipeline runs the generated model too (its 64×64 mask of ones included)', async () => {
  const tf = await import('@huggingface/transformers')
  tf.env.allowRemoteModels = false
  tf.env.allowLocalModels = true
  tf.env.localModelPath = root
  const pipe = await tf.pipeline('object-detection', ID, { dtype: 'fp32', device: 'cpu' })
  try {
    const image = await tf.RawImage.fromBlob(new Blob([greyPng(120, 90, 200)]))
    const found = await pipe(image, { threshold: 0 }) as Array<{ label: string, score: number }>
    assert.ok(found.length > 0 && found.every((d) => COCO_LABELS.includes(d.label) && d.score > 0 && d.score <= 1), JSON.stringify(found.slice(0, 3)))
  } finally {
    await pipe.dispose()
  }
})

test('a model whose pixel_mask has a fixed size (older exports) runs one image per call, with a mask of ones', async () => {
  // demo/detr-random with its pixel_mask declared [batch_size, 64, 64], as Optimum's older DETR exports declare it.
  const proto = onnxProto.onnx.ModelProto.decode(await readFile(join(root, ID, 'onnx/model.onnx')))
  const maskInput = proto.graph?.input?.find((i) => i.name === 'pixel_mask')
  const dims = maskInput?.type?.tensorType?.shape?.dim ?? []
  assert.equal(dims.length, 3)
  dims[1] = { dimValue: 64 }
  dims[2] = { dimValue: 64 }
  const fixedId = 'demo/detr-fixed-mask'
  await mkdir(join(root, fixedId, 'onnx'), { recursive: true })
  for (const f of ['config.json', 'preprocessor_config.json']) await copyFile(join(root, ID, f), join(root, fixedId, f))
  await writeFile(join(root, fixedId, 'onnx/model.onnx'), onnxProto.onnx.ModelProto.encode(proto).finish())
  const fixed = await loadDetrRunner({ id: fixedId, localModelPath: root }, plan)
  try {
    const inputs = [photo('chelsea.jpg'), photo('coffee.jpg'), photo('rocket.webp')].map((im) => input(im, { threshold: 0.1 }))
    const results = await fixed.run(inputs)
    assert.deepEqual(fixed.stats, { calls: 3, images: 3 })
    const alone = await runner.run(inputs)
    results.forEach((r, i) => {
      const want = ok(alone[i])
      assert.deepEqual(ok(r).detections.map((d) => d.label), want.detections.map((d) => d.label))
      ok(r).detections.forEach((d, k) => assert.ok(Math.abs(d.score - (want.detections[k]?.score ?? NaN)) < 1e-4))
    })
  } finally {
    await fixed.dispose()
  }
})

test('the padded-pixel budget splits a batch into several calls, with the same detections', async () => {
  // Each photograph is resized to 96 pixels high and 128-144 wide: two fit in 2 × 96 × 144 padded pixels, a third does not.
  const split = await loadDetrRunner(model, plan, { maxBatchPixels: 2 * 96 * 144 })
  try {
    const inputs = [photo('chelsea.jpg'), photo('coffee.jpg'), photo('rocket.webp'), photo('chelsea.jpg'), photo('coffee.jpg')].map((im) => input(im, { threshold: 0 }))
    const results = (await split.run(inputs)).map(ok)
    assert.deepEqual(split.stats, { calls: 3, images: 5 })
    const whole = (await runner.run(inputs)).map(ok)
    results.forEach((r, i) => {
      assert.deepEqual(r.detections.map((d) => d.label), whole[i]?.detections.map((d) => d.label))
      r.detections.forEach((d, k) => assert.ok(Math.abs(d.score - (whole[i]?.detections[k]?.score ?? NaN)) < 1e-4))
    })
  } finally {
    await split.dispose()
  }
})

test('a config.json whose id2label lacks a class is refused at load with what is missing', async () => {
  const brokenId = 'demo/detr-no-labels'
  await mkdir(join(root, brokenId, 'onnx'), { recursive: true })
  const config = JSON.parse(await readFile(join(root, ID, 'config.json'), 'utf8'))
  delete config.id2label['79']
  await writeFile(join(root, brokenId, 'config.json'), JSON.stringify(config))
  await copyFile(join(root, ID, 'preprocessor_config.json'), join(root, brokenId, 'preprocessor_config.json'))
  await copyFile(join(root, ID, 'onnx/model.onnx'), join(root, brokenId, 'onnx/model.onnx'))
  await assert.rejects(loadDetrRunner({ id: brokenId, localModelPath: root }, plan), (err: Error) => err instanceof ModelLoadError && /no label for class 79/.test(err.message))
})
