/** What the model store's parts share: the components they run on, and progress events. */
import type { Blocks, Pins } from '@helia/interface'
import type { Libp2p } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import type { SkillsetName } from '../../interfaces/index.ts'
import type { ModelCatalog } from '../../models/catalog.ts'
import type { ModelFile } from './records.ts'
import type { BlockExchange } from '../exchange/block-exchange.ts'
import type { ProviderTable } from '../exchange/providers.ts'

export interface StoreProgress {
  phase: 'import' | 'fetch' | 'bitswap' | 'hash' | 'export' | 'verify'
  bytes: number
  totalBytes?: number
}

export interface ModelStoreComponents {
  blockstore: Pick<Blocks, 'get' | 'put' | 'has' | 'delete' | 'getAll'> & Partial<Pick<Blocks, 'createSession'>>
  pins: Pick<Pins, 'add' | 'rm' | 'isPinned' | 'ls'>
  /** Absent for an offline store: pull then fails with a clear error. */
  exchange?: BlockExchange
  libp2p?: Pick<Libp2p, 'dial' | 'getPeers'>
  providers?: ProviderTable
}

export interface ModelStoreInit {
  dataDir: string
  catalog?: ModelCatalog
  /** Unpinned blocks that gc must keep (the embedding cache's). */
  keep?: (cid: CID) => boolean
  /** Peers whose manifests are believed when a pull names a model by id (default: none; pulls by CID work with any peer). */
  trustedPeers?: readonly string[]
  /** The largest model a pull takes (config store.maxPullMB). */
  maxPullBytes?: number
  /** Free bytes where blocks are written (default: statfs of the blocks folder; tests give a disk that is full). */
  freeBytes?: () => Promise<number>
}

export interface ModelSummary {
  id: string
  skillset?: SkillsetName
  cid: string
  size: number
  files: number
  pinned: boolean
  /** Whether the root block is in the local blockstore (gc removes unpinned models). */
  local: boolean
  source: 'import' | 'pull'
  /** 'pending': an import or pull under way; 'interrupted': one a crash cut short (its blocks go at the next gc). */
  state: 'ready' | 'pending' | 'interrupted'
}

/** Where a model's blocks are, for `openModelReader` in another thread. */
export interface StoredModelLocation {
  id: string
  cid: string
  blocksDir: string
  files: ModelFile[]
}

export interface ProgressOption {
  signal?: AbortSignal
  onProgress?: (p: StoreProgress) => void
}
