/**
 * Adverts: what each worker serves, on the adverts topic (hardware summary,
 * models with provider, dtype, measured throughput and queued cost), with a
 * time-to-live, and a final "leaving" advert on stop. Every node, client or
 * worker, keeps the table of live adverts it heard, bounded and pruned.
 *
 * An advert goes out when something changes, not on a clock: at once
 * (debounced) when what the node serves changes (models, readiness,
 * addresses), at most once per `intervalMs` while only its load changes
 * (a model's expected wait or throughput across a band: advert-shape.ts),
 * when a peer subscribes while our last advert reached nobody (a change or
 * such an advert once more at the next tick, in case gossipsub could not
 * send it to a peer yet; a change again 30 s and 2 min later, for the nodes
 * gossip missed while the mesh formed), and otherwise as a refresh every
 * `refreshMs` — or every 4 s per peer in the table, if that is longer, so
 * that the adverts a node takes in stay near one every 4 s however large
 * the swarm — each refresh drawn at random within ±25 % of that, so that
 * nodes started together do not refresh in bursts, and within half the
 * last advert's TTL. The TTL is three refreshes. An idle swarm sends
 * next to nothing. A worker that crashed lingers in tables for its TTL
 * (minutes in a large swarm); a client that cannot reach it passes it over
 * (jobs/auction.ts).
 *
 * - An advert's addresses must end in its sender's own peer id; others are
 *   dropped, so one advert cannot make the swarm dial an arbitrary host.
 * - A restarted peer is recognised by a new `bootId` (its `seq` starts
 *   again at 0); within one boot, an older `seq` is ignored.
 * - The directory protocol (swarm/directory.ts) hands a fresh client the
 *   table as hints, so it can dial the workers that serve its job at once
 *   instead of waiting for their next refresh. Hints never override a
 *   peer's own advert.
 */
import { randomBytes } from 'node:crypto'
import type { Message } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { errorMessage } from '../../errors.ts'
import type { Logger } from '../../logger.ts'
import { BoundedMap } from '../wire/bounded.ts'
import { prepare } from './advert-shape.ts'
import type { AdvertBody, Prepared } from './advert-shape.ts'
import { DirectoryExchange } from './directory.ts'
import { decodeMessage, encodeMessage } from '../wire/codec.ts'
import type { NodeServices } from './libp2p.ts'
import { advertSchema } from '../wire/messages.ts'
import type { Advert, AdvertModel, Directory } from '../wire/messages.ts'
import { ADVERTS_TOPIC, MAX_DIRECTORY_PEERS, MAX_GOSSIP_BYTES, PROTOCOL_VERSION } from '../wire/protocol.ts'
import type { SkillsetName } from '../../interfaces/index.ts'

export type { AdvertBody } from './advert-shape.ts'

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
  /** When a change goes out again after it (default SETTLE_REPEATS_MS, 30 s and 2 min). */
  settleRepeatsMs?: readonly number[]
}

/**
 * A refresh comes at least this many ms apart per peer in the table: a node takes in about one advert every 4 s.
 * Each advert a node takes in costs it ~1.5 ms of CPU (its signature, a few duplicate copies, forwards to its mesh:
 * 64 nodes on 2 cores); at 1 s per peer the refreshes alone were ~1.5 ms/s per idle node.
 */
const REFRESH_PER_PEER_MS = 4000
/** Each refresh comes within ±25 % of the refresh period, at random. */
const REFRESH_JITTER = 0.25
/**
 * After a change, the advert goes out again this long after it (each one that comes before the refresh would). Gossip
 * sometimes misses a node while the mesh forms, or hands a node that has just joined an older copy from its message
 * cache after the newer one: 64 nodes started together, 3 to 26 of them still held some worker's first advert (model
 * not loaded yet) a minute on, until that worker's refresh minutes later. Two repeats per change cost each node two
 * adverts taken in per worker that changed.
 */
const SETTLE_REPEATS_MS = [30_000, 120_000]

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
  /** Workers named by directories (`firstHand`: by the worker itself, as the asker of one), until their own advert comes. */
  private readonly hints = new Map<string, { peerId: string, models: AdvertModel[], addrs: Multiaddr[], expiresAt: number, firstHand: boolean }>()
  private timer: NodeJS.Timeout | undefined
  private debounce: NodeJS.Timeout | undefined
  private seq = 0
  private readonly bootId = randomBytes(12).toString('base64url')
  private started = false
  private readonly decoded = new WeakMap<Message, Advert>()
  readonly stats = { dropped: 0, foreignAddrs: 0, restarts: 0, directoriesServed: 0, directoriesFetched: 0, badHints: 0 }
  private readonly onMessage = (evt: CustomEvent<Message>): void => { this.receive(evt.detail) }
  /** What the last advert said: its shape (load left out) and its load, and when it went. */
  private last: { shape: string, load: string, at: number, ttlMs: number } | undefined
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
  /** When the last change goes out again (SETTLE_REPEATS_MS after it), unless an advert went out shortly before. */
  private settleAt: number[] = []
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

  private readonly exchange: DirectoryExchange

  constructor (init: AdvertsInit) {
    this.init = init
    this.exchange = new DirectoryExchange({
      libp2p: init.libp2p,
      log: init.log,
      stats: this.stats,
      self: () => init.build?.(),
      answer: () => this.directory(),
      hint: (peerId, models, addrs, ttlMs, firstHand) => this.hint(peerId, models, addrs, ttlMs ?? this.ttlMs, firstHand),
      // A hint lives until the worker's own refresh may come, which its table (about the size of the directory that
      // named it) sets: a node that has just joined, its own table still small, would drop hints minutes too early.
      hintTtlMs: (named) => Math.min(3_600_000, Math.max(this.ttlMs, 3 * REFRESH_PER_PEER_MS * named))
    })
  }

  get intervalMs (): number { return this.init.intervalMs ?? 5000 }
  /** How often an unchanged advert is re-sent now, on average: `refreshMs`, or 4 s per peer in the table if longer. */
  get refreshMs (): number { return Math.max(this.init.refreshMs ?? 60_000, this.intervalMs, REFRESH_PER_PEER_MS * this.table.size) }
  /** How long this node's adverts (and the hints it takes from directories) live: three refreshes (at least two and a bit, jittered). */
  get ttlMs (): number { return Math.min(3_600_000, 3 * this.refreshMs) }
  /**
   * When an unchanged advert is due again, after one whose TTL was `lastTtlMs`: the refresh period, jittered, but
   * within half that TTL. The period grows with the table; an advert sent while the table was small must not expire
   * in the swarm's tables before the next one comes (sent at 5 peers with a 180 s TTL, the refresh at 63 peers came
   * 190-315 s later: workers dropped out of tables for a minute or two).
   */
  private refreshDueMs (lastTtlMs: number): number {
    return Math.min(this.refreshMs, lastTtlMs / 2) * this.refreshFactor
  }

  /** Whether a directory request is in flight: a client that has just joined may yet learn of workers. */
  get fetching (): boolean { return this.exchange.fetching }
  /** Malformed adverts dropped. */
  get dropped (): number { return this.stats.dropped }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    const { pubsub } = this.init.libp2p.services
    pubsub.topicValidators.set(ADVERTS_TOPIC, (_peer, msg) => this.validate(msg))
    pubsub.subscribe(ADVERTS_TOPIC)
    pubsub.addEventListener('message', this.onMessage)
    await this.exchange.start()
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
    await this.exchange.stop()
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
      : next.load !== last.load ? 'load' : this.newSubscribers ? 'subscribers' : this.repeatDue || (this.settleAt[0] ?? Infinity) <= performance.now() ? 'repeat' : performance.now() - last.at >= this.refreshDueMs(last.ttlMs) ? 'refresh' : undefined
    if (why !== undefined) void this.publish(false, why, next)
  }

  private async publish (leaving: boolean, why: keyof Adverts['sent'] = 'change', prepared?: Prepared): Promise<void> {
    if (this.init.build === undefined) return
    const { body, shape, load } = prepared ?? prepare(this.init.build())
    const ttlMs = this.ttlMs
    const now = performance.now()
    this.last = { shape, load, at: now, ttlMs }
    this.refreshFactor = 1 - REFRESH_JITTER + 2 * REFRESH_JITTER * Math.random()
    // Any advert carries the latest state: one now stands in for a settle repeat due within an interval.
    this.settleAt = why === 'change'
      ? (this.init.settleRepeatsMs ?? SETTLE_REPEATS_MS).filter((d) => d < this.refreshDueMs(ttlMs)).map((d) => now + d)
      : this.settleAt.filter((t) => t > now + this.intervalMs)
    this.newSubscribers = false
    // A peer whose subscription we heard may not have our outbound gossip stream yet (a loaded host): say it twice.
    this.repeatDue = why === 'change' || why === 'subscribers'
    if (!leaving) this.sent[why]++
    const advert: Advert = { v: PROTOCOL_VERSION, t: 'advert', bootId: this.bootId, seq: this.seq++, ttlMs, leaving, ...body }
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

  /**
   * This node's table as a directory answer: itself first (when it advertises), then the peers it heard, then the
   * workers that named themselves to it. Hints taken from other directories are not passed on: each pass would renew
   * them, and a worker that died could live on in the swarm's hints for ever.
   */
  directory (): Directory {
    const peers: Directory['peers'] = []
    if (this.init.build !== undefined) {
      const self = this.init.build()
      peers.push({ peerId: this.init.libp2p.peerId.toString(), addrs: self.addrs, models: self.models })
    }
    for (const p of this.peers()) peers.push({ peerId: p.peerId, addrs: p.advert.addrs, models: p.advert.models })
    for (const h of this.hints.values()) if (h.firstHand) peers.push({ peerId: h.peerId, addrs: h.addrs.map(String), models: h.models })
    return { v: PROTOCOL_VERSION, t: 'directory', peers: peers.slice(0, MAX_DIRECTORY_PEERS) }
  }

  /** Take a worker named by a directory (or by the asker of one) as a hint for `ttlMs`; true when it is kept. */
  private hint (peerId: string, models: AdvertModel[], addrs: readonly string[], ttlMs: number, firstHand: boolean): boolean {
    if (peerId === this.init.libp2p.peerId.toString() || this.table.has(peerId)) return false
    // What the worker said of itself is not overwritten by what others say of it.
    if (!firstHand && this.hints.get(peerId)?.firstHand === true) return true
    this.hints.delete(peerId)
    this.hints.set(peerId, { peerId, models, addrs: ownAddrs(peerId, addrs), expiresAt: performance.now() + ttlMs, firstHand })
    while (this.hints.size > (this.init.maxPeers ?? 4096)) this.hints.delete(this.hints.keys().next().value as string)
    return this.hints.has(peerId)
  }

  /** Ask a peer for its directory (at most once a minute; again 2 s after a failure): see swarm/directory.ts. */
  async learnFrom (peer: PeerId, timeoutMs = 5000): Promise<void> { await this.exchange.learnFrom(peer, timeoutMs) }

  /** Ask a connected peer for its directory and keep its entries as hints; how many it named. */
  async fetchDirectory (peer: PeerId, signal: AbortSignal): Promise<number> { return await this.exchange.fetchDirectory(peer, signal) }
}
