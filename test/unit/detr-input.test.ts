/**
 * The detr skillset's boundary: input validation (defaults, bad threshold
 * and top_k, unknown keys, non-images, oversized images, CID references),
 * the worker's image hooks, batching and cost, the sample input, and the
 * output's wire form checked on decode.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InputTooLargeError, InvalidInputError, ProtocolError } from '../../src/errors.ts'
import { createDetrSkillset, detrSkillset } from '../../skillsets/detr/index.ts'
import type { DetrOutput } from '../../skillsets/detr/index.ts'
import { getBatchSkillset } from '../../skillsets/index.ts'
import { decodeImage, DEFAULT_IMAGE_LIMITS } from '../../skillsets/image/index.ts'
import { noise, photo } from '../helpers/images.ts'

const cat = photo('chelsea.jpg')
const CID = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

test('a valid input: the image, threshold 0.5 and top_k 100 by default', () => {
  assert.equal(getBatchSkillset('detr'), detrSkillset)
  const input = detrSkillset.parseInput({ image: cat })
  assert.deepEqual(input, { image: { bytes: cat }, threshold: 0.5, topK: 100 })
  assert.deepEqual(detrSkillset.parseInput({ image: cat, threshold: 0, top_k: 1000 }), { image: { bytes: cat }, threshold: 0, topK: 1000 })
  assert.deepEqual(detrSkillset.parseInput({ image: { cid: CID, size: 1234 }, threshold: 1 }).image, { cid: CID, size: 1234 })
})

test('bad inputs are InvalidInputError, naming the field', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ image: cat, threshold: -0.1 }, /threshold/],
    [{ image: cat, threshold: 1.5 }, /threshold/],
    [{ image: cat, threshold: '0.5' }, /threshold/],
    [{ image: cat, threshold: Number.NaN }, /threshold/],
    [{ image: cat, top_k: 0 }, /top_k/],
    [{ image: cat, top_k: 1001 }, /top_k/],
    [{ image: cat, top_k: 2.5 }, /top_k/],
    [{ image: cat, topK: 5 }, /topK/],
    [{ image: cat, labels: ['cat'] }, /labels/],
    [{ threshold: 0.5 }, /image is required/],
    [{ image: 'aGVsbG8=' }, /image/],
    [{ image: noise(100) }, /not a PNG, JPEG or WebP/],
    [{ image: new Uint8Array(0) }, /empty/],
    [{ image: { cid: 'not-a-cid', size: 10 } }, /not a CID/],
    [{ image: { cid: CID, size: 10, extra: 1 } }, /cid, size/],
    [null, /input/],
    [[cat], /input/]
  ]
  for (const [raw, message] of bad) {
    assert.throws(() => detrSkillset.parseInput(raw), (err: unknown) => err instanceof InvalidInputError && message.test(err.message), JSON.stringify(raw, (_, v: unknown) => v instanceof Uint8Array ? `<${v.byteLength} bytes>` : v))
  }
})

test('an image over the byte limit is InputTooLargeError, inline or by CID', () => {
  const small = createDetrSkillset({ images: { ...DEFAULT_IMAGE_LIMITS, maxBytes: 1000 } })
  assert.throws(() => small.parseInput({ image: cat }), InputTooLargeError)
  assert.throws(() => small.parseInput({ image: { cid: CID, size: 1001 } }), InputTooLargeError)
  assert.throws(() => createDetrSkillset({ maxBatchPixels: 0 }), RangeError)
})

test('the worker\'s image hooks list the image and put fetched bytes in its place, checked', () => {
  const ref = detrSkillset.parseInput({ image: { cid: CID, size: cat.byteLength }, threshold: 0.2 })
  assert.deepEqual(detrSkillset.images.list(ref), [{ cid: CID, size: cat.byteLength }])
  assert.deepEqual(detrSkillset.images.withBytes(ref, [cat]), { image: { bytes: cat }, threshold: 0.2, topK: 100 })
  assert.throws(() => detrSkillset.images.withBytes(ref, []), InvalidInputError)
  assert.throws(() => detrSkillset.images.withBytes(ref, [cat, cat]), InvalidInputError)
  assert.throws(() => detrSkillset.images.withBytes(ref, [noise(50)]), InvalidInputError)
})

test('any detr inputs batch together, one cost unit per image; the sample input is a real image', async () => {
  const a = detrSkillset.parseInput({ image: cat, threshold: 0.9 })
  const b = detrSkillset.parseInput({ image: photo('rocket.webp'), top_k: 3 })
  assert.equal(detrSkillset.batchKey(a), detrSkillset.batchKey(b))
  assert.equal(detrSkillset.cost(a), 1)
  const sample = detrSkillset.parseInput(detrSkillset.sampleInput?.(64))
  const bytes = 'bytes' in sample.image ? sample.image.bytes : assert.fail('the sample image is inline')
  const rgb = await decodeImage(bytes, DEFAULT_IMAGE_LIMITS)
  assert.deepEqual([rgb.width, rgb.height], [160, 120])
  assert.ok(new Set(rgb.data).size > 100, 'not a flat image')
})

const output: DetrOutput = {
  detections: [
    { label: 'cat', score: 0.9, box: { xmin: 1.5, ymin: 0, xmax: 100, ymax: 50.25 } },
    { label: 'dining table', score: 0.4, box: { xmin: 0, ymin: 10, xmax: 10, ymax: 10 } }
  ],
  width: 100,
  height: 60
}

test('the output round-trips through its wire form; decode refuses what a worker must not send', () => {
  assert.deepEqual(detrSkillset.decodeOutput(detrSkillset.encodeOutput(output)), output)
  assert.deepEqual(detrSkillset.decodeOutput({ detections: [], width: 1, height: 1 }), { detections: [], width: 1, height: 1 })
  const wire = detrSkillset.encodeOutput(output)
  const det = wire.detections[0] as DetrOutput['detections'][number]
  const bad: unknown[] = [
    { ...wire, extra: 1 },
    { ...wire, width: 0 },
    { ...wire, width: 99 }, // a box reaches x = 100
    { ...wire, detections: [{ ...det, score: 1.1 }] },
    { ...wire, detections: [{ ...det, box: { ...det.box, xmin: -1 } }] },
    { ...wire, detections: [{ ...det, box: { ...det.box, xmin: 101 } }] },
    { ...wire, detections: [{ ...det, box: { ...det.box, ymax: Number.NaN } }] },
    { ...wire, detections: [{ ...det, label: 'x'.repeat(201) }] },
    { ...wire, detections: [wire.detections[1], wire.detections[0]] }, // not best first
    { ...wire, detections: Array(1001).fill({ ...det, score: 0.5 }) }
  ]
  for (const w of bad) assert.throws(() => detrSkillset.decodeOutput(w), ProtocolError)
})
