/**
 * Helia light and its libp2p mixin, without the default network stack that
 * the packages' entry points load.
 *
 * `helia`'s index imports `@helia/libp2p` and `@helia/http` for
 * `createHelia`, and `@helia/libp2p`'s index imports its `libp2pDefaults`:
 * auto-TLS with an ACME client and X.509, WebRTC, UPnP, circuit relay,
 * delegated routing, an HTTP gateway client. None of it runs here (we build
 * our own libp2p options, src/p2p/swarm/libp2p.ts), yet loading it cost every
 * `start` and every store command ~0.5 s of CPU (~700 modules). So this
 * module loads `helia`'s `Helia` class and `@helia/libp2p`'s router from
 * their files, and does what `withLibp2pLight` does (helia 7.1 /
 * @helia/libp2p 2.1: create libp2p on start with Helia's datastore and
 * name, route through it, keep the peers other routers find in the peer
 * store so that they can be dialled by id, stop it with Helia).
 *
 * The file paths are the pinned versions' (package.json pins both exactly);
 * where an upgrade moves them, loading fails with an error that says so.
 */
import type { Helia, Peer, Routing } from '@helia/interface'
import type { HeliaWithLibp2p } from '@helia/libp2p'
import type { HeliaInit } from 'helia'
import type { AbortOptions, Libp2p, ServiceMap } from '@libp2p/interface'
import { peerIdFromCID } from '@libp2p/peer-id'
import { createLibp2p } from 'libp2p'
import type { Libp2pOptions } from 'libp2p'
import type { CID } from 'multiformats/cid'
import { ConfigError } from '../errors.ts'

type HeliaClass = new (init: HeliaInit & { name: string, version: string }) => Helia & { addMixin: (m: Mixin) => void, hasRouter: (name: string) => boolean, addRouter: (r: unknown) => void, routing: Routing, info: { name: string, version: string } }
interface Mixin { name: string, start: (helia: Helia) => Promise<void>, stop: () => Promise<void> }

/** Import `file` next to `pkg`'s entry point. */
async function sibling<T> (pkg: string, file: string): Promise<T> {
  const url = new URL(file, import.meta.resolve(pkg))
  try {
    return await import(url.href) as T
  } catch (err) {
    throw new ConfigError(`cannot load ${file} of ${pkg} (${url.pathname}): src/store/helia-light.ts loads it by path, for the version package.json pins; reinstall (npm ci), or update helia-light.ts to the installed version`, { cause: err })
  }
}

const [{ Helia: HeliaImpl }, { name, version }, { libp2pRouting }] = await Promise.all([
  sibling<{ Helia: HeliaClass }>('helia', './helia.js'),
  sibling<{ name: string, version: string }>('helia', './version.js'),
  sibling<{ libp2pRouting: (libp2p: Libp2p) => unknown }>('@helia/libp2p', './routing.js')
])

export type HeliaLight = InstanceType<HeliaClass>

/** `createHeliaLight` of `helia`: Helia with the routers and blockstore given, no network of its own. */
export function createHeliaLight (init: HeliaInit = {}): HeliaLight {
  return new HeliaImpl({ name, version, ...init })
}


/**
 * `withLibp2pLight` of `@helia/libp2p`: libp2p is created from `opts` when
 * Helia starts (with Helia's datastore and, where `opts` has no
 * `privateKey`, the identity Helia keeps in it) and stopped with it.
 */
export function withLibp2pLight<M extends ServiceMap> (helia: HeliaLight, opts: Libp2pOptions<M>): HeliaWithLibp2p<M> {
  let libp2p: Libp2p<M> | undefined
  Object.defineProperty(helia, 'libp2p', {
    configurable: true,
    enumerable: true,
    get () {
      if (libp2p === undefined) throw new Error('Helia is not started: call helia.start() first')
      return libp2p
    }
  })
  const routing = helia.routing
  helia.addMixin({
    name: 'libp2p',
    start: async () => {
      if (libp2p === undefined) {
        // Without a key (test and bench store peers), the identity is kept in Helia's datastore, as Helia keeps it.
        const privateKey = opts.privateKey ?? await (await import('@libp2p/config')).loadOrCreateSelfKey(helia.datastore)
        const node = await createLibp2p({
          ...opts,
          privateKey,
          datastore: opts.datastore ?? helia.datastore,
          nodeInfo: { name: helia.info.name, version: helia.info.version, userAgent: `${helia.info.name}/${helia.info.version}`, ...opts.nodeInfo }
        })
        libp2p = node
        // Peers other routers find go into the peer store, so that they can be dialled by id.
        const remember = async (peer: Pick<Peer, 'id' | 'multiaddrs' | 'router'>): Promise<void> => {
          if (peer.router === 'libp2p-router') return
          await node.peerStore.merge(peerIdFromCID(peer.id), { multiaddrs: peer.multiaddrs })
        }
        const findProviders = routing.findProviders.bind(routing)
        routing.findProviders = async function * (cid: CID, options?: AbortOptions) {
          for await (const p of findProviders(cid, options)) {
            await remember(p)
            yield p
          }
        }
        const findPeer = routing.findPeer.bind(routing)
        routing.findPeer = async (id, options) => {
          const peer = await findPeer(id, options)
          await remember(peer)
          return peer
        }
        const getClosestPeers = routing.getClosestPeers.bind(routing)
        routing.getClosestPeers = async function * (key, options) {
          for await (const p of getClosestPeers(key, options)) {
            await remember(p)
            yield p
          }
        }
      }
      if (!helia.hasRouter('libp2p-router')) helia.addRouter(libp2pRouting(libp2p))
      if (libp2p.status !== 'started') await libp2p.start()
    },
    stop: async () => { await libp2p?.stop() }
  })
  return helia as unknown as HeliaWithLibp2p<M>
}
