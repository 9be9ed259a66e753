/**
 * Provider records without a central server or a DHT: which peers hold
 * which model root CIDs, learned from their adverts (the node feeds them
 * in) and from `has` answers, each with a time-to-live. The table is also
 * a Helia router, so bitswap sessions find the same providers.
 */
import type { Provider, Router, RoutingOptions } from '@helia/interface'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { CID } from 'multiformats/cid'

export interface ProviderEntry {
  peerId: PeerId
  multiaddrs: Multiaddr[]
  expiresAt: number
}

export const PROVIDER_ROUTER_NAME = 'ipfs-accelerate-providers'
const MAX_ROOTS_PER_PEER = 4096

export class ProviderTable {
  /** root CID string → peer id string → entry */
  private readonly byCid = new Map<string, Map<string, ProviderEntry>>()
  private readonly now: () => number

  constructor (init: { now?: () => number } = {}) {
    this.now = init.now ?? Date.now
  }

  /** Record that `peer` holds the whole DAG of each of `cids` for `ttlMs`. */
  add (cids: Array<CID | string>, peer: PeerId | string, options: { multiaddrs?: Multiaddr[], ttlMs: number }): void {
    const peerId = typeof peer === 'string' ? peerIdFromString(peer) : peer
    const expiresAt = this.now() + options.ttlMs
    for (const c of cids.slice(0, MAX_ROOTS_PER_PEER)) {
      const key = c.toString()
      let peers = this.byCid.get(key)
      if (peers === undefined) {
        peers = new Map()
        this.byCid.set(key, peers)
      }
      const prev = peers.get(peerId.toString())
      peers.set(peerId.toString(), { peerId, multiaddrs: options.multiaddrs ?? prev?.multiaddrs ?? [], expiresAt })
    }
  }

  /**
   * Replace what a peer's advert says it holds (roots it no longer names are
   * dropped). Call with an empty list when it leaves.
   */
  setFromAdvert (peer: PeerId | string, cids: string[], options: { multiaddrs?: Multiaddr[], ttlMs: number }): void {
    this.removePeer(peer)
    if (cids.length > 0) this.add(cids, peer, options)
  }

  removePeer (peer: PeerId | string): void {
    const id = peer.toString()
    for (const [cid, peers] of this.byCid) {
      peers.delete(id)
      if (peers.size === 0) this.byCid.delete(cid)
    }
  }

  /** Live providers of a root, expired entries pruned. */
  find (cid: CID | string): ProviderEntry[] {
    const peers = this.byCid.get(cid.toString())
    if (peers === undefined) return []
    const now = this.now()
    for (const [id, e] of peers) if (e.expiresAt <= now) peers.delete(id)
    if (peers.size === 0) this.byCid.delete(cid.toString())
    return [...peers.values()]
  }

  /** A Helia router answering findProviders from this table. */
  router (): Router {
    const findProviders = async function * (this: ProviderTable, cid: CID, _options?: RoutingOptions): AsyncGenerator<Provider> {
      for (const e of this.find(cid)) {
        yield { id: e.peerId.toCID(), multiaddrs: e.multiaddrs, router: PROVIDER_ROUTER_NAME, fallback: false }
      }
    }.bind(this)
    return { name: PROVIDER_ROUTER_NAME, findProviders }
  }
}
