/**
 * Embedding cache: computed embeddings stored as blocks (CIDv1 raw, sha256)
 * in the node's blockstore, keyed by (model CID, dtype, provider, sha256 of
 * the normalised input, pooling, normalisation) (embedding-value.ts). Not
 * pinned: the cache holds at most `budgetBytes` and evicts least recently
 * used entries; the model store's gc keeps what the cache still indexes.
 *
 * Every value is checked against what its reader expects (model, dtype,
 * width, finite numbers, unit norm when normalised) before it is used; a bad
 * one is dropped and is a miss, so it cannot stick. Local misses of a job
 * are asked of a few trusted peers in one round trip each, and this node
 * answers lookups from its trusted peers only (none by default): a peer
 * could hand out well-formed but wrong vectors, which no check can see.
 */
import { readFile, rename, writeFile, mkdir, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { PeerId, Startable } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'
import { CID } from 'multiformats/cid'
import { z } from 'zod'
import { errorMessage, ForbiddenError, StoreError } from '../../errors.ts'
import { forComponent } from '../../logger.ts'
import { blockKey, readBlock } from '../blocks/cid.ts'
import type { BlockExchange } from '../exchange/block-exchange.ts'
import { MAX_CACHE_KEYS } from '../exchange/wire.ts'
import { decodeEmbedding, embeddingCid, encodeEmbedding, keyOfValue } from './embedding-value.ts'
import type { Embedding, EmbeddingExpect } from './embedding-value.ts'

export { embeddingKey, normalizeInput } from './embedding-value.ts'
export type { Embedding, EmbeddingExpect, EmbeddingKeyParts } from './embedding-value.ts'

const INDEX_VERSION = 1
const indexSchema = z.strictObject({
  version: z.literal(INDEX_VERSION),
  /** Least recently used first: [key, cid, bytes]. */
  entries: z.array(z.tuple([z.string().regex(/^[0-9a-f]{64}$/), z.string().max(200), z.number().int().nonnegative()])).max(10_000_000)
})

export interface EmbeddingCacheComponents {
  blockstore: Pick<Blockstore, 'get' | 'put' | 'has' | 'delete'>
  /** For asking peers on a miss; absent: local only. */
  exchange?: Pick<BlockExchange, 'cacheBlocks' | 'setHandlers'>
  /** Peers to ask: connected trusted peers. */
  peers?: () => PeerId[]
  /** Whether to answer a peer's lookups (default: nobody's). */
  trusted?: (peer: string) => boolean
}

export interface EmbeddingCacheInit {
  /** Index file (storePaths(dataDir).embedCache). */
  indexFile: string
  budgetBytes: number
  /** Peers asked at once on a miss. */
  askPeers?: number
  askTimeoutMs?: number
  /** Write the index this long after a change. */
  flushDelayMs?: number
}

export interface EmbeddingCacheStats {
  entries: number
  bytes: number
  budgetBytes: number
  hits: number
  peerHits: number
  misses: number
  evictions: number
  /** Entries dropped because they were not what their reader expected (local), or answers refused (peers). */
  dropped: number
  refused: number
}

export class EmbeddingCache implements Startable {
  private readonly components: EmbeddingCacheComponents
  private readonly init: Required<EmbeddingCacheInit>
  private readonly log = forComponent('ipfs-accelerate:store:embed-cache')
  /** key → entry, in least-recently-used-first order. */
  private readonly entries = new Map<string, { cid: CID, bytes: number }>()
  private readonly kept = new Set<string>()
  private bytes = 0
  private dirty = false
  private flushTimer: NodeJS.Timeout | undefined
  private started = false
  private readonly counters = { hits: 0, peerHits: 0, misses: 0, evictions: 0, dropped: 0, refused: 0 }

  constructor (components: EmbeddingCacheComponents, init: EmbeddingCacheInit) {
    this.components = components
    this.init = { askPeers: 3, askTimeoutMs: 2000, flushDelayMs: 1000, ...init }
  }

  async start (): Promise<void> {
    if (this.started) return
    await this.loadIndex()
    this.components.exchange?.setHandlers({ cacheBlocks: async (keys, peer) => await this.serve(keys, peer) })
    this.started = true
    await this.evict()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearTimeout(this.flushTimer)
    await this.flush()
  }

  /** Whether gc must keep this block. */
  keeps (cid: CID): boolean {
    return this.kept.has(blockKey(cid))
  }

  stats (): EmbeddingCacheStats {
    return { entries: this.entries.size, bytes: this.bytes, budgetBytes: this.init.budgetBytes, ...this.counters }
  }

  /**
   * Look up each key: here first, then (unless `localOnly`) the misses are
   * asked of trusted peers, one request per peer for all of them. Every
   * value is checked against `expect`; what fails is a miss.
   */
  async getMany (keys: string[], expect: EmbeddingExpect, options: { signal?: AbortSignal, localOnly?: boolean } = {}): Promise<Array<Embedding | undefined>> {
    const out: Array<Embedding | undefined> = []
    for (const key of keys) out.push(await this.localGet(key, expect))
    const missing = [...new Set(keys.filter((_, i) => out[i] === undefined))]
    if (missing.length > 0 && options.localOnly !== true) {
      const remote = await this.askPeers(missing, expect, options.signal)
      for (let i = 0; i < keys.length; i++) {
        if (out[i] !== undefined) continue
        const hit = remote.get(keys[i]!)
        if (hit !== undefined) { out[i] = hit; this.counters.peerHits++ }
      }
    }
    for (const e of out) if (e === undefined) this.counters.misses++
    return out
  }

  async get (key: string, expect: EmbeddingExpect, options: { signal?: AbortSignal, localOnly?: boolean } = {}): Promise<Embedding | undefined> {
    return (await this.getMany([key], expect, options))[0]
  }

  async put (key: string, meta: Pick<EmbeddingExpect, 'modelCid' | 'dtype'>, embedding: Embedding): Promise<CID> {
    return await this.putBlock(key, encodeEmbedding(key, meta, embedding))
  }

  private async localGet (key: string, expect: EmbeddingExpect): Promise<Embedding | undefined> {
    const local = await this.localBlock(key)
    if (local === undefined) return undefined
    try {
      const e = decodeEmbedding(local.bytes, key, expect)
      this.counters.hits++
      return e
    } catch (err) {
      this.counters.dropped++
      this.log.warn('dropped a cached embedding that is not what the model computes; the text is computed again', { key, error: errorMessage(err) })
      this.drop(key)
      await this.deleteBlock(local.cid)
      return undefined
    }
  }

  /** What this node answers a peer's lookup: only a trusted peer gets anything. */
  private async serve (keys: string[], peer: string): Promise<Array<{ cid: CID, bytes: Uint8Array }>> {
    if (this.components.trusted?.(peer) !== true) throw new ForbiddenError('this node answers cache lookups of its trusted peers only (--trusted-peer)')
    const out: Array<{ cid: CID, bytes: Uint8Array }> = []
    for (const key of keys) {
      const b = await this.localBlock(key)
      if (b !== undefined) out.push(b)
    }
    return out
  }

  /** The block for a key when held here (used by the exchange server too). */
  async localBlock (key: string): Promise<{ cid: CID, bytes: Uint8Array } | undefined> {
    const e = this.entries.get(key)
    if (e === undefined) return undefined
    let bytes: Uint8Array
    try {
      bytes = await readBlock(this.components.blockstore, e.cid, { offline: true })
    } catch (err) {
      this.log.debug('a cached embedding block is gone; dropping its entry', { error: errorMessage(err) })
      this.drop(key)
      return undefined
    }
    this.entries.delete(key)
    this.entries.set(key, e)
    this.markDirty()
    return { cid: e.cid, bytes }
  }

  private async putBlock (key: string, bytes: Uint8Array): Promise<CID> {
    const cid = embeddingCid(bytes)
    if (bytes.byteLength > this.init.budgetBytes) return cid
    await this.components.blockstore.put(cid, bytes)
    this.drop(key)
    this.entries.set(key, { cid, bytes: bytes.byteLength })
    this.kept.add(blockKey(cid))
    this.bytes += bytes.byteLength
    this.markDirty()
    await this.evict()
    return cid
  }

  /** Ask up to `askPeers` trusted peers for `keys` at once; the first good answer per key is kept and stored. */
  private async askPeers (keys: string[], expect: EmbeddingExpect, signal?: AbortSignal): Promise<Map<string, Embedding>> {
    const found = new Map<string, Embedding>()
    const exchange = this.components.exchange
    const peers = (this.components.peers?.() ?? []).slice(0, this.init.askPeers)
    if (exchange === undefined || peers.length === 0) return found
    const asked = new Set(keys)
    const sig = AbortSignal.any([AbortSignal.timeout(this.init.askTimeoutMs), ...(signal === undefined ? [] : [signal])])
    const answers = await Promise.all(peers.map(async (peer) => {
      const got: Array<{ cid: CID, bytes: Uint8Array }> = []
      try {
        for (let i = 0; i < keys.length; i += MAX_CACHE_KEYS) got.push(...await exchange.cacheBlocks(peer, keys.slice(i, i + MAX_CACHE_KEYS), { signal: sig }))
      } catch (err) {
        this.log.debug('a peer could not answer a cache lookup', { peer: peer.toString(), error: errorMessage(err) })
      }
      return { peer, got }
    }))
    for (const { peer, got } of answers) {
      for (const block of got) {
        const key = keyOfValue(block.bytes)
        if (key === undefined || !asked.has(key) || found.has(key)) {
          if (key === undefined || !asked.has(key)) this.refuse(peer, 'a value for a key that was not asked')
          continue
        }
        let e: Embedding
        try {
          e = decodeEmbedding(block.bytes, key, expect)
        } catch (err) {
          this.refuse(peer, errorMessage(err))
          continue
        }
        found.set(key, e)
        await this.putBlock(key, block.bytes)
      }
    }
    return found
  }

  private refuse (peer: PeerId, why: string): void {
    this.counters.refused++
    this.log.warn('refused a cached embedding from a peer', { peer: peer.toString(), why })
  }

  private drop (key: string): void {
    const e = this.entries.get(key)
    if (e === undefined) return
    this.entries.delete(key)
    this.bytes -= e.bytes
    // the value carries its key, so no two keys share a block
    this.kept.delete(blockKey(e.cid))
    this.markDirty()
  }

  /** Evict least recently used entries until under budget. */
  private async evict (): Promise<void> {
    while (this.bytes > this.init.budgetBytes) {
      const oldest = this.entries.entries().next()
      if (oldest.done === true) break
      const [key, e] = oldest.value
      this.drop(key)
      this.counters.evictions++
      await this.deleteBlock(e.cid)
    }
  }

  private async deleteBlock (cid: CID): Promise<void> {
    try {
      await this.components.blockstore.delete(cid)
    } catch (err) {
      this.log.warn('could not delete a cache block; gc removes it later', { cid: cid.toString(), error: errorMessage(err) })
    }
  }

  private markDirty (): void {
    this.dirty = true
    if (this.flushTimer !== undefined || !this.started) return
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined
      this.flush().catch((err: unknown) => { this.log.warn('could not write the cache index', { error: errorMessage(err) }) })
    }, this.init.flushDelayMs)
    this.flushTimer.unref()
  }

  /** Write the index now (also done shortly after changes and at stop). */
  async flush (): Promise<void> {
    if (!this.dirty) return
    this.dirty = false
    const entries = [...this.entries].map(([k, e]) => [k, e.cid.toString(), e.bytes])
    const file = this.init.indexFile
    await mkdir(dirname(file), { recursive: true })
    const tmp = `${file}.${process.pid}.tmp`
    try {
      await writeFile(tmp, JSON.stringify({ version: INDEX_VERSION, entries }))
      await rename(tmp, file)
    } catch (err) {
      this.dirty = true
      await unlink(tmp).catch(() => undefined) // best effort: the temp file may not exist
      throw new StoreError(`cannot write ${file}: ${errorMessage(err)}`, { cause: err })
    }
  }

  private async loadIndex (): Promise<void> {
    let text: string
    try {
      text = await readFile(this.init.indexFile, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw new StoreError(`cannot read ${this.init.indexFile}: ${errorMessage(err)}`, { cause: err })
    }
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch (err) {
      throw new StoreError(`${this.init.indexFile} is not valid JSON: delete it to start an empty cache`, { cause: err })
    }
    const parsed = indexSchema.safeParse(raw)
    if (!parsed.success) throw new StoreError(`${this.init.indexFile} is not a version ${INDEX_VERSION} cache index: delete it to start an empty cache`)
    for (const [key, cid, bytes] of parsed.data.entries) {
      const c = CID.parse(cid)
      this.entries.set(key, { cid: c, bytes })
      this.kept.add(blockKey(c))
      this.bytes += bytes
    }
  }
}
