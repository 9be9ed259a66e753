import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decodeImage, DEFAULT_IMAGE_LIMITS, parseImageSource, sniffImageFormat } from '../../skillsets/image/index.ts'
import { greyPng, noise, photo, pngBomb, truncated } from '../helpers/images.ts'

const limits = DEFAULT_IMAGE_LIMITS

test('real photographs decode to RGB at their stored size', async () => {
  for (const [name, w, h, format] of [['chelsea.jpg', 451, 300, 'jpeg'], ['coffee.jpg', 600, 400, 'jpeg'], ['rocket.webp', 320, 214, 'webp']] as const) {
    const bytes = photo(name)
    assert.equal(sniffImageFormat(bytes), format)
    const img = await decodeImage(bytes, limits)
    assert.equal(img.width, w, name)
    assert.equal(img.height, h, name)
    assert.equal(img.data.byteLength, w * h * 3, name)
    // A photograph is not one flat colour.
    assert.ok(new Set(img.data.subarray(0, 3000)).size > 20, `${name} has varied pixels`)
  }
})

test('greyscale is expanded to three equal channels', async () => {
  const img = await decodeImage(greyPng(5, 3, 200), limits)
  assert.deepEqual([img.width, img.height], [5, 3])
  assert.ok(img.data.every((v) => v === 200))
  assert.equal(img.data.byteLength, 5 * 3 * 3)
})

test('random bytes, a truncated PNG and a truncated JPEG are refused with a clear error', async () => {
  await assert.rejects(decodeImage(noise(4096), limits), (err: Error & { code?: string }) => err.code === 'ERR_INVALID_INPUT' && /not a PNG, JPEG or WebP/.test(err.message))
  await assert.rejects(decodeImage(truncated(greyPng(300, 300, 7), 120), limits), (err: Error & { code?: string }) => err.code === 'ERR_INVALID_INPUT' && /png image/.test(err.message))
  await assert.rejects(decodeImage(truncated(photo('chelsea.jpg')), limits), (err: Error & { code?: string }) => err.code === 'ERR_INVALID_INPUT' && /jpeg image/.test(err.message))
})

test('a decompression bomb is refused from its header, before decoding', async () => {
  const bomb = pngBomb(100_000)
  assert.ok(bomb.byteLength < 2000, `the bomb is ${bomb.byteLength} bytes`)
  const t0 = performance.now()
  await assert.rejects(decodeImage(bomb, limits), (err: Error & { code?: string }) => err.code === 'ERR_INPUT_TOO_LARGE' && /100000×100000/.test(err.message))
  assert.ok(performance.now() - t0 < 2000)
  // A whole, valid PNG over a lowered pixel limit.
  await assert.rejects(decodeImage(greyPng(2000, 2000), { ...limits, maxPixels: 1_000_000 }), (err: Error & { code?: string }) => err.code === 'ERR_INPUT_TOO_LARGE' && /images\.maxPixels/.test(err.message))
  await assert.rejects(decodeImage(greyPng(300, 10), { ...limits, maxSide: 200 }), (err: Error & { code?: string }) => err.code === 'ERR_INPUT_TOO_LARGE' && /images\.maxSide/.test(err.message))
})

test('image sources: bytes or { cid, size }, bounded', () => {
  const bytes = photo('rocket.webp')
  assert.deepEqual(parseImageSource(bytes, limits), { bytes })
  const cid = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
  assert.deepEqual(parseImageSource({ cid, size: 10 }, limits), { cid, size: 10 })
  assert.throws(() => parseImageSource(bytes, { maxBytes: 100 }), { code: 'ERR_INPUT_TOO_LARGE' })
  assert.throws(() => parseImageSource({ cid, size: 1e9 }, limits), { code: 'ERR_INPUT_TOO_LARGE' })
  assert.throws(() => parseImageSource({ cid: 'nope', size: 10 }, limits), { code: 'ERR_INVALID_INPUT' })
  assert.throws(() => parseImageSource({ cid, size: 10, extra: 1 }, limits), { code: 'ERR_INVALID_INPUT' })
  assert.throws(() => parseImageSource('a string', limits), { code: 'ERR_INVALID_INPUT' })
  assert.throws(() => parseImageSource(new Uint8Array(0), limits), { code: 'ERR_INVALID_INPUT' })
  assert.throws(() => parseImageSource(noise(64), limits), { code: 'ERR_INVALID_INPUT' })
})

test('EXIF orientation is applied: a photo stored sideways decodes upright', async () => {
  const sharp = (await import('sharp')).default
  // 451×300 stored, orientation 6 (rotate 90° clockwise to view): upright it is 300×451.
  const sideways = new Uint8Array(await sharp(photo('chelsea.jpg')).withMetadata({ orientation: 6 }).jpeg().toBuffer())
  const img = await decodeImage(sideways, limits)
  assert.deepEqual([img.width, img.height], [300, 451])
  const plain = await decodeImage(photo('chelsea.jpg'), limits)
  // The upright image's top-right corner is the stored image's top-left.
  const at = (im: { width: number, data: Uint8Array }, x: number, y: number): number[] => Array.from(im.data.subarray((y * im.width + x) * 3, (y * im.width + x) * 3 + 3))
  const diff = at(img, 299, 0).map((v, i) => Math.abs(v - at(plain, 0, 0)[i]!))
  assert.ok(Math.max(...diff) < 40, `corner ${at(img, 299, 0)} vs ${at(plain, 0, 0)}`)
})
