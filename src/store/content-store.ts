/**
 * The content store composed: Helia (blockstore-fs + datastore-fs, libp2p
 * and bitswap when networked), the block exchange, the provider table, the
 * model store and the embedding cache. The node builds one of these; the
 * CLI builds one when no node runs on the data dir.
 */
import type { Blocks, Helia } from '@helia/interface'
import type { Libp2p } from '@libp2p/interface'
import type { Libp2pOptions } from 'libp2p'
import { basename } from 'node:path'
import type { ModelCatalog } from '../models/catalog.ts'
import type { NodeServices } from '../p2p/swarm/libp2p.ts'
import { BlockExchange } from './exchange/block-exchange.ts'
import type { BlockExchangeInit } from './exchange/block-exchange.ts'
import { EmbeddingCache } from './cache/embedding-cache.ts'
import { FastFsBlockstore } from './blocks/fs-blockstore.ts'
import { createOfflineHelia, createStoreHelia, storePaths } from './helia.ts'
import type { StorePaths } from './helia.ts'
import { ModelStore } from './models/model-store.ts'
import { acquireDirLock } from './dir-lock.ts'
import { ProviderTable } from './exchange/providers.ts'
import { errorMessage } from '../errors.ts'
import { forComponent } from '../logger.ts'

const log = forComponent('ipfs-accelerate:store')

export interface ContentStoreInit {
  dataDir: string
  /** libp2p options (src/p2p/swarm/libp2p.ts); without them the store is offline. */
  libp2p?: Libp2pOptions<NodeServices>
  catalog?: ModelCatalog
  /** config `store.cacheBudgetMB` (default 1024). */
  cacheBudgetMB?: number
  /** config `store.maxPullMB` (default 65536). */
  maxPullMB?: number
  /** Free bytes on the store's disk (default: statfs; tests give a full disk). */
  freeBytes?: () => Promise<number>
  /**
   * Peers asked for cached embeddings and believed for model manifests by
   * id (config `trustedPeers`; default none: no remote cache lookups, and
   * pulls by id only from the catalog's CIDs; pulls by CID use any peer).
   */
  trustedPeers?: readonly string[]
  exchange?: BlockExchangeInit
  /** fsync block writes (default true; `bench/store-fsync.ts` turns it off to measure what it costs). */
  fsync?: boolean
  /**
   * The store's lock across processes (dir-lock.ts), taken by start() and
   * let go by stop(): `purpose` is shown to a process that waits (default:
   * the command line's first words), `waitMs` bounds the wait (default 10 s).
   */
  lock?: { purpose?: string, waitMs?: number }
}

export interface ContentStore {
  readonly paths: StorePaths
  readonly helia: Helia
  /** The node's libp2p (networked stores only, after start). */
  readonly libp2p: Libp2p<NodeServices> | undefined
  readonly models: ModelStore
  readonly cache: EmbeddingCache
  readonly providers: ProviderTable
  readonly exchange: BlockExchange | undefined
  start(): Promise<void>
  stop(): Promise<void>
}

/**
 * Helia's blockstore, but `delete` goes to the storage beneath it: Helia's
 * own delete first cancels re-providing through every router, and the
 * libp2p router throws NoContentRoutersError when libp2p has no DHT (ours
 * has none), so no block could ever be deleted. Pins are checked by the
 * callers (ModelStore.gc, the cache's eviction of its own blocks).
 */
function deletableView (blocks: Blocks): Blocks {
  const inner = (blocks as Blocks & { unwrap?: () => Pick<Blocks, 'delete' | 'deleteMany'> }).unwrap?.()
  if (inner === undefined) return blocks
  return {
    has: async (cid, options) => await blocks.has(cid, options),
    put: async (cid, bytes, options) => await blocks.put(cid, bytes, options),
    putMany: (source, options) => blocks.putMany(source, options),
    get: (cid, options) => blocks.get(cid, options),
    getMany: (source, options) => blocks.getMany(source, options),
    getAll: (options) => blocks.getAll(options),
    delete: async (cid, options) => { await inner.delete(cid, options) },
    deleteMany: (source, options) => inner.deleteMany(source, options),
    createSession: (root, options) => blocks.createSession(root, options)
  }
}

/** The command that opened the store, e.g. "ipfs-accelerate.js models gc", for whoever waits for its lock. */
function defaultPurpose (): string {
  return [basename(process.argv[1] ?? 'node'), ...process.argv.slice(2).filter((a) => !a.startsWith('-')).slice(0, 2)].join(' ')
}

export async function createContentStore (init: ContentStoreInit): Promise<ContentStore> {
  const paths = storePaths(init.dataDir)
  const providers = new ProviderTable()
  const trusted = new Set(init.trustedPeers ?? [])
  const networked = init.libp2p !== undefined
  const helia: Helia = init.libp2p !== undefined
    ? await createStoreHelia({ dataDir: init.dataDir, libp2p: init.libp2p, routers: [providers.router()], ...(init.fsync === undefined ? {} : { fsync: init.fsync }) })
    : await createOfflineHelia({ dataDir: init.dataDir, ...(init.fsync === undefined ? {} : { fsync: init.fsync }) })
  let libp2p: Libp2p<NodeServices> | undefined
  let exchange: BlockExchange | undefined
  // libp2p exists only once Helia has started: the exchange reaches it through this view
  const libp2pView = {
    handle: async (...a: Parameters<Libp2p['handle']>) => { await (libp2p as Libp2p).handle(...a) },
    unhandle: async (...a: Parameters<Libp2p['unhandle']>) => { await (libp2p as Libp2p).unhandle(...a) },
    dialProtocol: async (...a: Parameters<Libp2p['dialProtocol']>) => await (libp2p as Libp2p).dialProtocol(...a),
    dial: async (...a: Parameters<Libp2p['dial']>) => await (libp2p as Libp2p).dial(...a),
    getPeers: () => libp2p?.getPeers() ?? []
  }
  const blockstore = deletableView(helia.blockstore)
  if (networked) {
    // the server reads block files directly: same directory, none of Helia's per-block checks and locks
    const source = new FastFsBlockstore(paths.blocks)
    exchange = new BlockExchange({ libp2p: libp2pView, blockstore, source }, init.exchange)
  }
  const cache = new EmbeddingCache(
    // A cached vector is checked against its CID and key, not against the model: only trusted peers are asked.
    { blockstore, exchange, peers: () => libp2pView.getPeers().filter((p) => trusted.has(p.toString())), trusted: (p) => trusted.has(p) },
    { indexFile: paths.embedCache, budgetBytes: (init.cacheBudgetMB ?? 1024) * 1024 * 1024 }
  )
  const models = new ModelStore(
    { blockstore, pins: helia.pins, exchange, libp2p: networked ? libp2pView : undefined, providers },
    { dataDir: init.dataDir, catalog: init.catalog, keep: (cid) => cache.keeps(cid), trustedPeers: [...trusted], ...(init.maxPullMB === undefined ? {} : { maxPullBytes: init.maxPullMB * 1024 * 1024 }), ...(init.freeBytes === undefined ? {} : { freeBytes: init.freeBytes }) }
  )
  let started = false
  let release: (() => Promise<void>) | undefined
  const releaseLock = async (): Promise<void> => {
    const r = release
    release = undefined
    await r?.()
  }
  const store: ContentStore = {
    paths,
    helia,
    get libp2p () { return libp2p },
    models,
    cache,
    providers,
    exchange,
    async start () {
      if (started) return
      const stops: Array<() => Promise<unknown>> = []
      try {
        // one writer per store across processes: gc must not race another process's pull or export
        const lock = await acquireDirLock(paths.root, { purpose: init.lock?.purpose ?? defaultPurpose(), waitMs: init.lock?.waitMs, log })
        release = async () => { await lock.release() }
        stops.push(async () => { await releaseLock() })
        await helia.start()
        stops.push(async () => await helia.stop())
        if (networked) libp2p = (helia as Helia & { libp2p: Libp2p<NodeServices> }).libp2p
        if (exchange !== undefined) {
          await exchange.start()
          stops.push(async () => { await exchange?.stop() })
        }
        await models.start()
        stops.push(async () => { await models.stop() })
        await cache.start()
        started = true
      } catch (err) {
        // already failing: the first error is the one thrown; later ones are logged
        for (const stop of stops.reverse()) await stop().catch((e: unknown) => { log.warn('cleanup after a failed start failed too', { error: errorMessage(e) }) })
        throw err
      }
    },
    async stop () {
      if (!started) return
      started = false
      await cache.stop()
      await models.stop()
      await exchange?.stop()
      await helia.stop()
      libp2p = undefined
      await releaseLock()
    }
  }
  return store
}
