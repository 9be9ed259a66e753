/**
 * The loaded decoder as the lm runner drives it: the tokenizer and the ONNX
 * session come from transformers.js (so files are read through the content
 * store's reader when the inference thread plugged it into `env.customCache`),
 * and each forward pass is one `session.run` on onnxruntime-node tensors:
 * `prefill` runs one prompt alone, `decode` one token for each row of a
 * left-padded batch. The contract is docs/architecture.md's (Inside
 * src/models/generate): keys after RoPE, an empty past on the first step.
 * A vision-language model's decoder takes `inputs_embeds` instead of
 * `input_ids` (DecoderParts.embedTokens): its prefill is given embeddings
 * (text and image features), and each decode step embeds its tokens
 * through the embed_tokens session first (one more `session.run`).
 * onnxruntime-node is imported by `loadLm`, not when this module loads.
 */
import type * as ort from 'onnxruntime-node'
import type { ExecutionPlan, ModelLocation } from '../../src/interfaces/index.ts'
import { ModelLoadError } from '../../src/errors.ts'
import { pipelineOptions } from '../embed/runner.ts'
import type { ChatMessage } from './input.ts'

/** A row's KV cache: row `row` of a batch of `rows` tensors of `length` positions, its own entries the last `n` of them. */
export interface KvView { tensors: ort.Tensor[], rows: number, row: number, length: number }

/** One row of a decode step. */
export interface DecodeRow { kv: KvView, n: number, token: number }

export interface TfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): number[]
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string
  apply_chat_template(messages: ChatMessage[], options: { tokenize: false, add_generation_prompt: boolean }): string
  readonly eos_token_id?: number | null
}
interface TfLm {
  sessions: Record<string, ort.InferenceSession>
  config: Record<string, unknown>
  generation_config?: Record<string, unknown> | null
  dispose(): Promise<unknown>
}

export interface LmShapeInfo { layers: number, kvHeads: number, headDim: number, vocab: number, maxPositions: number, hidden: number }

/** The sessions and config of a decoder, from whatever loaded them. */
export interface DecoderParts {
  decoder: ort.InferenceSession
  /** When the decoder takes `inputs_embeds`: the session that turns `input_ids` into them. */
  embedTokens?: ort.InferenceSession
  /** The config that holds the decoder's shape: config.json, or its text_config. */
  config: Record<string, unknown>
  generationConfig?: Record<string, unknown> | null
  dispose(): Promise<unknown>
}

/** A prompt given as embeddings: `length` rows of `hidden` floats. */
export interface EmbeddedPrompt { embeds: Float32Array, length: number }

export class LoadedLm {
  readonly session: ort.InferenceSession
  readonly shape: LmShapeInfo
  readonly eos: ReadonlySet<number>
  private readonly tokenizer: TfTokenizer
  private readonly parts: DecoderParts
  private readonly embedTokens: ort.InferenceSession | undefined
  private readonly pastNames: string[]
  private readonly presentNames: string[]
  private readonly Tensor: typeof ort.Tensor

  constructor (tokenizer: TfTokenizer, parts: DecoderParts, Tensor: typeof ort.Tensor) {
    this.Tensor = Tensor
    this.tokenizer = tokenizer
    this.parts = parts
    this.session = parts.decoder
    this.embedTokens = parts.embedTokens
    const session = parts.decoder
    const c = parts.config
    const num = (key: string): number => {
      const v = c[key]
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new ModelLoadError(`the model's config has no positive integer ${key} for its decoder`)
      return v
    }
    const heads = num('num_attention_heads')
    this.shape = {
      layers: num('num_hidden_layers'),
      kvHeads: num('num_key_value_heads'),
      headDim: typeof c.head_dim === 'number' ? c.head_dim : num('hidden_size') / heads,
      vocab: num('vocab_size'),
      maxPositions: num('max_position_embeddings'),
      hidden: num('hidden_size')
    }
    const eos = new Set<number>()
    for (const v of [c.eos_token_id, parts.generationConfig?.eos_token_id, tokenizer.eos_token_id]) {
      for (const id of Array.isArray(v) ? v : [v]) if (typeof id === 'number') eos.add(id)
    }
    this.eos = eos
    this.pastNames = []
    this.presentNames = []
    for (let l = 0; l < this.shape.layers; l++) {
      this.pastNames.push(`past_key_values.${l}.key`, `past_key_values.${l}.value`)
      this.presentNames.push(`present.${l}.key`, `present.${l}.value`)
    }
    const tokens = this.embedTokens === undefined ? 'input_ids' : 'inputs_embeds'
    for (const name of [tokens, 'attention_mask', 'position_ids', ...this.pastNames]) {
      if (!session.inputNames.includes(name)) throw new ModelLoadError(`the model's decoder ONNX graph has no input ${name}`)
    }
    if (this.embedTokens !== undefined && !this.embedTokens.outputNames.includes('inputs_embeds')) throw new ModelLoadError('the model\'s embed_tokens ONNX graph has no output inputs_embeds')
  }

  /** The decoder's token input for ids [rows, length]: the ids, or their embeddings from embed_tokens. */
  private async tokenFeed (ids: BigInt64Array, rows: number, length: number): Promise<Record<string, ort.Tensor>> {
    const inputIds = new this.Tensor('int64', ids, [rows, length])
    if (this.embedTokens === undefined) return { input_ids: inputIds }
    const out = await this.embedTokens.run({ input_ids: inputIds })
    return { inputs_embeds: out.inputs_embeds as ort.Tensor }
  }

  /** Embeddings of `ids` through embed_tokens: [ids.length × hidden]. Only for a decoder that takes inputs_embeds. */
  async embed (ids: readonly number[]): Promise<Float32Array> {
    if (this.embedTokens === undefined) throw new ModelLoadError('this decoder takes input_ids: it has no embed_tokens session')
    const feed = await this.tokenFeed(BigInt64Array.from(ids, (v) => BigInt(v)), 1, ids.length)
    return (feed.inputs_embeds as ort.Tensor).data as Float32Array
  }

  /** Prompt ids: plain text as is, messages through the tokenizer's chat template (with the generation prompt). */
  encode (input: { prompt?: string, messages?: ChatMessage[] }): number[] {
    if (input.messages !== undefined) {
      const text = this.tokenizer.apply_chat_template(input.messages, { tokenize: false, add_generation_prompt: true })
      return this.tokenizer.encode(text, { add_special_tokens: false })
    }
    return this.tokenizer.encode(input.prompt ?? '')
  }

  decode (ids: number[]): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: true })
  }

  /** The whole prompt of one job (ids, or embeddings for an inputs_embeds decoder), with an empty past: its last logits and its cache. */
  async prefill (prompt: readonly number[] | EmbeddedPrompt): Promise<{ logits: Float32Array, kv: KvView }> {
    const embedded = !Array.isArray(prompt)
    const t = embedded ? (prompt as EmbeddedPrompt).length : (prompt as readonly number[]).length
    const { kvHeads, headDim, vocab, hidden } = this.shape
    const tokens = embedded
      ? { inputs_embeds: new this.Tensor('float32', (prompt as EmbeddedPrompt).embeds, [1, t, hidden]) }
      : await this.tokenFeed(BigInt64Array.from(prompt as readonly number[], (v) => BigInt(v)), 1, t)
    const feeds: Record<string, ort.Tensor> = {
      ...tokens,
      attention_mask: new this.Tensor('int64', new BigInt64Array(t).fill(1n), [1, t]),
      position_ids: new this.Tensor('int64', BigInt64Array.from({ length: t }, (_, i) => BigInt(i)), [1, t])
    }
    for (const name of this.pastNames) feeds[name] = new this.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim])
    const out = await this.session.run(feeds)
    const logits = (out.logits as ort.Tensor).data as Float32Array
    return { logits: logits.slice((t - 1) * vocab, t * vocab), kv: { tensors: this.presentNames.map((n) => out[n] as ort.Tensor), rows: 1, row: 0, length: t } }
  }

  /**
   * One token for each row: rows are left-padded to the longest cache, or to
   * `pastLength` positions when that is longer (a row whose cache already
   * sits in one shared batch of this exact layout is not copied). Returns
   * each row's logits and new cache.
   */
  async decode1 (rows: readonly DecodeRow[], pastLength = 0): Promise<Array<{ logits: Float32Array, kv: KvView }>> {
    const b = rows.length
    const L = Math.max(pastLength, ...rows.map((r) => r.n))
    const { vocab } = this.shape
    const first = rows[0]?.kv
    const shared = first !== undefined && first.rows === b && first.length === L && rows.every((r, i) => r.kv.tensors === first.tensors && r.kv.row === i)
    const past = shared ? first.tensors : this.gather(rows, L)
    const mask = new BigInt64Array(b * (L + 1))
    const ids = new BigInt64Array(b)
    const pos = new BigInt64Array(b)
    rows.forEach((r, i) => {
      mask.fill(1n, i * (L + 1) + (L - r.n), (i + 1) * (L + 1))
      ids[i] = BigInt(r.token)
      pos[i] = BigInt(r.n)
    })
    const feeds: Record<string, ort.Tensor> = {
      ...await this.tokenFeed(ids, b, 1),
      attention_mask: new this.Tensor('int64', mask, [b, L + 1]),
      position_ids: new this.Tensor('int64', pos, [b, 1])
    }
    this.pastNames.forEach((name, k) => { feeds[name] = past[k] as ort.Tensor })
    const out = await this.session.run(feeds)
    const logits = (out.logits as ort.Tensor).data as Float32Array
    const tensors = this.presentNames.map((n) => out[n] as ort.Tensor)
    return rows.map((_, i) => ({ logits: logits.subarray(i * vocab, (i + 1) * vocab), kv: { tensors, rows: b, row: i, length: L + 1 } }))
  }

  /** Copy each row's cache into fresh [rows, kvHeads, L, headDim] tensors, its entries at the end (left padding of zeros). */
  private gather (rows: readonly DecodeRow[], L: number): ort.Tensor[] {
    const { kvHeads, headDim } = this.shape
    return this.pastNames.map((_, k) => {
      const dst = new Float32Array(rows.length * kvHeads * L * headDim)
      rows.forEach((r, i) => {
        const src = r.kv.tensors[k]?.data as Float32Array
        for (let h = 0; h < kvHeads; h++) {
          const from = ((r.kv.row * kvHeads + h) * r.kv.length + (r.kv.length - r.n)) * headDim
          const to = ((i * kvHeads + h) * L + (L - r.n)) * headDim
          dst.set(src.subarray(from, from + r.n * headDim), to)
        }
      })
      return new this.Tensor('float32', dst, [rows.length, kvHeads, L, headDim])
    })
  }

  async dispose (): Promise<void> {
    await this.parts.dispose()
  }
}

/** onnxruntime-node's Tensor and transformers.js, imported on first use, set to read `model`'s folder (or the store, through env.customCache) and never the hub. */
export async function importRuntime (model: ModelLocation): Promise<{ Tensor: typeof ort.Tensor, tf: typeof import('@huggingface/transformers') }> {
  const { Tensor } = await import('onnxruntime-node')
  const tf = await import('@huggingface/transformers')
  tf.env.allowRemoteModels = false
  tf.env.allowLocalModels = true
  tf.env.localModelPath = model.localModelPath
  return { Tensor, tf }
}

/** Load the tokenizer and the decoder session of `model` for `plan` (transformers.js imported here, not at module load). */
export async function loadLm (model: ModelLocation, plan: ExecutionPlan): Promise<LoadedLm> {
  try {
    const { Tensor, tf } = await importRuntime(model)
    const tokenizer = await tf.AutoTokenizer.from_pretrained(model.id) as unknown as TfTokenizer
    const lm = await tf.AutoModelForCausalLM.from_pretrained(model.id, pipelineOptions(plan)) as unknown as TfLm
    const decoder = lm.sessions.model
    if (decoder === undefined) throw new ModelLoadError('the lm model has no session named "model"')
    return new LoadedLm(tokenizer, { decoder, config: lm.config, generationConfig: lm.generation_config, dispose: async () => await lm.dispose() }, Tensor)
  } catch (err) {
    if (err instanceof ModelLoadError) throw err
    throw new ModelLoadError(`cannot load lm model "${model.id}" from ${model.localModelPath} (${plan.provider}, ${plan.dtype}): ${(err as Error).message}`, { cause: err })
  }
}
