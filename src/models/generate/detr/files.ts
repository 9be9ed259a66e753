/**
 * Every file of a generated detector, path → bytes, in the layout
 * transformers.js loads with AutoModelForObjectDetection and
 * AutoImageProcessor:
 *
 *   config.json, preprocessor_config.json, onnx/model.onnx (fp32)
 */
import type { DetrSize } from './config.ts'
import { DETR_SHAPES, detrHfConfig, detrParameterCount, detrPreprocessorConfig } from './config.ts'
import { buildDetrOnnx } from './graph.ts'
import { generateDetrWeights } from './weights.ts'

export const DETR_ONNX_FILE = 'onnx/model.onnx'

export type DetrStep = 'weights' | 'onnx'

function json (v: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v, null, 2) + '\n')
}

/** The files of the detector of `size` generated from `seed`; `onStep` is called before each stage. */
export function detrModelFiles (size: DetrSize, seed: number, onStep: (step: DetrStep, detail: string) => void = () => {}): { files: Map<string, Uint8Array>, parameters: number } {
  const shape = DETR_SHAPES[size]
  if (shape === undefined) throw new RangeError(`unknown generated detector size "${String(size)}"`)
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`)
  const parameters = detrParameterCount(shape)
  const files = new Map<string, Uint8Array>([
    ['config.json', json(detrHfConfig(shape, size, seed))],
    ['preprocessor_config.json', json(detrPreprocessorConfig(shape))]
  ])
  onStep('weights', `${parameters} parameters`)
  const weights = generateDetrWeights(shape, seed)
  onStep('onnx', DETR_ONNX_FILE)
  files.set(DETR_ONNX_FILE, buildDetrOnnx(weights))
  return { files, parameters }
}
