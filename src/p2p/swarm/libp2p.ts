/**
 * libp2p options for worker nodes and clients: TCP + noise + yamux,
 * identify, gossipsub (StrictSign), mDNS and bootstrap discovery; with a
 * swarm key, a pre-shared-key connection protector (private swarm).
 * Helia composes the worker's libp2p from these options (src/store).
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub } from '@libp2p/gossipsub'
import { createPeerScoreParams, createTopicScoreParams } from '@libp2p/gossipsub/score'
import type { GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Identify } from '@libp2p/identify'
import type { PeerDiscovery, PrivateKey } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { tcp } from '@libp2p/tcp'
import type { Libp2pOptions } from 'libp2p'
import { MemoryDatastore } from 'datastore-core'
import { nativeNoiseCrypto } from './noise-crypto.ts'
import './yamux-window.ts'
import { swarmProtector } from '../trust/swarm-key.ts'
import { ADVERTS_TOPIC, MAX_GOSSIP_BYTES, jobsTopic } from '../wire/protocol.ts'
import { SKILLSET_NAMES } from '../../interfaces/index.ts'

export interface NodeServices extends Record<string, unknown> {
  identify: Identify
  pubsub: GossipSub
}

export interface Libp2pInit {
  privateKey?: PrivateKey
  listen: string[]
  bootstrap: string[]
  mdns: boolean
  /** mDNS service tag: lets tests keep separate swarms apart. */
  mdnsServiceTag?: string
  /** A private swarm's pre-shared key (32 bytes, src/p2p/trust/swarm-key.ts): only peers with the same key can connect. */
  swarmKey?: Uint8Array
}

const ALLOWED_TOPICS = [ADVERTS_TOPIC, ...SKILLSET_NAMES.map(jobsTopic)]

/**
 * Peer scoring: a message our topic validators reject (malformed offer or
 * advert) counts against its sender, squared, decaying 10% a second: three
 * in quick succession take a peer below the graylist threshold (-80), and
 * its messages are ignored until the count decays.
 * Scoring by IP colocation is off: short-lived `submit` processes and
 * gateways on one host (or behind one NAT) are how clients run. With
 * gossipsub's default (-5 per peer past 10 on one IP, squared, counting
 * every peer the IP had in the last hour, since scores are kept that long)
 * the 15th `submit` on a host was graylisted: its offers were dropped and
 * it heard no adverts.
 */
export const INVALID_MESSAGE_WEIGHT = -10
const topicScore = createTopicScoreParams({
  topicWeight: 1,
  timeInMeshWeight: 0,
  firstMessageDeliveriesWeight: 0,
  meshMessageDeliveriesWeight: 0,
  meshFailurePenaltyWeight: 0,
  invalidMessageDeliveriesWeight: INVALID_MESSAGE_WEIGHT,
  invalidMessageDeliveriesDecay: 0.9
})
const SCORE_PARAMS = createPeerScoreParams({
  IPColocationFactorWeight: 0,
  topics: Object.fromEntries(ALLOWED_TOPICS.map((t) => [t, topicScore]))
})

/** gossipsub's duplicate check before validation: sender and seqno, the StrictSign message id. */
export function fastMsgIdFn (msg: { from?: Uint8Array, seqno?: Uint8Array }): string {
  return msg.from === undefined || msg.seqno === undefined ? '' : Buffer.from(msg.from).toString('latin1') + '/' + Buffer.from(msg.seqno).toString('latin1')
}

/** How often the connection monitor pings each connection (see connectionMonitor below). */
const PING_INTERVAL_MS = 300_000
/** Twice the ping interval: a live connection always has traffic within it. */
const SOCKET_IDLE_MS = 2 * PING_INTERVAL_MS

export function libp2pOptions (init: Libp2pInit): Libp2pOptions<NodeServices> {
  const peerDiscovery: Array<(components: any) => PeerDiscovery> = []
  if (init.bootstrap.length > 0) peerDiscovery.push(bootstrap({ list: init.bootstrap, timeout: 0 }))
  if (init.mdns) peerDiscovery.push(mdns({ serviceTag: init.mdnsServiceTag ?? 'ipfs-accelerate.local', interval: 30_000 }))
  return {
    ...(init.privateKey === undefined ? {} : { privateKey: init.privateKey }),
    // The peer store lives in memory: on Helia's filesystem datastore every
    // new stream paid for peer-store reads and writes on disk (3-10 ms each).
    // The identity persists separately (identity.key).
    datastore: new MemoryDatastore(),
    addresses: { listen: init.listen },
    // A socket with no traffic for 2 minutes (@libp2p/tcp's default) was closed: with pings every 5 minutes, an idle
    // swarm dropped its quiet connections at 2 minutes (29 to 9 per node at 64 nodes) and the auto-dialer, below its
    // 8, reopened new ones on the next adverts, to close again 2 minutes on (a handshake and a directory exchange on
    // both sides each time: ~1.5 ms of CPU a second per node, more than the idle swarm's own work). A connection is
    // closed when its peer goes (TCP), its ping fails, or the connection manager prunes it, not for being quiet.
    transports: [tcp({ inboundSocketInactivityTimeout: SOCKET_IDLE_MS, outboundSocketInactivityTimeout: SOCKET_IDLE_MS })],
    // Native ChaCha20-Poly1305 with cached keys: noise's default rebuilt the key every frame.
    connectionEncrypters: [noise({ crypto: nativeNoiseCrypto })],
    ...(init.swarmKey === undefined ? {} : { connectionProtector: swarmProtector(init.swarmKey) }),
    // No yamux keep-alive pings (one per connection every 30 s): the connection monitor pings each connection every 60 s.
    streamMuxers: [yamux({ enableKeepAlive: false })],
    peerDiscovery,
    // libp2p pings every connection every 10 s by default (a stream and a protocol negotiation each; /ipfs/ping is not
    // served here, which the monitor takes as alive), all of a node's connections at once. Jobs have their own
    // heartbeats and stall detection, and a host that closed or reset its end is seen at once; one that vanished
    // (power, network) is found by the ping that fails, within 5 minutes (TCP keep-alive, on in @libp2p/tcp, waits the
    // kernel's 2 hours). At 60 s, 64 idle nodes spent ~3 ms of CPU a second each on pings.
    connectionMonitor: { pingInterval: PING_INTERVAL_MS },
    connectionManager: {
      maxConnections: 512,
      // libp2p's defaults (5 connections a second per host, 10 handshakes at
      // once) reset the connections of a burst of short-lived `submit`
      // processes on one host, which is how users run them.
      inboundConnectionThreshold: 100,
      maxIncomingPendingConnections: 64
    },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictSign',
        allowPublishToZeroTopicPeers: true,
        floodPublish: true,
        emitSelf: false,
        maxInboundDataLength: MAX_GOSSIP_BYTES * 2,
        allowedTopics: ALLOWED_TOPICS,
        scoreParams: SCORE_PARAMS,
        // gossipsub's default: offers go directly to workers, gossip is the fallback, and an idle node paid ~25 ms of CPU a second at 500.
        heartbeatInterval: 1000,
        // Duplicates are dropped before their signature is checked: under StrictSign a message's id is its sender and
        // seqno, which only the sender's key can sign, and only a copy that passed the check enters this cache.
        // Without it every copy from each mesh peer paid an ed25519 verify (a third of an idle node's CPU).
        fastMsgIdFn,
        // An idle swarm's traffic is its adverts (swarm/adverts.ts). Flood publish already hands each advert to every
        // connected subscriber, so the mesh and gossip are the repair path, sized down: every node forwards each first
        // copy to its whole mesh, so a node took in about one copy per mesh peer (6.8 copies of each advert at 64 nodes
        // with a mesh of 4 to 8, ~3 ms of CPU per advert); a mesh of 3 to 4 still joins a random graph of this degree.
        // IHAVE gossip goes to 2 peers a heartbeat instead of a quarter of all non-mesh peers (14 of 57 at 64 nodes,
        // every second); no IDONTWANT for messages under 16 KiB (every advert and offer: one frame to each mesh peer per
        // message, to save a copy of about the same size).
        D: 3,
        Dlo: 2,
        Dhi: 4,
        Dout: 1,
        Dscore: 2,
        Dlazy: 2,
        gossipFactor: 0,
        idontwantMinDataSize: 16 * 1024
      })
    }
  }
}
