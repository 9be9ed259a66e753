/**
 * Every file of a generated LLaVA-NeXT-shaped model, path → bytes:
 *
 *   config.json, generation_config.json, preprocessor_config.json,
 *   processor_config.json, tokenizer.json, tokenizer_config.json,
 *   special_tokens_map.json, onnx/vision_encoder.onnx,
 *   onnx/embed_tokens.onnx, onnx/decoder_model_merged.onnx (fp32)
 *
 * The tokenizer is the lm generator's (byte-level BPE, ChatML) with
 * `<image>` added as a special token, one id past the text vocabulary.
 */
import { buildByteLevelVocab } from '../lm/bpe.ts'
import { LM_SPECIAL_TOKENS, lmParameterCount } from '../lm/config.ts'
import { buildLmOnnx } from '../lm/graph.ts'
import { lmSpecialTokensMapJson, lmTokenizerConfigJson, lmTokenizerJson } from '../lm/tokenizer.ts'
import type { LlavaSize } from './config.ts'
import { IMAGE_TOKEN, LLAVA_SHAPES, llavaGenerationConfig, llavaHfConfig, llavaParameterCount, llavaPreprocessorConfig, llavaProcessorConfig, llavaSpecialIds } from './config.ts'
import { buildEmbedTokensOnnx, buildVisionEncoderOnnx } from './graph.ts'
import { generateLlavaWeights } from './weights.ts'

export const LLAVA_ONNX_FILES = Object.freeze({
  visionEncoder: 'onnx/vision_encoder.onnx',
  embedTokens: 'onnx/embed_tokens.onnx',
  decoder: 'onnx/decoder_model_merged.onnx'
})

export type LlavaStep = 'weights' | 'tokenizer' | 'onnx'

function json (v: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v, null, 2) + '\n')
}

const tokenFlags = (content: string): Record<string, unknown> =>
  ({ content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })

/** The files of the LLaVA-NeXT-shaped model of `size` generated from `seed`; `onStep` is called before each stage. */
export function llavaModelFiles (size: LlavaSize, seed: number, onStep: (step: LlavaStep, detail: string) => void = () => {}): { files: Map<string, Uint8Array>, parameters: number } {
  const shape = LLAVA_SHAPES[size]
  if (shape === undefined) throw new RangeError(`unknown generated llava-next size "${String(size)}"`)
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`)
  const parameters = llavaParameterCount(shape, lmParameterCount(shape.text))
  const textVocab = shape.text.vocabSize - 1
  const ids = llavaSpecialIds(shape)
  onStep('tokenizer', `${textVocab} tokens + ${IMAGE_TOKEN}`)
  const tokenizer = lmTokenizerJson(buildByteLevelVocab(textVocab - LM_SPECIAL_TOKENS.length), textVocab)
  tokenizer.added_tokens = [...(tokenizer.added_tokens as unknown[]), { id: ids.image, ...tokenFlags(IMAGE_TOKEN) }]
  const tokenizerConfig = lmTokenizerConfigJson(textVocab, shape.text.maxPositionEmbeddings)
  tokenizerConfig.added_tokens_decoder = { ...(tokenizerConfig.added_tokens_decoder as Record<string, unknown>), [String(ids.image)]: tokenFlags(IMAGE_TOKEN) }
  tokenizerConfig.additional_special_tokens = [...(tokenizerConfig.additional_special_tokens as string[]), IMAGE_TOKEN]
  tokenizerConfig.processor_class = 'LlavaNextProcessor'
  const specialTokens = lmSpecialTokensMapJson()
  specialTokens.additional_special_tokens = [...(specialTokens.additional_special_tokens as string[]), IMAGE_TOKEN]
  const files = new Map<string, Uint8Array>([
    ['config.json', json(llavaHfConfig(shape, size, seed))],
    ['generation_config.json', json(llavaGenerationConfig(shape))],
    ['preprocessor_config.json', json(llavaPreprocessorConfig(shape))],
    ['processor_config.json', json(llavaProcessorConfig(shape))],
    ['tokenizer.json', json(tokenizer)],
    ['tokenizer_config.json', json(tokenizerConfig)],
    ['special_tokens_map.json', json(specialTokens)]
  ])
  onStep('weights', `${parameters} parameters`)
  const weights = generateLlavaWeights(shape, seed)
  onStep('onnx', LLAVA_ONNX_FILES.visionEncoder)
  files.set(LLAVA_ONNX_FILES.visionEncoder, buildVisionEncoderOnnx(weights))
  onStep('onnx', LLAVA_ONNX_FILES.embedTokens)
  files.set(LLAVA_ONNX_FILES.embedTokens, buildEmbedTokensOnnx(weights))
  onStep('onnx', LLAVA_ONNX_FILES.decoder)
  files.set(LLAVA_ONNX_FILES.decoder, buildLmOnnx(weights.text, {
    inputsEmbeds: true,
    graphName: 'llava_next_decoder_fp32',
    description: `decoder of the LLaVA-NeXT-shaped model (Qwen2-shaped, ${shape.text.numHiddenLayers} layers, hidden ${shape.text.hiddenSize}, vocab ${shape.text.vocabSize}) taking inputs_embeds, seeded random weights (seed ${seed}), fp32`
  }))
  return { files, parameters }
}
