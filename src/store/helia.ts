/**
 * The content store's engine: Helia light (no public routers; loaded without
 * Helia's default network stack, helia-light.ts) with bitswap,
 * on a persistent filesystem blockstore and datastore in the data dir.
 * Helia owns the libp2p node it composes from the options it is given.
 * Without libp2p options it is an offline store (import, list, export, gc).
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { withBitswap } from '@helia/bitswap'
import type { BitswapOptions } from '@helia/bitswap'
import type { Helia, Router } from '@helia/interface'
import type { HeliaWithLibp2p } from '@helia/libp2p'
import { FsDatastore } from 'datastore-fs'
import type { Libp2pOptions } from 'libp2p'
import type { NodeServices } from '../p2p/swarm/libp2p.ts'
import { FastFsBlockstore } from './blocks/fs-blockstore.ts'
import { createHeliaLight, withLibp2pLight } from './helia-light.ts'

export type StoreHelia = HeliaWithLibp2p<NodeServices>

/** Where the store keeps its parts under a data dir. */
export interface StorePaths {
  root: string
  /** blockstore-fs directory: one file per block, safe to read from other threads and processes. */
  blocks: string
  datastore: string
  /** Model records (models/records.ts). */
  records: string
  /** Embedding cache index (cache/embedding-cache.ts). */
  embedCache: string
}

export function storePaths (dataDir: string): StorePaths {
  const root = join(dataDir, 'store')
  return {
    root,
    blocks: join(root, 'blocks'),
    datastore: join(root, 'datastore'),
    records: join(root, 'records.json'),
    embedCache: join(root, 'embed-cache.json')
  }
}

export interface CreateHeliaInit {
  dataDir: string
  libp2p: Libp2pOptions<NodeServices>
  /** Extra routers, e.g. the provider table fed by adverts (providers.ts). */
  routers?: Router[]
  bitswap?: BitswapOptions
  /** fsync block writes (default true; benchmarks turn it off to measure its cost). */
  fsync?: boolean
}

async function openStores (dataDir: string, fsync?: boolean): Promise<{ blockstore: FastFsBlockstore, datastore: FsDatastore }> {
  const paths = storePaths(dataDir)
  await mkdir(paths.blocks, { recursive: true })
  await mkdir(paths.datastore, { recursive: true })
  const blockstore = new FastFsBlockstore(paths.blocks, { fsync: fsync ?? true })
  const datastore = new FsDatastore(paths.datastore)
  await blockstore.open()
  await datastore.open()
  return { blockstore, datastore }
}

/** Build (not start) a Helia node whose blocks and data live under `<dataDir>/store`. */
export async function createStoreHelia (init: CreateHeliaInit): Promise<StoreHelia> {
  const stores = await openStores(init.dataDir, init.fsync)
  const light = createHeliaLight({ ...stores, routers: init.routers ?? [] })
  const withP2p = withLibp2pLight(light, { ...init.libp2p, start: false })
  return withBitswap(withP2p as unknown as HeliaWithLibp2p, init.bitswap) as unknown as StoreHelia
}

/** Build (not start) a Helia node with no network: for the CLI's local import, list, export and gc. */
export async function createOfflineHelia (init: { dataDir: string, fsync?: boolean }): Promise<Helia> {
  const stores = await openStores(init.dataDir, init.fsync)
  return createHeliaLight(stores)
}
