/** What the model store's parts share: the components they run on, and progress events. */
import type { Blocks, Pins } from '@helia/interface'
import type { Libp2p } from '@libp2p/interface'
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
