/**
 * libp2p 3 does not dial the peers that discovery (mDNS, bootstrap) finds:
 * this does, once per peer at a time, with a timeout, up to a number of
 * connections, and logs failures.
 */
import type { Libp2p, PeerInfo } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../../logger.ts'

export interface AutoDialer { stop(): void, dial(addrs: Multiaddr[] | PeerInfo): void }

export interface AutoDialOptions {
  timeoutMs?: number
  /** Dial nothing more once this many connections are open (a swarm of hundreds need not be a full mesh). */
  maxConnections?: number
}

export function autoDial (libp2p: Libp2p, log: Logger, options: AutoDialOptions = {}): AutoDialer {
  const timeoutMs = options.timeoutMs ?? 5000
  const maxConnections = options.maxConnections ?? Infinity
  const dialing = new Set<string>()
  let stopped = false
  const dial = (target: PeerInfo | Multiaddr[]): void => {
    if (stopped) return
    const id = Array.isArray(target) ? target[0]?.getComponents().find((c) => c.name === 'p2p')?.value : target.id.toString()
    if (id === undefined || id === libp2p.peerId.toString() || dialing.has(id)) return
    const conns = libp2p.getConnections()
    if (conns.length >= maxConnections || conns.some((c) => c.remotePeer.toString() === id)) return
    const addrs = Array.isArray(target) ? target : target.multiaddrs
    if (addrs.length === 0) return
    dialing.add(id)
    libp2p.dial(Array.isArray(target) ? target : target.id, { signal: AbortSignal.timeout(timeoutMs) }).then(() => {
      log.debug('connected to a discovered peer', { peer: id })
    }, (err: unknown) => {
      log.debug('could not dial a discovered peer', { peer: id, error: (err as Error).message })
    }).finally(() => { dialing.delete(id) })
  }
  const onDiscovery = (evt: CustomEvent<PeerInfo>): void => { dial(evt.detail) }
  libp2p.addEventListener('peer:discovery', onDiscovery)
  return {
    dial,
    stop: () => {
      stopped = true
      libp2p.removeEventListener('peer:discovery', onDiscovery)
    }
  }
}
