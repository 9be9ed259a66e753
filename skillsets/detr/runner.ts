/**
 * The detr runner, inside an inference thread. transformers.js loads the
 * model (AutoModelForObjectDetection: the ONNX session, config.json's
 * id2label) and the preprocessor config (AutoImageProcessor), so the files
 * come through the content store's reader in `env.customCache`; the runner
 * does the rest itself, because transformers.js's object-detection pipeline
 * takes one image at a time and resizes differently from Python:
 *
 * 1. each job's image is decoded (sharp, within the node's image limits)
 *    and prepared as Python's DetrImageProcessor would (preprocess.ts); an
 *    image that cannot be decoded becomes that job's Error, in its place in
 *    the returned array, and the other jobs go on;
 * 2. images are prepared a group of about one padded-pixel budget at a
 *    time (so memory stays bounded however many jobs a batch holds); a
 *    group's images run in as few `session.run` calls as the budget allows,
 *    padded bottom/right with zeros to the largest height and width of
 *    their call, with `pixel_mask` 1 on real pixels (similar sizes share a
 *    call, so little is padded);
 * 3. each image's rows of `logits` and `pred_boxes` become its detections
 *    (postprocess.ts), in its original pixels.
 *
 * A model that cannot be told where the padding is runs its images one per
 * call instead, unpadded (logged once at load): one without a `pixel_mask`
 * input, or one whose `pixel_mask` has a fixed height and width (older
 * Optimum exports declare only its batch axis dynamic, so the export's dummy
 * size sticks; transformers.js always sends 64×64 ones, which suggests the
 * Xenova exports are such: not checked here, without hub access). Such a
 * model gets ones of its fixed size.
 */
import type * as ort from 'onnxruntime-node'
import type { ExecutionPlan, ImageLimits, ModelLocation, SkillsetRunner } from '../../src/interfaces/index.ts'
import { InferenceError, ModelLoadError } from '../../src/errors.ts'
import { forComponent } from '../../src/logger.ts'
import { DEFAULT_IMAGE_LIMITS, decodeImage, inlineBytes } from '../image/index.ts'
import { pipelineOptions } from '../embed/runner.ts'
import type { DetrInput } from './input.ts'
import type { DetrOutput } from './codec.ts'
import { postprocessDetections } from './postprocess.ts'
import type { PreparedImage, ProcessorSettings } from './preprocess.ts'
import { packBatch, parseProcessorConfig, prepareImage } from './preprocess.ts'
import { MAX_BATCH_PIXELS } from './constants.ts'

const log = forComponent('ipfs-accelerate:skillset:detr')

/** What `run` gives for each input: its output, or the Error that failed it (that job only). */
export type DetrResult = DetrOutput | Error

export interface DetrRunner extends SkillsetRunner<DetrInput, DetrOutput> {
  run(inputs: DetrInput[]): Promise<DetrResult[]>
  dispose(): Promise<void>
  /** Inference calls and images so far (for tests and benchmarks). */
  readonly stats: { calls: number, images: number }
}

export interface DetrRunnerOptions {
  /** The node's image limits (default DEFAULT_IMAGE_LIMITS). */
  images?: ImageLimits
  /** Padded pixels per inference call (default MAX_BATCH_PIXELS). */
  maxBatchPixels?: number
}

interface TfDetr { sessions: Record<string, ort.InferenceSession | undefined>, config: Record<string, unknown>, dispose(): Promise<unknown> }

/** id2label of config.json as a dense list of `count` labels. Throws ModelLoadError. */
export function labelList (config: Record<string, unknown>, count: number): string[] {
  const raw = config.id2label
  if (typeof raw !== 'object' || raw === null) throw new ModelLoadError('the detr model\'s config.json has no id2label')
  const map = raw as Record<string, unknown>
  return Array.from({ length: count }, (_, i) => {
    const label = map[String(i)]
    if (typeof label !== 'string') throw new ModelLoadError(`the detr model's config.json id2label has no label for class ${i} (the model has ${count} classes besides "no object")`)
    return label
  })
}

/** The size of a named output's last axis from the session's metadata, when it is a number. */
function lastDim (session: ort.InferenceSession, name: string): number | undefined {
  const meta = session.outputMetadata.find((m) => m.name === name)
  if (meta === undefined || !meta.isTensor) return undefined
  const d = meta.shape.at(-1)
  return typeof d === 'number' ? d : undefined
}

/** How the model takes its pixel mask: one per pixel (padding can be masked), fixed at [height, width] (ones only), or not at all. */
type MaskMode = { kind: 'per-pixel' } | { kind: 'fixed', height: number, width: number } | { kind: 'none' }

export function maskMode (session: Pick<ort.InferenceSession, 'inputMetadata'>): MaskMode {
  const meta = session.inputMetadata.find((m) => m.name === 'pixel_mask')
  if (meta === undefined) return { kind: 'none' }
  if (!meta.isTensor || meta.shape.length !== 3) throw new ModelLoadError('the detr model\'s pixel_mask input is not a [batch, height, width] tensor')
  const [, h, w] = meta.shape
  return typeof h === 'number' && typeof w === 'number' ? { kind: 'fixed', height: h, width: w } : { kind: 'per-pixel' }
}

/** The session, mask mode, class count and labels of a loaded model; ModelLoadError for what this runner cannot drive. */
function checkModel (id: string, detr: TfDetr): { session: ort.InferenceSession, mask: MaskMode, classes: number, labels: string[] } {
  const session = detr.sessions.model
  if (session === undefined) throw new ModelLoadError(`the detr model "${id}" has no session named "model"`)
  if (!session.inputNames.includes('pixel_values')) throw new ModelLoadError(`the detr model "${id}" has no input pixel_values`)
  for (const name of ['logits', 'pred_boxes']) if (!session.outputNames.includes(name)) throw new ModelLoadError(`the detr model "${id}" has no output ${name}`)
  const classes = lastDim(session, 'logits') ?? (typeof detr.config.num_labels === 'number' ? detr.config.num_labels + 1 : undefined)
  if (classes === undefined || classes < 2) throw new ModelLoadError(`the detr model "${id}": cannot tell its number of classes (neither its logits' shape nor config.json num_labels)`)
  return { session, mask: maskMode(session), classes, labels: labelList(detr.config, classes - 1) }
}

export async function loadDetrRunner (model: ModelLocation, plan: ExecutionPlan, options: DetrRunnerOptions = {}): Promise<DetrRunner> {
  const t0 = performance.now()
  let detr: TfDetr
  let settings: ProcessorSettings
  let Tensor: typeof ort.Tensor
  try {
    Tensor = (await import('onnxruntime-node')).Tensor
    const tf = await import('@huggingface/transformers')
    tf.env.allowRemoteModels = false
    tf.env.allowLocalModels = true
    tf.env.localModelPath = model.localModelPath
    const processor = await tf.AutoImageProcessor.from_pretrained(model.id) as unknown as { config?: unknown }
    settings = parseProcessorConfig(processor.config, `${model.id}/preprocessor_config.json`)
    detr = await tf.AutoModelForObjectDetection.from_pretrained(model.id, pipelineOptions(plan)) as unknown as TfDetr
  } catch (err) {
    if (err instanceof ModelLoadError) throw err
    throw new ModelLoadError(`cannot load detr model "${model.id}" from ${model.localModelPath} (${plan.provider}, ${plan.dtype}): ${(err as Error).message}`, { cause: err })
  }
  let checked: { session: ort.InferenceSession, mask: MaskMode, classes: number, labels: string[] }
  try {
    checked = checkModel(model.id, detr)
  } catch (err) {
    // A model this runner cannot drive is closed before the error goes up.
    await detr.dispose()
    throw err
  }
  const { session, mask, classes, labels } = checked
  const batched = mask.kind === 'per-pixel'
  const limits = options.images ?? DEFAULT_IMAGE_LIMITS
  const maxBatchPixels = options.maxBatchPixels ?? MAX_BATCH_PIXELS
  const stats = { calls: 0, images: 0 }
  let disposed = false
  if (!batched) log.warn('the model cannot be told where padding is (its pixel_mask is missing or of a fixed size): its images run one per inference call, unpadded', { model: model.id, pixelMask: mask })
  log.info('detr model loaded', { model: model.id, provider: plan.provider, dtype: plan.dtype, threads: plan.intraOpThreads, labels: labels.length, resize: settings.resize, ms: Math.round(performance.now() - t0) })

  /** Run prepared images as one call; their logits and boxes rows. */
  const runCall = async (images: readonly PreparedImage[]): Promise<Array<{ logits: Float32Array, boxes: Float32Array }>> => {
    const { pixelValues, pixelMask, height, width } = packBatch(images)
    const n = images.length
    const feeds: Record<string, ort.Tensor> = { pixel_values: new Tensor('float32', pixelValues, [n, 3, height, width]) }
    if (mask.kind === 'per-pixel') feeds.pixel_mask = new Tensor('int64', pixelMask, [n, height, width])
    else if (mask.kind === 'fixed') feeds.pixel_mask = new Tensor('int64', new BigInt64Array(n * mask.height * mask.width).fill(1n), [n, mask.height, mask.width])
    const out = await session.run(feeds)
    stats.calls++
    stats.images += n
    const logits = out.logits
    const boxes = out.pred_boxes
    if (logits?.type !== 'float32' || boxes?.type !== 'float32') throw new InferenceError(`detr model "${model.id}" returned ${String(logits?.type)} logits and ${String(boxes?.type)} boxes, expected float32`)
    const q = logits.dims[1] ?? 0
    if (logits.dims.length !== 3 || logits.dims[0] !== n || logits.dims[2] !== classes || boxes.dims.join() !== [n, q, 4].join()) {
      throw new InferenceError(`detr model "${model.id}" returned logits [${logits.dims.join(', ')}] and boxes [${boxes.dims.join(', ')}] for ${n} images, expected [${n}, queries, ${classes}] and [${n}, queries, 4]`)
    }
    const l = logits.data as Float32Array
    const b = boxes.data as Float32Array
    return images.map((_, i) => ({ logits: l.subarray(i * q * classes, (i + 1) * q * classes), boxes: b.subarray(i * q * 4, (i + 1) * q * 4) }))
  }

  /** Run prepared images in as few calls as the budget allows (similar sizes together, so little is padded); fill their results. */
  const runGroup = async (group: Array<{ index: number, image: PreparedImage }>, inputs: readonly DetrInput[], results: DetrResult[]): Promise<void> => {
    group.sort((a, b) => b.image.height - a.image.height || b.image.width - a.image.width || a.index - b.index)
    let start = 0
    while (start < group.length) {
      let end = start + 1
      let maxW = group[start]?.image.width ?? 0
      const maxH = group[start]?.image.height ?? 0
      while (batched && end < group.length) {
        const w = Math.max(maxW, group[end]?.image.width ?? 0)
        if ((end + 1 - start) * maxH * w > maxBatchPixels) break
        maxW = w
        end++
      }
      const chunk = group.slice(start, end)
      const rows = await runCall(chunk.map((r) => r.image))
      chunk.forEach((r, k) => {
        const input = inputs[r.index] as DetrInput
        const row = rows[k] as { logits: Float32Array, boxes: Float32Array }
        const { originalWidth: width, originalHeight: height } = r.image
        try {
          results[r.index] = { detections: postprocessDetections(row.logits, row.boxes, { threshold: input.threshold, topK: input.topK, width, height, labels }), width, height }
        } catch (err) {
          results[r.index] = err instanceof Error ? err : new InferenceError(String(err))
        }
      })
      start = end
    }
  }

  return {
    stats,
    async run (inputs: DetrInput[]): Promise<DetrResult[]> {
      if (disposed) throw new ModelLoadError(`the runner of "${model.id}" was disposed`)
      const results: DetrResult[] = new Array<DetrResult>(inputs.length)
      // Images are prepared a group at a time (about one budget of pixels), so memory stays bounded however many jobs the batch holds.
      let group: Array<{ index: number, image: PreparedImage }> = []
      let groupPixels = 0
      for (const [index, input] of inputs.entries()) {
        try {
          const rgb = await decodeImage(inlineBytes(input.image, 'detr input: image'), limits, 'detr input: image')
          const image = prepareImage(rgb, settings)
          group.push({ index, image })
          groupPixels += image.height * image.width
        } catch (err) {
          // This job's image only: the others still run.
          results[index] = err instanceof Error ? err : new InferenceError(String(err))
        }
        if (groupPixels >= maxBatchPixels) {
          await runGroup(group, inputs, results)
          group = []
          groupPixels = 0
        }
      }
      await runGroup(group, inputs, results)
      return results
    },
    async dispose (): Promise<void> {
      if (disposed) return
      disposed = true
      await detr.dispose()
    }
  }
}
