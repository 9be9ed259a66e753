/**
 * Adverts: what each worker serves, on the adverts topic (hardware summary,
 * models with provider, dtype, measured throughput and queued cost), with a
 * time-to-live, and a final "leaving" advert on stop. Every node, client or
 * worker, keeps the table of live adverts it heard, bounded and pruned.
 *
 * An advert goes out when something changes, not on a clock: at once
 * (debounced) when what the node serves changes (models, readiness,
 * addresses), at most once per `intervalMs` while only its load changes
 * (queued cost, depth, throughput), when a peer subscribes while our last
 * advert reached nobody (a change or such an advert once more at the next
 * tick, in case gossipsub could not send it to a peer yet), and otherwise
 * as a refresh every `refreshMs` — or every
 * 4 s per peer in the table, if that is longer, so that the adverts a node
 * takes in stay near one every 4 s however large the swarm — each refresh
 * drawn at random within ±25 % of that, so that nodes started together do
 * not refresh in bursts. The TTL is three refreshes. An idle swarm sends
 * next to nothing. A worker that crashed lingers in tables for its TTL
 * (minutes in a large swarm); a client that cannot reach it passes it over
 * (jobs/auction.ts).
 *
 * - An advert's addresses must end in its sender's own peer id; others are
 *   dropped, so one advert cannot make the swarm dial an arbitrary host.
 * - A restarted peer is recognised by a new `bootId` (its `seq` starts
 *   again at 0); within one boot, an older `seq` is ignored.
 * - The directory protocol hands a fresh client the table as hints, so it
 *   can dial the workers that serve its job at once instead of waiting for
 *   their next heartbeat. Hints never override a peer's own advert.
 */
import { randomBytes } from 'node:crypto'
import type { Message } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { errorMessage } from '../../errors.ts'
import type { Logger } from '../../logger.ts'
import { BoundedMap } from '../wire/bounded.ts'
import { readAll } from './read-all.ts'
import { decodeMessage, encodeMessage } from '../wire/codec.ts'
import type { NodeServices } from './libp2p.ts'
import { advertSchema, directoryRequestSchema, directorySchema } from '../wire/messages.ts'
import type { Advert, AdvertModel, Directory, DirectoryRequest } from '../wire/messages.ts'
import { ADVERTS_TOPIC, DIRECTORY_PROTOCOL, MAX_DIRECTORY_BYTES, MAX_DIRECTORY_PEERS, MAX_GOSSIP_BYTES, PROTOCOL_VERSION } from '../wire/protocol.ts'
import type { SkillsetName } from '../../interfaces/index.ts'

export type AdvertBody = Omit<Advert, 'v' | 't' | 'seq' | 'ttlMs' | 'leaving' | 'bootId'>

export interface PeerAdvert { peerId: string, advert: Advert, expiresAt: number }

/** A worker that serves a model, as the table knows it. */
export interface Serving { peerId: string, model: AdvertModel, addrs: Multiaddr[], source: 'advert' | 'hint' }

export interface AdvertsInit {
  libp2p: Libp2p<NodeServices>
  log: Logger
  /** What to advertise; absent for a client that only listens. */
  build?: () => AdvertBody
  intervalMs?: number
  /** Called for each fresh advert (e.g. to record the sender's addresses). */
  onAdvert?: (peer: PeerAdvert) => void
  /** Called when a peer says it leaves. */
  onLeave?: (peerId: string) => void
  /** Peers kept in the table at most (default 4096). */
  maxPeers?: number
  /** An unchanged advert is re-sent this often at least (default 60 000 ms; longer in a large swarm, see above). */
  refreshMs?: number
}

/**
 * A refresh comes at least this many ms apart per peer in the table: a node takes in about one advert every 4 s.
 * Each advert a node takes in costs it ~1.5 ms of CPU (its signature, a few duplicate copies, forwards to its mesh:
 * 64 nodes on 2 cores); at 1 s per peer the refreshes alone were ~1.5 ms/s per idle node.
 */
const REFRESH_PER_PEER_MS = 4000
/** Each refresh comes within ±25 % of the refresh period, at random. */
const REFRESH_JITTER = 0.25
/** Load fields of an advert's models: a change in these alone waits for `intervalMs`. */
type LoadFree = Omit<AdvertBody, 'queueDepth'> & { models: Array<Omit<AdvertModel, 'queuedCost' | 'throughput'>> }

/** The addresses of an advert that end in its sender's peer id, parsed. */
export function ownAddrs (peerId: string, addrs: readonly string[]): Multiaddr[] {
  const out: Multiaddr[] = []
  for (const a of addrs) {
    if (!a.endsWith(`/p2p/${peerId}`)) continue
    try {
      out.push(multiaddr(a))
    } catch (err) {
      void err // a malformed address is one fewer way to dial the peer, nothing more
    }
  }
  return out
}

export class Adverts {
  private readonly init: AdvertsInit
  private readonly table = new Map<string, PeerAdvert>()
  private readonly hints = new Map<string, { peerId: string, models: AdvertModel[], addrs: Multiaddr[], expiresAt: number }>()
  private timer: NodeJS.Timeout | undefined
  private debounce: NodeJS.Timeout | undefined
  private seq = 0
  private readonly bootId = randomBytes(12).toString('base64url')
  private started = false
  private readonly decoded = new WeakMap<Message, Advert>()
  private readonly asked = new BoundedMap<string, Promise<void>>(4096, 60_000)
  /** Peers whose directory could not be read lately: asked again after 2 s, not at once (and not only after a minute). */
  private readonly askFailed = new BoundedMap<string, true>(4096, 2000)
  /** Directory requests in flight. */
  private asking = 0
  readonly stats = { dropped: 0, foreignAddrs: 0, restarts: 0, directoriesServed: 0, directoriesFetched: 0, badHints: 0 }
  private readonly onMessage = (evt: CustomEvent<Message>): void => { this.receive(evt.detail) }
  /** What the last advert said: its shape (load left out) and its load, and when it went. */
  private last: { shape: string, load: string, at: number } | undefined
  /** This refresh period's share of `refreshMs` (drawn at each advert, within ±REFRESH_JITTER). */
  private refreshFactor = 1
  /** New subscribers to the adverts topic since the last advert (they have not heard us yet). */
  private newSubscribers = false
  /** Peers that subscribed to the adverts topic lately: a peer that re-subscribes is not new. */
  private readonly subscribers = new BoundedMap<string, true>(4096, 10 * 60_000)
  /** How many peers gossipsub handed our last advert to (0 before the first, or when it reached nobody). */
  private reached = 0
  /** Counters: adverts sent, and why. */
  readonly sent = { change: 0, load: 0, subscribers: 0, repeat: 0, refresh: 0 }
  /** A change or a new subscriber's advert goes out once more at the next tick: a copy gossipsub could not send yet is not lost for a refresh period. */
  private repeatDue = false
  /**
   * A peer subscribed. Only while our last advert reached nobody (a node
   * that has just started, or was alone) does that make us advertise, at
   * the next tick (at most once per `intervalMs`; at start the first
   * subscriber, the bootstrap peer, at once). Once an advert is out, a new
   * peer learns us by the directory exchange its connection to us starts
   * (whichever side dialled, it names itself and gets the other's table), so
   * a subscriber costs the swarm nothing: re-advertising for each one sent
   * every worker's advert to every node every `intervalMs` while clients or
   * nodes joined (109 adverts in 20 s from 64 idle nodes still meshing).
   */
  private readonly onSubscription = (evt: CustomEvent<{ peerId: PeerId, subscriptions: Array<{ topic: string, subscribe: boolean }> }>): void => {
    const peer = evt.detail.peerId.toString()
    if (!evt.detail.subscriptions.some((s) => s.topic === ADVERTS_TOPIC && s.subscribe) || this.subscribers.has(peer)) return
    this.subscribers.set(peer, true)
    if (this.reached > 0) return
    this.newSubscribers = true
    if (this.last === undefined || performance.now() - this.last.at >= this.intervalMs) this.publishSoon('subscribers')
  }

  constructor (init: AdvertsInit) {
    this.init = init
  }

  get intervalMs (): number { return this.init.intervalMs ?? 5000 }
  /** How often an unchanged advert is re-sent now, on average: `refreshMs`, or 4 s per peer in the table if longer. */
  get refreshMs (): number { return Math.max(this.init.refreshMs ?? 60_000, this.intervalMs, REFRESH_PER_PEER_MS * this.table.size) }
  /** How long this node's adverts (and the hints it takes from directories) live: three refreshes (at least two and a bit, jittered). */
  get ttlMs (): number { return Math.min(3_600_000, 3 * this.refreshMs) }
  /** Whether a directory request is in flight: a client that has just joined may yet learn of workers. */
  get fetching (): boolean { return this.asking > 0 }
  /** Malformed adverts dropped. */
  get dropped (): number { return this.stats.dropped }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    const { pubsub } = this.init.libp2p.services
    pubsub.topicValidators.set(ADVERTS_TOPIC, (_peer, msg) => this.validate(msg))
    pubsub.subscribe(ADVERTS_TOPIC)
    pubsub.addEventListener('message', this.onMessage)
    await this.init.libp2p.handle(DIRECTORY_PROTOCOL, (stream, connection) => { this.answerDirectory(stream, connection.remotePeer.toString()) }, { maxInboundStreams: 32 })
    if (this.init.build !== undefined) {
      pubsub.addEventListener('subscription-change', this.onSubscription)
      this.timer = setInterval(() => { this.tick() }, this.intervalMs)
      this.timer.unref()
      this.publishSoon()
    }
  }

  /** Publish the "leaving" advert, then stop listening. */
  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    clearTimeout(this.debounce)
    const { pubsub } = this.init.libp2p.services
    pubsub.removeEventListener('subscription-change', this.onSubscription)
    if (this.init.build !== undefined) await this.publish(true)
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.unsubscribe(ADVERTS_TOPIC)
    pubsub.topicValidators.delete(ADVERTS_TOPIC)
    await this.init.libp2p.unhandle(DIRECTORY_PROTOCOL)
  }

  /** Publish soon (debounced), e.g. when a peer joins or what we serve changed. */
  publishSoon (why: keyof Adverts['sent'] = 'change'): void {
    if (this.init.build === undefined || this.debounce !== undefined || !this.started) return
    this.debounce = setTimeout(() => {
      this.debounce = undefined
      void this.publish(false, why)
    }, 50)
    this.debounce.unref()
  }

  /** Each `intervalMs`: advertise if the load changed, new peers subscribed, or the refresh is due; otherwise nothing. */
  private tick (): void {
    if (this.init.build === undefined || this.debounce !== undefined) return
    const next = prepare(this.init.build())
    const last = this.last
    const why = last === undefined || next.shape !== last.shape
      ? 'change'
      : next.load !== last.load ? 'load' : this.newSubscribers ? 'subscribers' : this.repeatDue ? 'repeat' : performance.now() - last.at >= this.refreshMs * this.refreshFactor ? 'refresh' : undefined
    if (why !== undefined) void this.publish(false, why, next)
  }

  private async publish (leaving: boolean, why: keyof Adverts['sent'] = 'change', prepared?: Prepared): Promise<void> {
    if (this.init.build === undefined) return
    const { body, shape, load } = prepared ?? prepare(this.init.build())
    this.last = { shape, load, at: performance.now() }
    this.refreshFactor = 1 - REFRESH_JITTER + 2 * REFRESH_JITTER * Math.random()
    this.newSubscribers = false
    // A peer whose subscription we heard may not have our outbound gossip stream yet (a loaded host): say it twice.
    this.repeatDue = why === 'change' || why === 'subscribers'
    if (!leaving) this.sent[why]++
    const advert: Advert = { v: PROTOCOL_VERSION, t: 'advert', bootId: this.bootId, seq: this.seq++, ttlMs: this.ttlMs, leaving, ...body }
    try {
      const { recipients } = await this.init.libp2p.services.pubsub.publish(ADVERTS_TOPIC, encodeMessage(advert, MAX_GOSSIP_BYTES))
      this.reached = recipients.length
    } catch (err) {
      this.init.log.warn('could not publish an advert', { error: errorMessage(err) })
    }
  }

  private validate (msg: Message): TopicValidatorResult {
    if (msg.type !== 'signed') { this.stats.dropped++; return TopicValidatorResult.Reject }
    try {
      this.decoded.set(msg, decodeMessage(msg.data, advertSchema, MAX_GOSSIP_BYTES))
      return TopicValidatorResult.Accept
    } catch (err) {
      this.stats.dropped++
      this.init.log.debug('rejected a malformed advert', { from: msg.from.toString(), error: errorMessage(err) })
      return TopicValidatorResult.Reject
    }
  }

  private receive (msg: Message): void {
    if (msg.topic !== ADVERTS_TOPIC || msg.type !== 'signed') return
    const advert = this.decoded.get(msg)
    if (advert === undefined) return
    this.accept(msg.from.toString(), advert)
  }

  /** Take a validated advert from `peerId` (exposed for tests). */
  accept (peerId: string, advert: Advert): void {
    if (advert.leaving) {
      const known = this.table.get(peerId)
      if (known === undefined || known.advert.bootId === advert.bootId) {
        this.table.delete(peerId)
        this.hints.delete(peerId)
        this.init.onLeave?.(peerId)
      }
      return
    }
    const prev = this.table.get(peerId)
    if (prev !== undefined && prev.advert.bootId === advert.bootId && prev.advert.seq > advert.seq) return
    if (prev !== undefined && prev.advert.bootId !== advert.bootId) this.stats.restarts++
    const addrs = advert.addrs.filter((a) => a.endsWith(`/p2p/${peerId}`))
    if (addrs.length < advert.addrs.length) this.stats.foreignAddrs++
    const entry = { peerId, advert: { ...advert, addrs }, expiresAt: performance.now() + advert.ttlMs }
    this.table.delete(peerId) // re-insert: the map's order is the order of freshness
    this.table.set(peerId, entry)
    this.hints.delete(peerId)
    const max = this.init.maxPeers ?? 4096
    while (this.table.size > max) this.table.delete(this.table.keys().next().value as string)
    this.init.onAdvert?.(entry)
  }

  /** Live adverts, expired ones pruned. */
  peers (): PeerAdvert[] {
    this.prune()
    return [...this.table.values()]
  }

  private prune (): void {
    const now = performance.now()
    for (const [id, p] of this.table) if (p.expiresAt <= now) this.table.delete(id)
    for (const [id, h] of this.hints) if (h.expiresAt <= now) this.hints.delete(id)
  }

  /** Workers that serve a model of the skillset (`model` absent: any), from adverts and, where none, hints. */
  serving (skillset: SkillsetName, model: string | undefined): Serving[] {
    this.prune()
    const fits = (m: AdvertModel): boolean => m.skillset === skillset && m.loaded && (model === undefined || m.id === model)
    const out: Serving[] = []
    for (const p of this.table.values()) {
      const m = p.advert.models.find(fits)
      if (m !== undefined) out.push({ peerId: p.peerId, model: m, addrs: ownAddrs(p.peerId, p.advert.addrs), source: 'advert' })
    }
    for (const h of this.hints.values()) {
      if (this.table.has(h.peerId)) continue
      const m = h.models.find(fits)
      if (m !== undefined) out.push({ peerId: h.peerId, model: m, addrs: h.addrs, source: 'hint' })
    }
    return out
  }

  /**
   * Whether a peer may serve a model of the skillset (`model` absent: any):
   * true unless its advert (or, with none, its directory hint) lists no such
   * model, loaded or not. A peer this table does not know may.
   */
  mayServe (peerId: string, skillset: SkillsetName, model: string | undefined): boolean {
    this.prune()
    const models = this.table.get(peerId)?.advert.models ?? this.hints.get(peerId)?.models
    return models === undefined || models.some((m) => m.skillset === skillset && (model === undefined || m.id === model))
  }

  /** Every model id the swarm serves, as far as this table knows, by skillset. */
  served (): Array<{ skillset: SkillsetName, id: string }> {
    this.prune()
    const seen = new Map<string, { skillset: SkillsetName, id: string }>()
    for (const p of this.table.values()) for (const m of p.advert.models) if (m.loaded) seen.set(`${m.skillset}:${m.id}`, { skillset: m.skillset, id: m.id })
    for (const h of this.hints.values()) for (const m of h.models) if (m.loaded) seen.set(`${m.skillset}:${m.id}`, { skillset: m.skillset, id: m.id })
    return [...seen.values()].sort((a, b) => `${a.skillset}:${a.id}`.localeCompare(`${b.skillset}:${b.id}`))
  }

  /** This node's table as a directory answer: itself first (when it advertises), then the peers it heard, then its hints. */
  directory (): Directory {
    const peers: Directory['peers'] = []
    if (this.init.build !== undefined) {
      const self = this.init.build()
      peers.push({ peerId: this.init.libp2p.peerId.toString(), addrs: self.addrs, models: self.models })
    }
    for (const p of this.peers()) peers.push({ peerId: p.peerId, addrs: p.advert.addrs, models: p.advert.models })
    for (const h of this.hints.values()) peers.push({ peerId: h.peerId, addrs: h.addrs.map(String), models: h.models })
    return { v: PROTOCOL_VERSION, t: 'directory', peers: peers.slice(0, MAX_DIRECTORY_PEERS) }
  }

  private hint (peerId: string, models: AdvertModel[], addrs: readonly string[]): void {
    if (peerId === this.init.libp2p.peerId.toString() || this.table.has(peerId)) return
    this.hints.delete(peerId)
    this.hints.set(peerId, { peerId, models, addrs: ownAddrs(peerId, addrs), expiresAt: performance.now() + this.ttlMs })
    while (this.hints.size > (this.init.maxPeers ?? 4096)) this.hints.delete(this.hints.keys().next().value as string)
  }

  /** Serve one directory request: read the ask (and the asker's own entry), answer, close. */
  private answerDirectory (stream: Stream, asker: string): void {
    readAll(stream, MAX_DIRECTORY_BYTES, AbortSignal.timeout(5000)).then((bytes) => {
      const ask = decodeMessage(bytes, directoryRequestSchema, MAX_DIRECTORY_BYTES)
      if (ask.self !== undefined) this.hint(asker, ask.self.models, ask.self.addrs)
      this.stats.directoriesServed++
      stream.send(encodeMessage(this.directory(), MAX_DIRECTORY_BYTES))
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
   * failed (a peer too loaded to answer in time) may be made again 2 s later.
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
    const self = this.init.build?.()
    const ask: DirectoryRequest = { v: PROTOCOL_VERSION, t: 'ask', ...(self === undefined ? {} : { self: { addrs: self.addrs, models: self.models } }) }
    stream.send(encodeMessage(ask, MAX_DIRECTORY_BYTES))
    await stream.close({ signal })
    const dir = decodeMessage(await answer, directorySchema, MAX_DIRECTORY_BYTES)
    this.stats.directoriesFetched++
    let named = 0
    for (const p of dir.peers) {
      try {
        peerIdFromString(p.peerId)
      } catch (err) {
        this.stats.badHints++
        this.init.log.debug('a directory named something that is not a peer id', { from: peer.toString(), error: errorMessage(err) })
        continue
      }
      this.hint(p.peerId, p.models, p.addrs)
      if (this.hints.has(p.peerId)) named++
    }
    return named
  }
}

/** An advert body with its shape (what it serves, where) and its load (queued cost, depth, throughput), each as a string to compare. */
interface Prepared { body: AdvertBody, shape: string, load: string }

function prepare (body: AdvertBody): Prepared {
  const shape: LoadFree = { ...body, models: body.models.map(({ queuedCost: _q, throughput: _t, ...m }) => m) }
  delete (shape as Partial<AdvertBody>).queueDepth
  return { body, shape: JSON.stringify(shape), load: JSON.stringify([body.queueDepth, body.models.map((m) => [m.queuedCost, m.throughput])]) }
}
