/**
 * Every file of a generated LM, path → bytes, in the layout transformers.js
 * loads with AutoModelForCausalLM and AutoTokenizer:
 *
 *   config.json, generation_config.json, tokenizer.json,
 *   tokenizer_config.json, special_tokens_map.json, onnx/model.onnx (fp32)
 */
import type { LmSize } from './config.ts'
import { LM_SHAPES, LM_SPECIAL_TOKENS, lmGenerationConfig, lmHfConfig, lmParameterCount } from './config.ts'
import { buildByteLevelVocab } from './bpe.ts'
import { buildLmOnnx } from './graph.ts'
import { lmSpecialTokensMapJson, lmTokenizerConfigJson, lmTokenizerJson } from './tokenizer.ts'
import { generateLmWeights } from './weights.ts'

export const LM_ONNX_FILE = 'onnx/model.onnx'

export type LmStep = 'weights' | 'tokenizer' | 'onnx'

function json (v: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v, null, 2) + '\n')
}

/** The files of the LM of `size` generated from `seed`; `onStep` is called before each stage. */
export function lmModelFiles (size: LmSize, seed: number, onStep: (step: LmStep, detail: string) => void = () => {}): { files: Map<string, Uint8Array>, parameters: number } {
  const shape = LM_SHAPES[size]
  if (shape === undefined) throw new RangeError(`unknown generated LM size "${String(size)}"`)
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`)
  const parameters = lmParameterCount(shape)
  onStep('tokenizer', `${shape.vocabSize} tokens`)
  const vocab = buildByteLevelVocab(shape.vocabSize - LM_SPECIAL_TOKENS.length)
  const files = new Map<string, Uint8Array>([
    ['config.json', json(lmHfConfig(shape, size, seed))],
    ['generation_config.json', json(lmGenerationConfig(shape))],
    ['tokenizer.json', json(lmTokenizerJson(vocab, shape.vocabSize))],
    ['tokenizer_config.json', json(lmTokenizerConfigJson(shape.vocabSize, shape.maxPositionEmbeddings))],
    ['special_tokens_map.json', json(lmSpecialTokensMapJson())]
  ])
  onStep('weights', `${parameters} parameters`)
  const weights = generateLmWeights(shape, seed)
  onStep('onnx', LM_ONNX_FILE)
  files.set(LM_ONNX_FILE, buildLmOnnx(weights))
  return { files, parameters }
}
