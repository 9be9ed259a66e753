/**
 * Loading a LLaVA-NeXT model in the inference thread. transformers.js 4.3
 * has no `llava_next` (no model type, no image processor), but it loads a
 * llava model's three sessions (`vision_encoder`, `embed_tokens`,
 * `decoder_model_merged`) through AutoModelForImageTextToText when the
 * config says `llava`: so config.json is read, checked, and handed back
 * with that model type. Files come through transformers.js, that is
 * through the content store's reader in `env.customCache`, like lm's.
 * preprocessor_config.json is read through AutoImageProcessor, which falls
 * back to its base class for LlavaNextImageProcessor; only its raw fields
 * are used. The anyres geometry and the
 * feature packing are ours (anyres.ts, pixels.ts), and the decoder is
 * driven by lm's LoadedLm.
 *
 * What a model must have: `model_type: llava_next`, a decoder
 * `text_config`, `vision_feature_select_strategy: default`, square tiles
 * with `size` equal to `crop_size` and to `vision_config.image_size`, and a
 * vision encoder with an `image_newline` output (see
 * src/models/generate/llava/graph.ts). A `llava_onevision` config is
 * refused: its anyres packing downscales large grids, which is not here.
 */
import type * as ort from 'onnxruntime-node'
import { z } from 'zod'
import type { ExecutionPlan, ModelLocation } from '../../src/interfaces/index.ts'
import { ModelLoadError } from '../../src/errors.ts'
import { pipelineOptions } from '../embed/runner.ts'
import type { TfTokenizer } from '../lm/model.ts'
import { importRuntime, LoadedLm } from '../lm/model.ts'
import { zodProblems } from '../lm/input.ts'
import type { AnyresConfig } from './anyres.ts'
import { maxImageTokens } from './anyres.ts'
import type { Normalisation } from './pixels.ts'

export interface LoadedLlavaNext {
  lm: LoadedLm
  vision: ort.InferenceSession
  geometry: AnyresConfig
  norm: Normalisation
  imageTokenId: number
  /** Features per tile and their width (the decoder's hidden size). */
  featuresPerTile: number
  hidden: number
  Tensor: typeof ort.Tensor
}

const side = z.number().int().min(1).max(4096)
const three = z.tuple([z.number(), z.number(), z.number()])
const configSchema = z.object({
  model_type: z.string(),
  image_token_index: z.number().int().nonnegative(),
  image_grid_pinpoints: z.array(z.tuple([side, side])).min(1).max(64),
  vision_feature_select_strategy: z.string().optional(),
  vision_config: z.object({ image_size: side, patch_size: side }),
  text_config: z.record(z.string(), z.unknown())
})
const preprocessorSchema = z.object({
  crop_size: z.object({ height: side, width: side }),
  size: z.union([z.object({ shortest_edge: side }), z.object({ height: side, width: side })]),
  image_mean: three,
  image_std: three.refine((v) => v.every((x) => x > 0), 'std must be positive'),
  rescale_factor: z.number().positive().optional(),
  image_grid_pinpoints: z.array(z.tuple([side, side])).optional()
})

/** The geometry and normalisation a config pair describes; ModelLoadError for what this skillset does not run. */
export function llavaNextGeometry (rawConfig: unknown, rawPreprocessor: unknown, id: string): { geometry: AnyresConfig, norm: Normalisation, imageTokenId: number, textConfig: Record<string, unknown> } {
  const c = configSchema.safeParse(rawConfig)
  if (!c.success) throw new ModelLoadError(`${id}: config.json is not a LLaVA-NeXT config: ${zodProblems(c.error)}`)
  const config = c.data
  if (config.model_type === 'llava_onevision') throw new ModelLoadError(`${id} is LLaVA-OneVision: its anyres packing (grids past max_num_patches downscaled) is not implemented by the llava-next skillset`)
  if (config.model_type !== 'llava_next') throw new ModelLoadError(`${id}: model_type is "${config.model_type}", the llava-next skillset runs llava_next models`)
  if ((config.vision_feature_select_strategy ?? 'default') !== 'default') throw new ModelLoadError(`${id}: vision_feature_select_strategy "${String(config.vision_feature_select_strategy)}" is not supported (only "default": the class position dropped)`)
  const p = preprocessorSchema.safeParse(rawPreprocessor)
  if (!p.success) throw new ModelLoadError(`${id}: preprocessor_config.json is not a LlavaNextImageProcessor's: ${zodProblems(p.error)}`)
  const pre = p.data
  const tile = pre.crop_size.height
  const resized = 'shortest_edge' in pre.size ? pre.size.shortest_edge : Math.min(pre.size.height, pre.size.width)
  if (pre.crop_size.width !== tile || resized !== tile || config.vision_config.image_size !== tile) {
    throw new ModelLoadError(`${id}: tiles must be square and one size: crop_size ${pre.crop_size.height}×${pre.crop_size.width}, size ${resized}, vision image_size ${config.vision_config.image_size}`)
  }
  if (tile % config.vision_config.patch_size !== 0) throw new ModelLoadError(`${id}: a ${tile}-pixel tile is not a whole number of ${config.vision_config.patch_size}-pixel patches`)
  const pinpoints = pre.image_grid_pinpoints ?? config.image_grid_pinpoints
  if (pinpoints.some(([h, w]) => h % tile !== 0 || w % tile !== 0)) throw new ModelLoadError(`${id}: every grid pinpoint must be a multiple of the ${tile}-pixel tile`)
  return {
    geometry: { gridPinpoints: pinpoints, tileSize: tile, patchSize: config.vision_config.patch_size },
    norm: { mean: pre.image_mean, std: pre.image_std, rescale: pre.rescale_factor ?? 1 / 255 },
    imageTokenId: config.image_token_index,
    textConfig: config.text_config
  }
}

type Tf = Awaited<ReturnType<typeof importRuntime>>['tf']

/**
 * preprocessor_config.json's raw fields, read through transformers.js (so
 * through the store reader). Its AutoImageProcessor knows no
 * LlavaNextImageProcessor and warns that it falls back to its base class,
 * asking to report it; that fallback is what this wants (the raw fields,
 * `.config`), so warnings are off for this one call and put back after.
 */
async function readProcessorConfig (tf: Tf, id: string): Promise<{ config: unknown }> {
  const level = tf.env.logLevel
  tf.env.logLevel = tf.LogLevel.ERROR
  try {
    return await tf.AutoImageProcessor.from_pretrained(id) as unknown as { config: unknown }
  } finally {
    tf.env.logLevel = level
  }
}

interface TfModel {
  sessions: Record<string, ort.InferenceSession>
  generation_config?: Record<string, unknown> | null
  dispose(): Promise<unknown>
}

/** Load a LLaVA-NeXT model for `plan`; `maxTokens` is the skillset's bound on image tokens (its cost assumes it). */
export async function loadLlavaNext (model: ModelLocation, plan: ExecutionPlan, maxTokens: number): Promise<LoadedLlavaNext> {
  let tfModel: TfModel | undefined
  try {
    const { Tensor, tf } = await importRuntime(model)
    const config = await tf.AutoConfig.from_pretrained(model.id)
    const processor = await readProcessorConfig(tf, model.id)
    const g = llavaNextGeometry(config, processor.config, model.id)
    const most = maxImageTokens(g.geometry)
    if (most > maxTokens) throw new ModelLoadError(`${model.id}: an image can become ${most} tokens, more than the ${maxTokens} the llava-next skillset's cost assumes (maxImageTokens): raise it`)
    // transformers.js knows llava's sessions, not llava_next's: the same three files.
    const asLlava = new tf.PretrainedConfig({ ...(config as unknown as Record<string, unknown>), model_type: 'llava', architectures: ['LlavaForConditionalGeneration'] })
    tfModel = await tf.AutoModelForImageTextToText.from_pretrained(model.id, { ...pipelineOptions(plan), config: asLlava }) as unknown as TfModel
    const { vision_encoder: vision, embed_tokens: embedTokens, decoder_model_merged: decoder } = tfModel.sessions
    if (vision === undefined || embedTokens === undefined || decoder === undefined) throw new ModelLoadError(`${model.id}: expected the sessions vision_encoder, embed_tokens and decoder_model_merged, got ${Object.keys(tfModel.sessions).join(', ')}`)
    for (const name of ['image_features', 'image_newline']) {
      if (!vision.outputNames.includes(name)) throw new ModelLoadError(`${model.id}: its vision encoder has no ${name} output (outputs: ${vision.outputNames.join(', ')}): the llava-next skillset needs the projected features and image_newline to pack them`)
    }
    const tokenizer = await tf.AutoTokenizer.from_pretrained(model.id) as unknown as TfTokenizer
    const owned = tfModel
    const lm = new LoadedLm(tokenizer, { decoder, embedTokens, config: g.textConfig, generationConfig: owned.generation_config, dispose: async () => await owned.dispose() }, Tensor)
    const per = (g.geometry.tileSize / g.geometry.patchSize) ** 2
    return { lm, vision, geometry: g.geometry, norm: g.norm, imageTokenId: g.imageTokenId, featuresPerTile: per, hidden: lm.shape.hidden, Tensor }
  } catch (err) {
    // Free the sessions a failed load opened; a failure to free them is told with the load's own error.
    const freeing = tfModel === undefined ? '' : await tfModel.dispose().then(() => '', (e: unknown) => ` (and freeing its sessions failed: ${(e as Error).message})`)
    if (err instanceof ModelLoadError && freeing === '') throw err
    throw new ModelLoadError(`cannot load llava-next model "${model.id}" from ${model.localModelPath} (${plan.provider}, ${plan.dtype}): ${(err as Error).message}${freeing}`, { cause: err })
  }
}
