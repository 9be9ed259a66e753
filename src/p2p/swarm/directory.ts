/**
 * The directory protocol (`/ipfs-accelerate/directory/1.0.0`): on a new
 * connection a node asks the peer for the live workers it knows, naming
 * itself when it advertises, so the peer learns it at once too. The answer
 * becomes hints in the asker's table (swarm/adverts.ts), which never
 * override a worker's own advert. One request per peer a minute at most; a
 * request that failed (a peer too loaded to answer in time) is made again
 * 2 s later, not a minute later: a client that joined a saturated host
 * would otherwise know no worker for a minute.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { errorMessage } from '../../errors.ts'
import type { Logger } from '../../logger.ts'
import { BoundedMap } from '../wire/bounded.ts'
import { decodeMessage, encodeMessage } from '../wire/codec.ts'
import { directoryRequestSchema, directorySchema } from '../wire/messages.ts'
import type { AdvertModel, Directory, DirectoryRequest } from '../wire/messages.ts'
import { DIRECTORY_PROTOCOL, MAX_DIRECTORY_BYTES, PROTOCOL_VERSION } from '../wire/protocol.ts'
import type { NodeServices } from './libp2p.ts'
import { readAll } from './read-all.ts'

export interface DirectoryExchangeInit {
  libp2p: Libp2p<NodeServices>
  log: Logger
  stats: { directoriesServed: number, directoriesFetched: number, badHints: number }
  /** This node's own entry when it advertises (a worker); undefined for a client. */
  self: () => { addrs: string[], models: AdvertModel[] } | undefined
  /** The table as a directory answer. */
  answer: () => Directory
  /** Keep a named worker as a hint (for `ttlMs`, or the table's default; `firstHand` when the worker named itself); true when it was kept. */
  hint: (peerId: string, models: AdvertModel[], addrs: readonly string[], ttlMs: number | undefined, firstHand: boolean) => boolean
  /** How long hints from a directory that names `named` workers live. */
  hintTtlMs: (named: number) => number
}

export class DirectoryExchange {
  private readonly init: DirectoryExchangeInit
  private readonly asked = new BoundedMap<string, Promise<void>>(4096, 60_000)
  /** Peers whose directory could not be read lately: asked again after 2 s, not at once (and not only after a minute). */
  private readonly askFailed = new BoundedMap<string, true>(4096, 2000)
  /** Directory requests in flight. */
  private asking = 0

  constructor (init: DirectoryExchangeInit) {
    this.init = init
  }

  /** Whether a directory request is in flight: a client that has just joined may yet learn of workers. */
  get fetching (): boolean { return this.asking > 0 }

  async start (): Promise<void> {
    await this.init.libp2p.handle(DIRECTORY_PROTOCOL, (stream, connection) => { this.answer(stream, connection.remotePeer.toString()) }, { maxInboundStreams: 32 })
  }

  async stop (): Promise<void> {
    await this.init.libp2p.unhandle(DIRECTORY_PROTOCOL)
  }

  /** Serve one directory request: read the ask (and the asker's own entry), answer, close. */
  private answer (stream: Stream, asker: string): void {
    readAll(stream, MAX_DIRECTORY_BYTES, AbortSignal.timeout(5000)).then((bytes) => {
      const ask = decodeMessage(bytes, directoryRequestSchema, MAX_DIRECTORY_BYTES)
      if (ask.self !== undefined) this.init.hint(asker, ask.self.models, ask.self.addrs, undefined, true)
      this.init.stats.directoriesServed++
      stream.send(encodeMessage(this.init.answer(), MAX_DIRECTORY_BYTES))
      return stream.close({ signal: AbortSignal.timeout(2000) })
    }).catch((err: unknown) => {
      this.init.log.debug('a directory request failed', { peer: asker, error: errorMessage(err) })
      stream.abort(err as Error)
    })
  }

  /**
   * Ask a peer for its directory once a minute at most (bounded, errors
   * logged): a worker does so for every connection it opens, so the peer it
   * joins learns it at once, and it learns the peer's table. A request that
   * failed may be made again 2 s later.
   */
  async learnFrom (peer: PeerId, timeoutMs = 5000): Promise<void> {
    const key = peer.toString()
    const asking = this.asked.get(key)
    if (asking !== undefined) { await asking; return }
    if (this.askFailed.has(key)) return
    this.asking++
    const fetching = this.fetchDirectory(peer, AbortSignal.timeout(timeoutMs)).then((n) => {
      this.init.log.debug('directory', { peer: key, workers: n })
    }, (err: unknown) => {
      this.asked.delete(key)
      this.askFailed.set(key, true)
      this.init.log.debug('no directory from a peer', { peer: key, error: errorMessage(err) })
    }).finally(() => { this.asking-- })
    this.asked.set(key, fetching)
    await fetching
  }

  /**
   * Ask a connected peer for its directory (naming this node, when it
   * advertises) and keep its entries as hints. Returns how many it named.
   */
  async fetchDirectory (peer: PeerId, signal: AbortSignal): Promise<number> {
    const stream = await this.init.libp2p.dialProtocol(peer, DIRECTORY_PROTOCOL, { signal })
    const answer = readAll(stream, MAX_DIRECTORY_BYTES, signal)
    const self = this.init.self()
    const ask: DirectoryRequest = { v: PROTOCOL_VERSION, t: 'ask', ...(self === undefined ? {} : { self: { addrs: self.addrs, models: self.models } }) }
    stream.send(encodeMessage(ask, MAX_DIRECTORY_BYTES))
    await stream.close({ signal })
    const dir = decodeMessage(await answer, directorySchema, MAX_DIRECTORY_BYTES)
    this.init.stats.directoriesFetched++
    let named = 0
    const ttlMs = this.init.hintTtlMs(dir.peers.length)
    for (const p of dir.peers) {
      try {
        peerIdFromString(p.peerId)
      } catch (err) {
        this.init.stats.badHints++
        this.init.log.debug('a directory named something that is not a peer id', { from: peer.toString(), error: errorMessage(err) })
        continue
      }
      if (this.init.hint(p.peerId, p.models, p.addrs, ttlMs, false)) named++
    }
    return named
  }
}
