/**
 * DETR post-processing against values worked out by hand: softmax over the
 * classes with "no object" last, the score as the best real class, the
 * strict threshold, top_k, cxcywh → corners in the original image's pixels,
 * clamping; and DETR preprocessing's sizes and resampling against Python's
 * rules computed by hand.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InferenceError } from '../../src/errors.ts'
import { postprocessDetections } from '../../skillsets/detr/postprocess.ts'
import type { Detection } from '../../skillsets/detr/postprocess.ts'
import { packBatch, parseProcessorConfig, resizeBilinear, resizeOutputSize } from '../../skillsets/detr/preprocess.ts'

const labels = ['cat', 'dog']
const ln = Math.log
// Four queries, classes [cat, dog, no object]:
//  q0 probabilities 0.6 / 0.3 / 0.1 (shifted by 1000: the softmax must subtract the max), box (0.5, 0.5, 0.2, 0.4)
//  q1 0.1 / 0.1 / 0.8: mostly "no object"; its score is 0.1 for cat (the lower id wins the tie)
//  q2 0.1 / 0.7 / 0.2, box (0.9, 0.1, 0.4, 0.4): runs past the right and top edges
//  q3 1/3 each
const logits = [1000 + ln(6), 1000 + ln(3), 1000, 0, 0, ln(8), 0, ln(7), ln(2), 0, 0, 0]
const boxes = [0.5, 0.5, 0.2, 0.4, 0.5, 0.5, 0.1, 0.1, 0.9, 0.1, 0.4, 0.4, 0.25, 0.75, 0.5, 0.5]
const W = 200
const H = 100

function close (got: Detection[], want: Array<[string, number, [number, number, number, number]]>): void {
  assert.equal(got.length, want.length, JSON.stringify(got))
  got.forEach((d, i) => {
    const [label, score, [xmin, ymin, xmax, ymax]] = want[i] as [string, number, [number, number, number, number]]
    assert.equal(d.label, label, `detection ${i}`)
    assert.ok(Math.abs(d.score - score) < 1e-12, `detection ${i} score ${d.score}, want ${score}`)
    for (const [k, v] of Object.entries({ xmin, ymin, xmax, ymax })) assert.ok(Math.abs(d.box[k as keyof Detection['box']] - v) < 1e-9, `detection ${i} ${k} ${d.box[k as keyof Detection['box']]}, want ${v}`)
  })
}

test('threshold 0.5: the two confident queries, best first, boxes in the image\'s pixels and clamped', () => {
  close(postprocessDetections(logits, boxes, { threshold: 0.5, topK: 100, width: W, height: H, labels }), [
    // q2: x (0.9 ∓ 0.2)·200 = 140 … 220 → 200; y (0.1 ∓ 0.2)·100 = -10 → 0 … 30
    ['dog', 0.7, [140, 0, 200, 30]],
    // q0: x (0.5 ∓ 0.1)·200 = 80 … 120; y (0.5 ∓ 0.2)·100 = 30 … 70
    ['cat', 0.6, [80, 30, 120, 70]]
  ])
})

test('a low threshold keeps the unsure queries too; "no object" is never a label; top_k keeps the best', () => {
  const all = postprocessDetections(logits, boxes, { threshold: 0.05, topK: 100, width: W, height: H, labels })
  close(all, [
    ['dog', 0.7, [140, 0, 200, 30]],
    ['cat', 0.6, [80, 30, 120, 70]],
    // q3: x (0.25 ∓ 0.25)·200 = 0 … 100; y (0.75 ∓ 0.25)·100 = 50 … 100
    ['cat', 1 / 3, [0, 50, 100, 100]],
    // q1: x (0.5 ∓ 0.05)·200 = 90 … 110; y 45 … 55
    ['cat', 0.1, [90, 45, 110, 55]]
  ])
  assert.deepEqual(postprocessDetections(logits, boxes, { threshold: 0.05, topK: 2, width: W, height: H, labels }), all.slice(0, 2))
  assert.equal(postprocessDetections(logits, boxes, { threshold: 0, topK: 1, width: W, height: H, labels })[0]?.label, 'dog')
})

test('the threshold is strict, and boxes scale with the original image', () => {
  const at = postprocessDetections(logits, boxes, { threshold: 1 / 3, topK: 100, width: W, height: H, labels })
  // q3's score is exactly 1/3 (three equal logits): equal to the threshold, so dropped.
  assert.deepEqual(at.map((d) => d.label), ['dog', 'cat'])
  assert.equal(postprocessDetections(logits, boxes, { threshold: 0.3333, topK: 100, width: W, height: H, labels }).length, 3)
  assert.equal(postprocessDetections(logits, boxes, { threshold: 0.99, topK: 100, width: W, height: H, labels }).length, 0)
  close(postprocessDetections(logits, boxes, { threshold: 0.5, topK: 100, width: 1000, height: 10, labels }), [
    ['dog', 0.7, [700, 0, 1000, 3]],
    ['cat', 0.6, [400, 3, 600, 7]]
  ])
})

test('outputs of the wrong size or not finite are an InferenceError', () => {
  const opts = { threshold: 0.5, topK: 10, width: W, height: H, labels }
  assert.throws(() => postprocessDetections(logits.slice(1), boxes, opts), InferenceError)
  assert.throws(() => postprocessDetections(logits, boxes.slice(4), opts), InferenceError)
  assert.throws(() => postprocessDetections([NaN, ...logits.slice(1)], boxes, opts), InferenceError)
  assert.throws(() => postprocessDetections(logits, [Infinity, ...boxes.slice(1)], { ...opts, threshold: 0 }), InferenceError)
})

test('resize sizes follow Python\'s get_size_with_aspect_ratio', () => {
  const edges = (shortest: number, longest: number | undefined) => ({ kind: 'edges' as const, shortest, longest })
  // 640×480 at 800/1333: the short side to 800, the long one int(800·640/480) = 1066 (transformers.js gives 1333×999).
  assert.deepEqual(resizeOutputSize(480, 640, edges(800, 1333)), [800, 1066])
  // 451×300 at 96/160: 451/300·96 = 144.3 < 160, so width int(96·451/300) = 144.
  assert.deepEqual(resizeOutputSize(300, 451, edges(96, 160)), [96, 144])
  // Tall: 300×1000 at 96/160 → the long side would pass 160: raw = 160·300/1000 = 48 → 48 × int(48·1000/300) = 160.
  assert.deepEqual(resizeOutputSize(1000, 300, edges(96, 160)), [160, 48])
  // raw = 1333·1/2 = 666.5 rounds half to even (Python's round): 666; the long side int(666.5·2) = 1333.
  assert.deepEqual(resizeOutputSize(1, 2, edges(800, 1333)), [666, 1333])
  // Already at the target: unchanged.
  assert.deepEqual(resizeOutputSize(96, 120, edges(96, 160)), [96, 120])
  assert.deepEqual(resizeOutputSize(100, 200, { kind: 'max', maxHeight: 50, maxWidth: 50 }), [25, 50])
  assert.deepEqual(resizeOutputSize(100, 200, { kind: 'fixed', height: 64, width: 32 }), [64, 32])
})

test('the processor config: DetrImageProcessor keys, Python defaults, refusals', () => {
  const real = parseProcessorConfig({ do_normalize: true, do_pad: true, do_rescale: true, do_resize: true, feature_extractor_type: 'DetrFeatureExtractor', format: 'coco_detection', image_mean: [0.485, 0.456, 0.406], image_std: [0.229, 0.224, 0.225], resample: 2, rescale_factor: 0.00392156862745098, size: { longest_edge: 1333, shortest_edge: 800 } })
  assert.deepEqual(real.resize, { kind: 'edges', shortest: 800, longest: 1333 })
  assert.deepEqual(parseProcessorConfig({ size: 600, max_size: 1000 }).resize, { kind: 'edges', shortest: 600, longest: 1000 })
  assert.deepEqual(parseProcessorConfig({ do_normalize: false, do_rescale: false }).std, [1, 1, 1])
  assert.throws(() => parseProcessorConfig({ resample: 3 }), /bilinear/)
  assert.throws(() => parseProcessorConfig({ size: { shortest_edge: -1 } }), /DetrImageProcessor/)
})

test('bilinear resampling is PIL\'s antialiased triangle filter (worked by hand on a 4×1 image)', () => {
  const img = { width: 4, height: 1, data: Uint8Array.from([0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255]) }
  // Halving: support 2 around centres 1 and 3; weights 3/7, 3/7, 1/7 and 1/7, 3/7, 3/7 → 500/7 = 71.4 and 366.25/1.75 = 209.3.
  assert.deepEqual(Array.from(resizeBilinear(img, 1, 2).data), [71, 71, 71, 209, 209, 209])
  assert.deepEqual(resizeBilinear(img, 1, 4), img)
  const flat = { width: 7, height: 5, data: new Uint8Array(7 * 5 * 3).fill(37) }
  assert.ok(resizeBilinear(flat, 11, 3).data.every((v) => v === 37))
})

test('a batch is padded bottom/right with zeros, the mask 1 on real pixels only', () => {
  const a = { pixels: Float32Array.from({ length: 3 * 2 * 3 }, (_, i) => i + 1), height: 2, width: 3, originalWidth: 3, originalHeight: 2 }
  const b = { pixels: Float32Array.from({ length: 3 * 3 * 1 }, (_, i) => -(i + 1)), height: 3, width: 1, originalWidth: 1, originalHeight: 3 }
  const { pixelValues, pixelMask, height, width } = packBatch([a, b])
  assert.deepEqual([height, width], [3, 3])
  // Image a, channel 0: rows [1 2 3] [4 5 6] [0 0 0]; image b, channel 2: [-7 0 0] [-8 0 0] [-9 0 0].
  assert.deepEqual(Array.from(pixelValues.subarray(0, 9)), [1, 2, 3, 4, 5, 6, 0, 0, 0])
  assert.deepEqual(Array.from(pixelValues.subarray(45, 54)), [-7, 0, 0, -8, 0, 0, -9, 0, 0])
  assert.deepEqual(Array.from(pixelMask, Number), [1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0])
})
