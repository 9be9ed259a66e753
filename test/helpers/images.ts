/**
 * Images for tests: the real photographs under test/fixtures/images, and
 * broken ones built byte by byte (truncated files, decompression bombs).
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { deflateSync } from 'node:zlib'
import { encodePng, PNG_SIGNATURE, pngChunk, pngHeader } from '../../skillsets/image/png.ts'

const here = dirname(fileURLToPath(import.meta.url))
export const PHOTOS_DIR = join(here, '..', 'fixtures', 'images')

/** A real photograph from test/fixtures/images (see its README for sources and licences). */
export function photo (name: 'chelsea.jpg' | 'coffee.jpg' | 'rocket.webp'): Uint8Array {
  return new Uint8Array(readFileSync(join(PHOTOS_DIR, name)))
}

/** A valid 8-bit greyscale PNG of `width` × `height` pixels, every pixel `value`. */
export function greyPng (width: number, height: number, value = 0): Uint8Array {
  const raw = Buffer.alloc((width + 1) * height, value)
  for (let y = 0; y < height; y++) raw[y * (width + 1)] = 0
  return encodePng(width, height, 0, raw)
}

/**
 * A decompression bomb: a PNG of a few hundred bytes whose header claims a
 * `side` × `side` canvas (its data stream covers only the first rows).
 */
export function pngBomb (side = 100_000): Uint8Array {
  const rows = Buffer.alloc((side + 1) * 4)
  return new Uint8Array(Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', pngHeader(side, side, 0)), pngChunk('IDAT', deflateSync(rows, { level: 9 })), pngChunk('IEND', new Uint8Array(0))]))
}

/** The first `keep` of a file's bytes (default: half). */
export function truncated (bytes: Uint8Array, keep = Math.floor(bytes.byteLength / 2)): Uint8Array {
  return bytes.slice(0, keep)
}

/** Seeded bytes that are no image. */
export function noise (n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n)
  let s = seed >>> 0 || 1
  for (let i = 0; i < n; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; out[i] = s & 0xff }
  return out
}
