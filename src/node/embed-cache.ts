/**
 * The embedding cache seen from a job: before an embed job runs, its texts
 * are looked up (this node's store, then trusted peers', one round trip for
 * the job) under (model CID, dtype, provider, hash of the normalised text,
 * pooling, normalisation); only the misses are computed, and their vectors
 * are stored for next time. A cached vector that is not what this model
 * computes (width, dtype, values) is dropped and computed again.
 */
import type { EmbedInput, EmbedOutput } from '../../skillsets/embed/index.ts'
import { errorMessage, ModelLoadError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import { embeddingKey } from '../store/cache/embedding-cache.ts'
import type { EmbeddingCache } from '../store/cache/embedding-cache.ts'

export interface CachedRun {
  output: EmbedOutput
  /** Texts answered from a cache. */
  cachedItems: number
  /** Queue and run timings of the computed part, when anything was computed. */
  computed?: { queueMs: number, runMs: number, batchSize: number }
}

/** The served model whose vectors are looked up: its weights, how it runs, and its embedding width. */
export interface CachedModel {
  modelCid: string
  dtype: string
  provider: string
  dims: number
}

export class EmbedCache {
  private readonly cache: EmbeddingCache
  private readonly log: Logger

  constructor (cache: EmbeddingCache, log: Logger) {
    this.cache = cache
    this.log = log
  }

  /** Answer `input` from the cache where possible; `compute` runs the texts that missed. */
  async run (model: CachedModel, input: EmbedInput, compute: (misses: EmbedInput) => Promise<{ output: EmbedOutput, queueMs: number, runMs: number, batchSize: number }>): Promise<CachedRun> {
    const { modelCid, dtype, provider, dims: d } = model
    const keys = input.texts.map((text) => embeddingKey({ modelCid, dtype, provider, text, pooling: input.pooling, normalize: input.normalize }))
    const found = await this.cache.getMany(keys, { modelCid, dtype, dims: d, normalize: input.normalize })
    const missing = found.flatMap((e, i) => e === undefined ? [i] : [])
    let computed: CachedRun['computed']
    let fresh: EmbedOutput | undefined
    if (missing.length > 0) {
      const res = await compute({ ...input, texts: missing.map((i) => input.texts[i]!) })
      fresh = res.output
      computed = { queueMs: res.queueMs, runMs: res.runMs, batchSize: res.batchSize }
      const out = fresh
      if (out.dims !== d) {
        // The config's width is what cached vectors are checked against: a model that disagrees gets no cache.
        if (missing.length < input.texts.length) throw new ModelLoadError(`model ${modelCid} gave ${out.dims}-dim vectors, its config.json says ${d}: run it with --no-embed-cache`)
        this.log.warn('the model gives vectors of another width than its config.json says; they are not cached', { modelCid, dims: out.dims, config: d })
        return { output: out, cachedItems: 0, computed }
      }
      // Cut texts are not cached, so a later answer for them says again that they were cut.
      const cut = new Set(out.truncated ?? [])
      void Promise.all(missing.map(async (textIndex, j) => {
        if (cut.has(j)) return
        await this.cache.put(keys[textIndex]!, { modelCid, dtype }, { dims: [d], data: out.embeddings.slice(j * d, (j + 1) * d) })
      })).catch((err: unknown) => { this.log.warn('could not store computed embeddings in the cache', { error: errorMessage(err) }) })
    }
    const embeddings = new Float32Array(input.texts.length * d)
    let j = 0
    for (let i = 0; i < input.texts.length; i++) {
      const hit = found[i]
      if (hit !== undefined) {
        embeddings.set(hit.data, i * d)
      } else {
        embeddings.set(fresh!.embeddings.subarray(j * d, (j + 1) * d), i * d)
        j++
      }
    }
    const truncated = (fresh?.truncated ?? []).map((j) => missing[j]!)
    return { output: { embeddings, count: input.texts.length, dims: d, ...(truncated.length > 0 ? { truncated } : {}) }, cachedItems: input.texts.length - missing.length, ...(computed === undefined ? {} : { computed }) }
  }
}
