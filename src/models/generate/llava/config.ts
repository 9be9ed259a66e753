/**
 * The shape of the generated LLaVA-NeXT-shaped model (a CLIP-like vision
 * tower, LLaVA's two-layer projector, a Qwen2-shaped decoder) and the
 * Hugging Face files that describe it: config.json (`llava_next`),
 * preprocessor_config.json (LlavaNextImageProcessor), processor_config.json,
 * generation_config.json.
 *
 * Tiles are 32 pixels of 8-pixel patches (16 features a tile), so the
 * largest image (a 2 × 2 grid) costs 5 tiles of 16 patches on the CPU.
 */
import type { LmShape } from '../lm/config.ts'
import { LM_SHAPES, lmGenerationConfig, lmHfConfig, lmSpecialIds } from '../lm/config.ts'

export type LlavaSize = 'tiny'
export const LLAVA_SIZES: readonly LlavaSize[] = Object.freeze(['tiny'])

export interface VisionShape {
  hiddenSize: number
  numHiddenLayers: number
  numAttentionHeads: number
  intermediateSize: number
  /** Tile side in pixels (vision_config.image_size, crop_size). */
  imageSize: number
  patchSize: number
  layerNormEps: number
  initializerRange: number
}

export interface LlavaShape {
  vision: VisionShape
  /** The decoder; its vocabulary is the text vocabulary plus `<image>` (the last id). */
  text: LmShape
  /** [height, width] resolutions of the tiled image. */
  gridPinpoints: ReadonlyArray<readonly [number, number]>
}

/** The image token, one id past the text tokenizer's own vocabulary. */
export const IMAGE_TOKEN = '<image>'

/** CLIP's normalisation, which LLaVA-NeXT's processor uses. */
export const CLIP_MEAN = Object.freeze([0.48145466, 0.4578275, 0.40821073] as const)
export const CLIP_STD = Object.freeze([0.26862954, 0.26130258, 0.27577711] as const)

export const LLAVA_SHAPES: Readonly<Record<LlavaSize, Readonly<LlavaShape>>> = Object.freeze({
  tiny: Object.freeze({
    vision: Object.freeze({ hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64, imageSize: 32, patchSize: 8, layerNormEps: 1e-5, initializerRange: 0.2 }),
    text: Object.freeze({ ...LM_SHAPES.tiny, vocabSize: LM_SHAPES.tiny.vocabSize + 1 }),
    // LLaVA-v1.6's pinpoints, scaled from 336-pixel tiles to 32.
    gridPinpoints: Object.freeze([[32, 64], [64, 32], [64, 64], [96, 32], [32, 96]] as const)
  })
})

/** Ids of a LLaVA shape's special tokens: the text tokenizer's three, then `<image>`. */
export function llavaSpecialIds (s: Readonly<LlavaShape>): { endOfText: number, imStart: number, imEnd: number, image: number } {
  const textVocab = s.text.vocabSize - 1
  return { ...lmSpecialIds(textVocab), image: textVocab }
}

export function llavaParameterCount (s: Readonly<LlavaShape>, textParameters: number): number {
  const v = s.vision
  const h = v.hiddenSize
  const patches = (v.imageSize / v.patchSize) ** 2
  const embeddings = 3 * v.patchSize * v.patchSize * h + h + (patches + 1) * h + 2 * h
  const layer = 4 * (h * h + h) + 2 * h * v.intermediateSize + v.intermediateSize + h + 4 * h
  const t = s.text.hiddenSize
  const projector = h * t + t + t * t + t
  return embeddings + v.numHiddenLayers * layer + projector + t + textParameters
}

/** config.json: LlavaNextForConditionalGeneration with a Qwen2 text_config (a model type transformers.js knows). */
export function llavaHfConfig (s: Readonly<LlavaShape>, size: LlavaSize, seed: number): Record<string, unknown> {
  const ids = llavaSpecialIds(s)
  const text = lmHfConfig(s.text, 'tiny', seed)
  delete text.ipfs_accelerate
  delete text._name_or_path
  const v = s.vision
  return {
    _name_or_path: `ipfs-accelerate/generated-llava-next-${size}`,
    architectures: ['LlavaNextForConditionalGeneration'],
    model_type: 'llava_next',
    image_token_index: ids.image,
    image_grid_pinpoints: s.gridPinpoints,
    // The last layer's hidden states: a 2-layer tower has no use for the penultimate one (llava-v1.6 takes -2 of 24).
    vision_feature_layer: -1,
    vision_feature_select_strategy: 'default',
    projector_hidden_act: 'gelu',
    multimodal_projector_bias: true,
    tie_word_embeddings: false,
    vision_config: {
      model_type: 'clip_vision_model',
      hidden_size: v.hiddenSize,
      intermediate_size: v.intermediateSize,
      num_hidden_layers: v.numHiddenLayers,
      num_attention_heads: v.numAttentionHeads,
      image_size: v.imageSize,
      patch_size: v.patchSize,
      num_channels: 3,
      hidden_act: 'quick_gelu',
      layer_norm_eps: v.layerNormEps
    },
    text_config: { ...text, bos_token_id: ids.endOfText, eos_token_id: ids.imEnd, pad_token_id: ids.endOfText },
    ipfs_accelerate: {
      generator: 'llava-next',
      size,
      seed,
      image_newline: 'an output of onnx/vision_encoder.onnx (no ONNX export of LLaVA-NeXT found ships it apart)',
      note: 'seeded RANDOM weights: the text it writes means nothing'
    }
  }
}

export function llavaGenerationConfig (s: Readonly<LlavaShape>): Record<string, unknown> {
  const ids = llavaSpecialIds(s)
  return { ...lmGenerationConfig(s.text), bos_token_id: ids.endOfText, eos_token_id: [ids.imEnd, ids.endOfText], pad_token_id: ids.endOfText }
}

export function llavaPreprocessorConfig (s: Readonly<LlavaShape>): Record<string, unknown> {
  const side = s.vision.imageSize
  return {
    image_processor_type: 'LlavaNextImageProcessor',
    processor_class: 'LlavaNextProcessor',
    do_resize: true,
    size: { shortest_edge: side },
    resample: 3,
    do_center_crop: true,
    crop_size: { height: side, width: side },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [...CLIP_MEAN],
    image_std: [...CLIP_STD],
    do_pad: true,
    do_convert_rgb: true,
    image_grid_pinpoints: s.gridPinpoints
  }
}

export function llavaProcessorConfig (s: Readonly<LlavaShape>): Record<string, unknown> {
  return { processor_class: 'LlavaNextProcessor', image_token: IMAGE_TOKEN, patch_size: s.vision.patchSize, vision_feature_select_strategy: 'default', num_additional_image_tokens: 1 }
}
