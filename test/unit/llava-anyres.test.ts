/**
 * LLaVA-NeXT's anyres geometry against cases worked out by hand from the
 * reference formulas (transformers' select_best_resolution,
 * get_patch_output_size, unpad_image, LlavaNextProcessor's token count).
 * The arithmetic is written out beside each case; where a float edge
 * decides it (3000 · 0.168 = 504.00000000000006, 55 · 48/176 =
 * 14.999999999999998) the Python reference was run on the same numbers.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { AnyresConfig } from '../../skillsets/llava-next/anyres.ts'
import { anyresLayout, gridShape, imageTokenCount, maxImageTokens, packImageFeatures, patchOutputSize, selectBestResolution } from '../../skillsets/llava-next/anyres.ts'
import { anyresPixels } from '../../skillsets/llava-next/pixels.ts'

/** llava-v1.6's: 336-pixel tiles of 14-pixel patches (24 × 24 features), five pinpoints. */
const REAL: AnyresConfig = { gridPinpoints: [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]], tileSize: 336, patchSize: 14 }
/** The generated tiny model's: 32-pixel tiles of 8-pixel patches (4 × 4 features). */
const TINY: AnyresConfig = { gridPinpoints: [[32, 64], [64, 32], [64, 64], [96, 32], [32, 96]], tileSize: 32, patchSize: 8 }

test('square 500×500: 672×672 keeps all 250000 pixels → 2×2 grid, nothing unpadded, 576 + 48·49 tokens', () => {
  // 336×672: scale 0.672 → 336·336 = 112896; 672×672: scale 1.344 → min(672², 500²) = 250000.
  const size = { height: 500, width: 500 }
  assert.deepEqual(selectBestResolution(size, REAL.gridPinpoints), { height: 672, width: 672 })
  assert.deepEqual(gridShape(size, REAL), { rows: 2, cols: 2 })
  const l = anyresLayout(size, REAL)
  assert.equal(l.tiles, 5)
  assert.deepEqual(l.kept, { top: 0, bottom: 48, left: 0, right: 48 })
  assert.equal(l.tokens, 2928)
  assert.equal(imageTokenCount(size, REAL), 2928)
})

test('wide 800×400 (2:1): 336×672 and 672×672 both keep 225792 pixels, 336×672 wastes none → 1×2', () => {
  const size = { height: 400, width: 800 }
  assert.deepEqual(selectBestResolution(size, REAL.gridPinpoints), { height: 336, width: 672 })
  assert.deepEqual(patchOutputSize(size, { height: 336, width: 672 }), { height: 336, width: 672 })
  const l = anyresLayout(size, REAL)
  assert.equal(l.tiles, 3)
  // aspect 2 = grid aspect 48/24: the width branch, new width 800 · 24/400 = 48, no padding.
  assert.deepEqual(l.kept, { top: 0, bottom: 24, left: 0, right: 48 })
  assert.equal(l.tokens, 576 + 24 * 49)
})

test('tall 300×900 (1:3): 1008×336 keeps all 270000 pixels → 3×1, 576 + 72·25 tokens', () => {
  // 672×336 and 672×672: scale 0.7467 → 224·672 = 150528; 1008×336: scale 1.12 → min(336·1008, 270000).
  const size = { height: 900, width: 300 }
  assert.deepEqual(gridShape(size, REAL), { rows: 3, cols: 1 })
  const l = anyresLayout(size, REAL)
  assert.equal(l.tiles, 4)
  assert.deepEqual(l.kept, { top: 0, bottom: 72, left: 0, right: 24 })
  assert.equal(l.tokens, 2376)
})

test('tiny 10×10: every pinpoint keeps its 100 pixels, 336×672 wastes least; the grid is unpadded to 24×24', () => {
  const size = { height: 10, width: 10 }
  assert.deepEqual(selectBestResolution(size, REAL.gridPinpoints), { height: 336, width: 672 })
  // resized to fit: scale_w 67.2 ≥ scale_h 33.6 → height 336, width ceil(10 · 33.6) = 336.
  assert.deepEqual(patchOutputSize(size, { height: 336, width: 672 }), { height: 336, width: 336 })
  const l = anyresLayout(size, REAL)
  // aspect 1 ≤ 2: new width 10 · 24/10 = 24, padding (48 − 24) // 2 = 12 on each side.
  assert.deepEqual(l.kept, { top: 0, bottom: 24, left: 12, right: 36 })
  assert.equal(l.tokens, 576 + 24 * 25)
})

test('large 4000×3000: 672×672, resized to 672×505 (the reference\'s ceil of 504.00000000000006), 36 of 48 rows kept', () => {
  const size = { height: 3000, width: 4000 }
  assert.deepEqual(selectBestResolution(size, REAL.gridPinpoints), { height: 672, width: 672 })
  assert.deepEqual(patchOutputSize(size, { height: 672, width: 672 }), { height: 505, width: 672 })
  const l = anyresLayout(size, REAL)
  // aspect 4/3 > 1: new height 3000 · 48/4000 = 36, padding (48 − 36) // 2 = 6.
  assert.deepEqual(l.kept, { top: 6, bottom: 42, left: 0, right: 48 })
  assert.equal(l.tokens, 576 + 36 * 49)
})

test('an odd padding difference keeps one row more than the new height (4000×2920: new 35, keeps 36)', () => {
  // new height int(2920 · 48/4000) = int(35.04) = 35, padding (48 − 35) // 2 = 6, kept 48 − 12 = 36.
  const l = anyresLayout({ height: 2920, width: 4000 }, REAL)
  assert.deepEqual(l.kept, { top: 6, bottom: 42, left: 0, right: 48 })
})

test('round(x, 7) before int(): 176×55 gives new height 15, not 14 (55 · 48/176 = 14.999999999999998)', () => {
  // 336×672 (all pinpoints keep 9680 pixels; least waste); aspect 3.2 > 2; new height 15, padding (24 − 15) // 2 = 4, kept 16.
  const l = anyresLayout({ height: 55, width: 176 }, REAL)
  assert.deepEqual(l.kept, { top: 4, bottom: 20, left: 0, right: 48 })
  assert.equal(l.tokens, 576 + 16 * 49)
})

test('the tiny model\'s geometry: square, wide, tall, a sliver, and the most tokens', () => {
  assert.equal(imageTokenCount({ height: 48, width: 48 }, TINY), 16 + 8 * 9) // 64×64, 2×2, nothing cut
  assert.equal(imageTokenCount({ height: 90, width: 30 }, TINY), 16 + 12 * 5) // 96×32, 3×1
  // 40×100: 32×96 keeps 3200 pixels (64×64: 64·25 = 1600); width 100 · 4/40 = 10 of 12, padding 1.
  const wide = anyresLayout({ height: 40, width: 100 }, TINY)
  assert.deepEqual([wide.rows, wide.cols, wide.kept.left, wide.kept.right], [1, 3, 1, 11])
  assert.equal(wide.tokens, 16 + 4 * 11)
  // 7×500: 32×96, new height int(7 · 12/500) = 0: no row survives, only the base tile's 16.
  assert.equal(imageTokenCount({ height: 7, width: 500 }, TINY), 16)
  // The largest: 64×64 kept whole, 8 rows of 8 + 1.
  assert.equal(maxImageTokens(TINY), 16 + 8 * 9)
  // 672×672: 48·49 = 2352 beats 1008×336: 72·25 = 1800 and 336×1008: 24·73 = 1752.
  assert.equal(maxImageTokens(REAL), 576 + 48 * 49)
})

test('packing: the base tile, then the grid row by row across tiles, cut to the kept columns, a newline per row', () => {
  // 40×100 in the tiny geometry: tiles 0 (base) and 1..3 in one row; each value is tile·100 + patch index.
  const l = anyresLayout({ height: 40, width: 100 }, TINY)
  const features = Float32Array.from({ length: l.tiles * 16 }, (_, i) => Math.floor(i / 16) * 100 + (i % 16))
  const packed = packImageFeatures(features, l, 1, Float32Array.of(-1))
  assert.equal(packed.length, l.tokens)
  assert.deepEqual([...packed.subarray(0, 16)], Array.from({ length: 16 }, (_, i) => i))
  // Row 0 of the patch grid, columns 1..10: tile 1's patches 1-3, tile 2's 0-3, tile 3's 0-2, then the newline.
  assert.deepEqual([...packed.subarray(16, 27)], [101, 102, 103, 200, 201, 202, 203, 300, 301, 302, -1])
  // Row 1: the second patch row of each tile (indices 4..7).
  assert.deepEqual([...packed.subarray(27, 38)], [105, 106, 107, 204, 205, 206, 207, 304, 305, 306, -1])
  assert.deepEqual([...packed.subarray(49, 60)], [113, 114, 115, 212, 213, 214, 215, 312, 313, 314, -1])
  assert.throws(() => packImageFeatures(features.subarray(16), l, 1, Float32Array.of(-1)), RangeError)
})

test('pixels: the base image first, then tiles of the centre-padded resize, padding black before normalising', async () => {
  // A red 10×10 image in the tiny geometry: 32×64, resized to 32×32 and pasted 16 pixels from the left.
  const image = { width: 10, height: 10, data: new Uint8Array(300).map((_, i) => i % 3 === 0 ? 255 : 0) }
  const l = anyresLayout({ height: 10, width: 10 }, TINY)
  assert.deepEqual([l.rows, l.cols], [1, 2])
  const px = await anyresPixels(image, l, 32, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], rescale: 1 / 255 })
  assert.equal(px.length, 3 * 3 * 32 * 32)
  const at = (tile: number, c: number, y: number, x: number): number => px[((tile * 3 + c) * 32 + y) * 32 + x] as number
  assert.equal(at(0, 0, 5, 5), 1) // base: red everywhere
  assert.equal(at(0, 1, 5, 5), -1)
  assert.equal(at(1, 0, 5, 10), -1) // tile 1, columns 0-15: padding (black)
  assert.equal(at(1, 0, 5, 20), 1) // columns 16-31: the image
  assert.equal(at(2, 0, 5, 8), 1) // tile 2, canvas columns 32-47: the image
  assert.equal(at(2, 0, 5, 20), -1) // canvas columns 48-63: padding
  assert.equal(at(2, 2, 5, 8), -1) // blue of red is 0
})
