/**
 * The llava-next runner's prompts (a PromptSource for lm's LmRunner).
 *
 * prepare, when a job starts (a bad image rejects that job only): decode
 * the image within the node's image limits, lay out its anyres tiles from
 * its size (the `image_sizes` transformers.js's generate() would drop),
 * make its pixel values, and tokenize the prompt with its `<image>` token
 * repeated once per image feature, so the prompt's length is the cache's.
 *
 * prefill, for the jobs that join at one step: one vision-encoder run over
 * all their tiles (base images and grids, concatenated), then per job the
 * features packed (anyres.ts), the text embedded through embed_tokens, the
 * packed features written over the image positions, and the decoder's
 * prefill on those embeddings, alone and unpadded as lm's.
 */
import type * as ort from 'onnxruntime-node'
import { InferenceError, InvalidInputError } from '../../src/errors.ts'
import type { ImageLimits } from '../../src/interfaces/index.ts'
import { decodeImage, inlineBytes } from '../image/index.ts'
import type { KvView } from '../lm/model.ts'
import type { PreparedPrompt, PromptSource } from '../lm/runner.ts'
import type { AnyresLayout } from './anyres.ts'
import { anyresLayout, packImageFeatures } from './anyres.ts'
import type { LlavaNextInput } from './input.ts'
import type { LoadedLlavaNext } from './model.ts'
import { anyresPixels } from './pixels.ts'

export interface ImageState {
  layout: AnyresLayout
  /** [layout.tiles, 3, tile, tile] */
  pixels: Float32Array
  /** Where the image's tokens begin in the prompt. */
  at: number
}

export class LlavaNextPrompts implements PromptSource<LlavaNextInput, ImageState> {
  /** Vision-encoder runs and the tiles they took, for tests and benchmarks. */
  readonly stats = { visionRuns: 0, tiles: 0 }
  private readonly m: LoadedLlavaNext
  private readonly limits: ImageLimits

  constructor (m: LoadedLlavaNext, limits: ImageLimits) {
    this.m = m
    this.limits = limits
  }

  async prepare (input: LlavaNextInput, signal: AbortSignal): Promise<PreparedPrompt<ImageState>> {
    const what = 'llava-next input: image'
    const image = await decodeImage(inlineBytes(input.image, what), this.limits, what)
    signal.throwIfAborted()
    const layout = anyresLayout({ height: image.height, width: image.width }, this.m.geometry)
    const text = this.m.lm.encode(input)
    const id = this.m.imageTokenId
    const at = text.indexOf(id)
    if (at === -1 || text.indexOf(id, at + 1) !== -1) {
      throw new InvalidInputError(`llava-next input: the prompt gave ${text.filter((t) => t === id).length} image tokens, not one: write <image> once, outside other tags`)
    }
    const ids = [...text.slice(0, at), ...new Array<number>(layout.tokens).fill(id), ...text.slice(at + 1)]
    const pixels = await anyresPixels(image, layout, this.m.geometry.tileSize, this.m.norm)
    return { ids, cost: ids.length + input.maxNewTokens, state: { layout, pixels, at } }
  }

  async prefill (prompts: ReadonlyArray<PreparedPrompt<ImageState>>): Promise<Array<{ logits: Float32Array, kv: KvView }>> {
    const { tileSize: T } = this.m.geometry
    const perTile = 3 * T * T
    const tiles = prompts.reduce((n, p) => n + p.state.layout.tiles, 0)
    const all = new Float32Array(tiles * perTile)
    let offset = 0
    for (const p of prompts) {
      all.set(p.state.pixels, offset * perTile)
      offset += p.state.layout.tiles
    }
    const out = await this.m.vision.run({ pixel_values: new this.m.Tensor('float32', all, [tiles, 3, T, T]) })
    this.stats.visionRuns++
    this.stats.tiles += tiles
    const features = out.image_features as ort.Tensor
    const { featuresPerTile: per, hidden } = this.m
    if (features.dims.join() !== [tiles, per, hidden].join()) {
      throw new InferenceError(`the vision encoder gave image_features of ${features.dims.join('×')}, expected ${tiles}×${per}×${hidden}`)
    }
    const newline = (out.image_newline as ort.Tensor).data as Float32Array
    const data = features.data as Float32Array
    const results: Array<{ logits: Float32Array, kv: KvView }> = []
    offset = 0
    for (const p of prompts) {
      const { layout, at } = p.state
      const packed = packImageFeatures(data.subarray(offset * per * hidden, (offset + layout.tiles) * per * hidden), layout, hidden, newline)
      offset += layout.tiles
      const embeds = (await this.m.lm.embed(p.ids)).slice()
      embeds.set(packed, at * hidden)
      results.push(await this.m.lm.prefill({ embeds, length: p.ids.length }))
    }
    return results
  }
}
