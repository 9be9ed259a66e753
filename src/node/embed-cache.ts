/**
 * The embedding cache seen from a job: before an embed job runs, each of its
 * texts is looked up (this node's store, then peers') under (model CID, hash
 * of the normalised text, pooling, normalisation); only the misses are
 * computed, and their vectors are stored for next time.
 */
import type { EmbedInput, EmbedOutput } from '../../skillsets/embed/index.ts'
import { StoreError, errorMessage } from '../errors.ts'
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

export class EmbedCache {
  private readonly cache: EmbeddingCache
  private readonly log: Logger

  constructor (cache: EmbeddingCache, log: Logger) {
    this.cache = cache
    this.log = log
  }

  /** Answer `input` from the cache where possible; `compute` runs the texts that missed. */
  async run (modelCid: string, input: EmbedInput, compute: (misses: EmbedInput) => Promise<{ output: EmbedOutput, queueMs: number, runMs: number, batchSize: number }>): Promise<CachedRun> {
    const keys = input.texts.map((text) => embeddingKey({ modelCid, text, pooling: input.pooling, normalize: input.normalize }))
    const found = await Promise.all(keys.map(async (k) => await this.cache.get(k)))
    const missing = found.flatMap((e, i) => e === undefined ? [i] : [])
    let dims = found.find((e) => e !== undefined)?.dims[0]
    let computed: CachedRun['computed']
    let fresh: EmbedOutput | undefined
    if (missing.length > 0) {
      const res = await compute({ ...input, texts: missing.map((i) => input.texts[i]!) })
      fresh = res.output
      computed = { queueMs: res.queueMs, runMs: res.runMs, batchSize: res.batchSize }
      dims = fresh.dims
      const out = fresh
      // Cut texts are not cached, so a later answer for them says again that they were cut.
      const cut = new Set(out.truncated ?? [])
      void Promise.all(missing.map(async (textIndex, j) => {
        if (cut.has(j)) return
        await this.cache.put(keys[textIndex]!, { dims: [out.dims], data: out.embeddings.slice(j * out.dims, (j + 1) * out.dims) })
      })).catch((err: unknown) => { this.log.warn('could not store computed embeddings in the cache', { error: errorMessage(err) }) })
    }
    const d = dims ?? 0
    const embeddings = new Float32Array(input.texts.length * d)
    let j = 0
    for (let i = 0; i < input.texts.length; i++) {
      const hit = found[i]
      if (hit !== undefined) {
        if (hit.dims.length !== 1 || hit.dims[0] !== d || hit.data.length !== d) throw new StoreError(`a cached embedding of shape [${hit.dims.join(', ')}] next to ${d}-dim vectors: the cache of this model is inconsistent; clear it with \`ipfs-accelerate models gc\``)
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
