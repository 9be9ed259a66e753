/**
 * The embed runner, inside an inference thread: one transformers.js
 * `feature-extraction` pipeline whose tokenizer and model it drives itself,
 * so that the texts of many jobs run as one batch and each job gets its own
 * pooling and normalisation. transformers.js is imported on first load only.
 */
import type { ExecutionPlan, ModelLocation, ProviderName, SkillsetRunner } from '../../src/interfaces/index.ts'
import { ModelLoadError } from '../../src/errors.ts'
import { forComponent } from '../../src/logger.ts'
import type { EmbedInput } from './input.ts'
import type { EmbedOutput } from './codec.ts'
import { clsPoolRow, l2NormalizeRows, meanPoolRow } from './pooling.ts'
import { MAX_BATCH_TOKENS_CPU, MAX_BATCH_TOKENS_GPU } from './constants.ts'

const log = forComponent('ipfs-accelerate:skillset:embed')

/** The few parts of transformers.js used here. */
interface TfTensor { readonly type: string, readonly dims: number[], readonly data: unknown, dispose(): void, to(type: string): TfTensor }
type TokenRows = number[][]
interface TfTokenizer {
  (texts: string[], options: { padding: boolean, truncation: boolean, return_tensor: false }): { input_ids: TokenRows, attention_mask: TokenRows, token_type_ids?: TokenRows }
  readonly pad_token_id?: number | null
  readonly model_max_length?: number
}
interface TfPipeline {
  tokenizer: TfTokenizer
  model: (inputs: Record<string, TfTensor>) => Promise<Record<string, TfTensor | undefined>>
  dispose(): Promise<void>
}
interface TfModule {
  env: { allowRemoteModels: boolean, allowLocalModels: boolean, localModelPath: string }
  pipeline(task: 'feature-extraction', model: string, options: Record<string, unknown>): Promise<unknown>
  Tensor: new (type: 'int64', data: BigInt64Array, dims: number[]) => TfTensor
}

/** transformers.js device for each provider. TensorRT runs through the CUDA device. */
const DEVICES: Readonly<Record<ProviderName, 'cpu' | 'cuda' | 'webgpu'>> = Object.freeze({ cpu: 'cpu', cuda: 'cuda', tensorrt: 'cuda', webgpu: 'webgpu' })

export interface RunnerOptions {
  /** Padded tokens (texts × longest) per inference call; default by provider. */
  maxBatchTokens?: number
}

interface Encoded { ids: number[], mask: number[], typeIds: number[] | undefined }

/**
 * ONNX Runtime session config entries as onnxruntime-node's `extra` takes
 * them: nested objects whose keys it joins with "." (session.x64quantprecision
 * → { session: { x64quantprecision } }); values are strings.
 */
export function extraOptions (entries: Readonly<Record<string, string>>): Record<string, unknown> {
  const extra: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(entries)) {
    const parts = key.split('.')
    let node = extra
    for (const part of parts.slice(0, -1)) {
      const next = node[part] ?? {}
      if (typeof next !== 'object') throw new ModelLoadError(`session config key ${key} collides with ${part}`)
      node[part] = next
      node = next as Record<string, unknown>
    }
    node[parts[parts.length - 1] as string] = value
  }
  return extra
}

/** The transformers.js pipeline options of a plan (exported for tests). */
export function pipelineOptions (plan: ExecutionPlan): Record<string, unknown> {
  const device = DEVICES[plan.provider]
  if (plan.provider === 'tensorrt') log.warn('transformers.js has no TensorRT device: running the model on CUDA', { model: plan.modelId })
  const sessionOptions: Record<string, unknown> = { intraOpNumThreads: plan.intraOpThreads }
  // ONNX Runtime's CPU threads spin-wait after each run by default, taking the
  // cores the node's event loop (libp2p, HTTP) and other sessions need.
  const config: Record<string, string> = device === 'cpu' ? { 'session.intra_op.allow_spinning': '0', 'session.inter_op.allow_spinning': '0' } : {}
  // The plan's own entries (the u8s8 guard, session.x64quantprecision, on x86 without VNNI).
  Object.assign(config, plan.sessionConfig)
  if (Object.keys(config).length > 0) sessionOptions.extra = extraOptions(config)
  if (device === 'cuda' && plan.gpuIndex !== undefined) sessionOptions.executionProviders = [{ name: 'cuda', deviceId: plan.gpuIndex }]
  return { dtype: plan.dtype, device, session_options: sessionOptions }
}

/** The embed runner: every input of a batch succeeds or the batch fails (no per-input errors). */
export interface EmbedRunner extends SkillsetRunner<EmbedInput, EmbedOutput> {
  run(inputs: EmbedInput[]): Promise<EmbedOutput[]>
}

export async function loadEmbedRunner (model: ModelLocation, plan: ExecutionPlan, options: RunnerOptions): Promise<EmbedRunner> {
  const t0 = performance.now()
  let pipe: TfPipeline
  let tf: TfModule
  try {
    tf = await import('@huggingface/transformers') as unknown as TfModule
    tf.env.allowRemoteModels = false
    tf.env.allowLocalModels = true
    tf.env.localModelPath = model.localModelPath
    pipe = await tf.pipeline('feature-extraction', model.id, pipelineOptions(plan)) as TfPipeline
  } catch (err) {
    throw new ModelLoadError(`cannot load model "${model.id}" from ${model.localModelPath} (${plan.provider}, ${plan.dtype}): ${(err as Error).message}`, { cause: err })
  }
  
  const padId = BigInt(pipe.tokenizer.pad_token_id ?? 0)
  const maxBatchTokens = options.maxBatchTokens ?? (plan.provider === 'cpu' ? MAX_BATCH_TOKENS_CPU : MAX_BATCH_TOKENS_GPU)
  let disposed = false
  log.info('embed model loaded', { model: model.id, provider: plan.provider, dtype: plan.dtype, threads: plan.intraOpThreads, ...(plan.sessionConfig === undefined ? {} : { sessionConfig: plan.sessionConfig }), maxBatchTokens, ms: Math.round(performance.now() - t0) })

  /** Run texts `order[start..end)` (ascending length) as one batch; pool each into `rows`. */
  async function runChunk (enc: Encoded[], order: number[], start: number, end: number, poolings: EmbedInput['pooling'][], rows: Float32Array[]): Promise<void> {
    const batch = end - start
    const seq = (enc[order[end - 1] as number] as Encoded).ids.length
    const ids = new BigInt64Array(batch * seq).fill(padId)
    const mask = new BigInt64Array(batch * seq)
    const types = new BigInt64Array(batch * seq)
    for (let r = 0; r < batch; r++) {
      const e = enc[order[start + r] as number] as Encoded
      for (let t = 0; t < e.ids.length; t++) {
        ids[r * seq + t] = BigInt(e.ids[t] as number)
        mask[r * seq + t] = BigInt(e.mask[t] as number)
        types[r * seq + t] = BigInt(e.typeIds?.[t] ?? 0)
      }
    }
    const inputs = { input_ids: new tf.Tensor('int64', ids, [batch, seq]), attention_mask: new tf.Tensor('int64', mask, [batch, seq]), token_type_ids: new tf.Tensor('int64', types, [batch, seq]) }
    const outputs = await pipe.model(inputs)
    let hidden = outputs.last_hidden_state ?? outputs.token_embeddings
    if (hidden === undefined) throw new ModelLoadError(`model "${model.id}" has no last_hidden_state output`)
    if (hidden.type !== 'float32') hidden = hidden.to('float32')
    const [b, s, dims] = hidden.dims
    if (b !== batch || s !== seq || dims === undefined) throw new ModelLoadError(`model "${model.id}" returned hidden states of shape [${hidden.dims.join(', ')}], expected [${batch}, ${seq}, dims]`)
    const data = hidden.data as Float32Array
    for (let r = 0; r < batch; r++) {
      const text = order[start + r] as number
      const out = new Float32Array(dims)
      if (poolings[text] === 'cls') clsPoolRow(data, seq, dims, r, out, 0)
      else meanPoolRow(data, mask, seq, dims, r, out, 0)
      rows[text] = out
    }
    for (const t of [...Object.values(inputs), ...Object.values(outputs)]) t?.dispose()
  }

  /** Texts the tokenizer cut to the model's length: those at the limit that are longer untruncated. */
  function truncatedTexts (texts: string[], enc: Encoded[]): number[] {
    const max = pipe.tokenizer.model_max_length
    if (max === undefined || !Number.isFinite(max) || max <= 0) return []
    const atLimit = enc.flatMap((e, i) => e.ids.length >= max ? [i] : [])
    if (atLimit.length === 0) return []
    const full = pipe.tokenizer(atLimit.map((i) => texts[i] as string), { padding: false, truncation: false, return_tensor: false })
    return atLimit.filter((_, k) => (full.input_ids[k] as number[]).length > max)
  }

  return {
    async run (inputs: EmbedInput[]): Promise<EmbedOutput[]> {
      if (disposed) throw new ModelLoadError(`the runner of "${model.id}" was disposed`)
      const texts = inputs.flatMap((i) => i.texts)
      const poolings = inputs.flatMap((i) => i.texts.map(() => i.pooling))
      if (texts.length === 0) return inputs.map(() => ({ embeddings: new Float32Array(0), count: 0, dims: 0 }))
      const tok = pipe.tokenizer(texts, { padding: false, truncation: true, return_tensor: false })
      const enc: Encoded[] = tok.input_ids.map((ids, i) => ({ ids, mask: tok.attention_mask[i] as number[], typeIds: tok.token_type_ids?.[i] }))
      const cut = truncatedTexts(texts, enc)
      // Shortest first, so each call pads little; split where the padded size would pass the budget.
      const order = enc.map((_, i) => i).sort((a, b) => (enc[a] as Encoded).ids.length - (enc[b] as Encoded).ids.length || a - b)
      const rows: Float32Array[] = new Array<Float32Array>(texts.length)
      let start = 0
      while (start < order.length) {
        let end = start + 1
        while (end < order.length && (end + 1 - start) * (enc[order[end] as number] as Encoded).ids.length <= maxBatchTokens) end++
        await runChunk(enc, order, start, end, poolings, rows)
        start = end
      }
      const dims = (rows[0] as Float32Array).length
      let next = 0
      return inputs.map((input) => {
        const count = input.texts.length
        const first = next
        const embeddings = new Float32Array(count * dims)
        for (let i = 0; i < count; i++) embeddings.set(rows[next++] as Float32Array, i * dims)
        if (input.normalize) l2NormalizeRows(embeddings, count, dims)
        const truncated = cut.filter((t) => t >= first && t < next).map((t) => t - first)
        return { embeddings, count, dims, ...(truncated.length > 0 ? { truncated } : {}) }
      })
    },
    async dispose (): Promise<void> {
      if (disposed) return
      disposed = true
      await pipe.dispose()
    }
  }
}
