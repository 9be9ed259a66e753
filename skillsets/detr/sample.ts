/**
 * Synthetic detr input for measuring throughput at start-up: a small PNG
 * (colour gradients, 160×120), the same bytes on every host and run.
 */
import { encodePng } from '../image/png.ts'

export const SAMPLE_WIDTH = 160
export const SAMPLE_HEIGHT = 120

let cached: Uint8Array | undefined

/** An 8-bit RGB PNG of SAMPLE_WIDTH × SAMPLE_HEIGHT (made once). */
export function samplePng (): Uint8Array {
  if (cached !== undefined) return cached
  const stride = SAMPLE_WIDTH * 3 + 1
  const rows = new Uint8Array(stride * SAMPLE_HEIGHT)
  for (let y = 0; y < SAMPLE_HEIGHT; y++) {
    for (let x = 0; x < SAMPLE_WIDTH; x++) {
      const i = y * stride + 1 + x * 3
      rows[i] = (x * 255 / SAMPLE_WIDTH) | 0
      rows[i + 1] = (y * 255 / SAMPLE_HEIGHT) | 0
      rows[i + 2] = ((x + y) * 4) & 0xff
    }
  }
  cached = encodePng(SAMPLE_WIDTH, SAMPLE_HEIGHT, 2, rows)
  return cached
}

/**
 * One image, in the detr wire form. A detr job carries one image (cost 1),
 * whatever cost is asked for: the scheduler batches several jobs.
 */
export function sampleDetrInput (): { image: Uint8Array } {
  return { image: samplePng() }
}
