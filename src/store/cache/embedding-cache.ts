/**
 * Embedding cache: computed embeddings stored as blocks (CIDv1 raw, sha256)
 * in the node's blockstore, keyed by (model CID, sha256 of the normalised
 * input, pooling, normalisation). Not pinned: the cache holds at most
 * `budgetBytes` and evicts least recently used entries; the model store's
 * gc keeps what the cache still indexes. On a local miss, a few peers are
 * asked over the block exchange; their answer is verified against its CID
 * and against the key it carries before it is used and kept.
 */
import { createHash } from 'node:crypto'
import { readFile, rename, writeFile, mkdir, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { PeerId, Startable } from '@libp2p/interface'
import { decode, encode } from 'cborg'
import type { Blockstore } from 'interface-blockstore'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { z } from 'zod'
import { errorMessage, StoreError } from '../../errors.ts'
import { forComponent } from '../../logger.ts'
import { blockKey, RAW_CODE, readBlock, SHA2_256_CODE } from '../blocks/cid.ts'
import type { BlockExchange } from '../exchange/block-exchange.ts'

export interface EmbeddingKeyParts {
  /** Root CID of the model that computed the embedding. */
  modelCid: string
  /** The input text; it is NFC-normalised and hashed, never stored. */
  text: string
  pooling: string
  normalize: boolean
}

export interface Embedding {
  dims: number[]
  data: Float32Array
}

/** Normalisation applied to an input before hashing: Unicode NFC, nothing else (tokenisers differ on the rest). */
export function normalizeInput (text: string): string {
  return text.normalize('NFC')
}

/** The cache key: hex sha256 over a canonical encoding of the parts. */
export function embeddingKey (parts: EmbeddingKeyParts): string {
  const inputHash = createHash('sha256').update(normalizeInput(parts.text), 'utf8').digest('hex')
  const canonical = encode(['ipfs-accelerate/embedding/1', parts.modelCid, inputHash, parts.pooling, parts.normalize])
  return createHash('sha256').update(canonical).digest('hex')
}

const INDEX_VERSION = 1
const indexSchema = z.strictObject({
  version: z.literal(INDEX_VERSION),
  /** Least recently used first: [key, cid, bytes]. */
  entries: z.array(z.tuple([z.string().regex(/^[0-9a-f]{64}$/), z.string().max(200), z.number().int().nonnegative()])).max(10_000_000)
})

const valueSchema = z.strictObject({
  v: z.literal(1),
  key: z.string().regex(/^[0-9a-f]{64}$/),
  dims: z.array(z.number().int().nonnegative()).min(1).max(8),
  data: z.instanceof(Uint8Array)
})

export function encodeEmbedding (key: string, e: Embedding): Uint8Array {
  const count = e.dims.reduce((a, b) => a * b, 1)
  if (count !== e.data.length) throw new StoreError(`embedding dims ${e.dims.join('x')} do not match ${e.data.length} values`)
  const data = new Uint8Array(e.data.buffer, e.data.byteOffset, e.data.byteLength)
  return encode({ v: 1, key, dims: e.dims, data })
}

export function decodeEmbedding (bytes: Uint8Array, key: string): Embedding {
  let raw: unknown
  try {
    raw = decode(bytes)
  } catch (err) {
    throw new StoreError(`a cached embedding block is not CBOR: ${errorMessage(err)}`, { cause: err })
  }
  const parsed = valueSchema.safeParse(raw)
  if (!parsed.success) throw new StoreError('a cached embedding block is malformed')
  const { dims, data } = parsed.data
  if (parsed.data.key !== key) throw new StoreError('a cached embedding block carries another key')
  if (data.byteLength !== dims.reduce((a, b) => a * b, 1) * 4) throw new StoreError('a cached embedding block has the wrong length')
  const copy = new Uint8Array(data)
  return { dims, data: new Float32Array(copy.buffer, 0, copy.byteLength / 4) }
}

export async function embeddingCid (bytes: Uint8Array): Promise<CID> {
  const digest = Digest.create(SHA2_256_CODE, createHash('sha256').update(bytes).digest())
  return CID.createV1(RAW_CODE, digest)
}

export interface EmbeddingCacheComponents {
  blockstore: Pick<Blockstore, 'get' | 'put' | 'has' | 'delete'>
  /** For asking peers on a miss; absent: local only. */
  exchange?: Pick<BlockExchange, 'cacheBlock' | 'setHandlers'>
  /** Peers to ask (e.g. connected workers serving the same model). */
  peers?: () => PeerId[]
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
  private readonly counters = { hits: 0, peerHits: 0, misses: 0, evictions: 0 }

  constructor (components: EmbeddingCacheComponents, init: EmbeddingCacheInit) {
    this.components = components
    this.init = { askPeers: 3, askTimeoutMs: 2000, flushDelayMs: 1000, ...init }
  }

  async start (): Promise<void> {
    if (this.started) return
    await this.loadIndex()
    this.components.exchange?.setHandlers({ cacheBlock: async (key) => await this.localBlock(key) })
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

  /** Look up locally, then (unless `localOnly`) ask peers. */
  async get (key: string, options: { signal?: AbortSignal, localOnly?: boolean } = {}): Promise<Embedding | undefined> {
    const local = await this.localBlock(key)
    if (local !== undefined) {
      this.counters.hits++
      return decodeEmbedding(local.bytes, key)
    }
    if (options.localOnly !== true) {
      const remote = await this.askPeers(key, options.signal)
      if (remote !== undefined) {
        this.counters.peerHits++
        return remote
      }
    }
    this.counters.misses++
    return undefined
  }

  async put (key: string, embedding: Embedding): Promise<CID> {
    return await this.putBlock(key, encodeEmbedding(key, embedding))
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
    const cid = await embeddingCid(bytes)
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

  private async askPeers (key: string, signal?: AbortSignal): Promise<Embedding | undefined> {
    const exchange = this.components.exchange
    const peers = (this.components.peers?.() ?? []).slice(0, this.init.askPeers)
    if (exchange === undefined || peers.length === 0) return undefined
    const sig = AbortSignal.any([AbortSignal.timeout(this.init.askTimeoutMs), ...(signal === undefined ? [] : [signal])])
    const answers = await Promise.all(peers.map(async (peer) => {
      try {
        const got = await exchange.cacheBlock(peer, key, { signal: sig })
        if (got === undefined) return undefined
        return { bytes: got.bytes, embedding: decodeEmbedding(got.bytes, key) }
      } catch (err) {
        this.log.debug('a peer could not answer a cache lookup', { peer: peer.toString(), error: errorMessage(err) })
        return undefined
      }
    }))
    const hit = answers.find((a) => a !== undefined)
    if (hit === undefined) return undefined
    await this.putBlock(key, hit.bytes)
    return hit.embedding
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
      try {
        await this.components.blockstore.delete(e.cid)
      } catch (err) {
        this.log.warn('could not delete an evicted cache block', { cid: e.cid.toString(), error: errorMessage(err) })
      }
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
