/**
 * The worker side of the job protocol. Offers arrive on the skillsets'
 * gossip topics or directly on a job link; the worker bids only for what it
 * can start now (the node's handler decides, by queued cost), over the link
 * to the client (opening one over the client's connection when needed).
 * A lease (`assign`) runs the job; while the worker holds it, it sends a
 * progress frame every `heartbeatMs`, so the client can tell a stalled
 * worker from a busy one. The outcome goes back on the link; if the link is
 * gone it is kept, so the client can ask for it (`query`) before it offers
 * the job elsewhere.
 *
 * Outcomes are keyed by (client peer, job id): a job id another peer reuses
 * is another job, and no peer is ever handed another peer's outcome. A job
 * leased twice by the same client runs once. Every map here is bounded.
 */
import type { Message } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import { errorCode, errorMessage, JobCancelledError, ProtocolError } from '../errors.ts'
import type { SkillsetName } from '../interfaces/index.ts'
import type { Logger } from '../logger.ts'
import { BoundedMap, PeerBuckets } from './bounded.ts'
import { decodeMessage } from './codec.ts'
import type { JobLink, JobLinks } from './job-link.ts'
import type { NodeServices } from './libp2p.ts'
import { offerSchema } from './messages.ts'
import type { Assign, Bid, LinkFrame, Offer, Result } from './messages.ts'
import { MAX_CONTROL_FRAME_BYTES, MAX_GOSSIP_BYTES, PROTOCOL_VERSION, jobsTopic } from './protocol.ts'
import { hashInput, hashOutput, signResult } from './provenance.ts'
import type { ProvenanceClaim } from './provenance.ts'

/** What a worker knows of a job before its input arrives. */
export type JobHead = Pick<Offer, 'jobId' | 'traceId' | 'skillset' | 'model' | 'cost' | 'inputBytes'>
export type BidTerms = Omit<Bid, 'v' | 't' | 'jobId'>
export type ResultBody = Omit<Result, 'v' | 't' | 'jobId'>
/** What the node's handler returns: the result, and how it was computed (the worker signs it). */
export type RunOutcome = Omit<ResultBody, 'provenance'> & { claim: ProvenanceClaim }

/** What the node decides: whether to bid, and how to run a leased job. */
export interface JobHandler {
  /** Terms of a bid; `{ busy }` when it serves the model but cannot start the job now; undefined when it does not serve it. */
  bid(head: JobHead): BidTerms | { busy: string } | undefined
  run(head: JobHead, assign: Assign, signal: AbortSignal): Promise<RunOutcome>
}

export interface FrameLimits { input: number, output: number }

export interface JobWorkerInit {
  libp2p: Libp2p<NodeServices>
  /** The node's libp2p key: every result is signed with it. */
  privateKey: PrivateKey
  links: JobLinks
  handler: JobHandler
  skillsets: SkillsetName[]
  /** Body limits of assign (input) and result (output) frames, per skillset. */
  limits: (skillset: SkillsetName) => FrameLimits
  log: Logger
  /** Offers a second from one peer, and the burst saved up (default 200, 400). */
  offerRate?: { rate: number, burst: number }
  /** Jobs one client may have in hand here at once (default 1024). */
  maxHeldPerClient?: number
  /**
   * Whose jobs this worker takes (absent: anyone's). A peer it refuses gets
   * ERR_FORBIDDEN for a direct offer or an assign; its gossip offers are
   * ignored (no bid).
   */
  allow?: (peer: string) => boolean
}

interface Held {
  client: string
  head: JobHead
  controller: AbortController
  heartbeatMs: number
  leaseEnd: number
  lastSentAt: number
  outcome?: { t: 'result', body: ResultBody } | { t: 'error', code: string, message: string }
}

const OUTCOME_TTL_MS = 120_000
const BID_TTL_MS = 30_000
const MAX_JOBS = 20_000

export class JobWorker {
  private readonly init: JobWorkerInit
  private started = false
  private readonly active = new Set<Promise<void>>()
  /** Jobs in hand and recent outcomes, by `client/jobId`. */
  private readonly jobs = new BoundedMap<string, Held>(MAX_JOBS, OUTCOME_TTL_MS)
  private readonly bids = new BoundedMap<string, JobHead>(MAX_JOBS, BID_TTL_MS)
  private readonly seen = new BoundedMap<string, true>(MAX_JOBS, 60_000)
  private readonly unreachable = new BoundedMap<string, true>(4096, 30_000)
  private readonly offerBuckets: PeerBuckets
  private readonly heldPerClient = new Map<string, number>()
  private readonly shutdown = new AbortController()
  private readonly decoded = new WeakMap<Message, Offer>()
  private ticker: NodeJS.Timeout | undefined
  /** Counters for /healthz and tests. */
  readonly stats = { offers: 0, directOffers: 0, dropped: 0, rateLimited: 0, bids: 0, busy: 0, unreachable: 0, leases: 0, executions: 0, declined: 0, results: 0, errors: 0, cancelled: 0, expired: 0, queries: 0, badFrames: 0, held: 0, forbidden: 0 }
  private readonly onMessage = (evt: CustomEvent<Message>): void => { this.onGossip(evt.detail) }

  constructor (init: JobWorkerInit) {
    this.init = init
    this.offerBuckets = new PeerBuckets(init.offerRate?.rate ?? 200, init.offerRate?.burst ?? 400)
  }

  start (): void {
    if (this.started) return
    this.started = true
    const { pubsub } = this.init.libp2p.services
    for (const s of this.init.skillsets) {
      // Malformed offers are rejected before delivery, so gossipsub's peer scoring penalises their senders.
      pubsub.topicValidators.set(jobsTopic(s), (_peer, msg) => this.validate(msg))
      pubsub.subscribe(jobsTopic(s))
    }
    pubsub.addEventListener('message', this.onMessage)
    this.init.links.setHandler('worker', {
      limitFor: (link, jobId) => this.limitFor(link.peer, jobId),
      frame: (link, f) => { this.onFrame(link, f) },
      badFrame: (link, jobId, err) => { this.onBadFrame(link, jobId, err) }
    })
    this.ticker = setInterval(() => { this.tick() }, 200)
    this.ticker.unref()
  }

  /** Stop bidding at once; jobs already leased finish (the node drains its queues first). */
  stopBidding (): void {
    if (!this.started) return
    this.started = false
    const { pubsub } = this.init.libp2p.services
    pubsub.removeEventListener('message', this.onMessage)
    for (const s of this.init.skillsets) {
      pubsub.unsubscribe(jobsTopic(s))
      pubsub.topicValidators.delete(jobsTopic(s))
    }
  }

  async stop (graceMs = 10_000): Promise<void> {
    this.stopBidding()
    if (this.active.size > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([Promise.allSettled([...this.active]), new Promise((resolve) => { timer = setTimeout(resolve, graceMs) })])
      clearTimeout(timer)
    }
    clearInterval(this.ticker)
    this.shutdown.abort()
    this.init.links.setHandler('worker', undefined)
  }

  /** Jobs in hand now (leased, not yet answered). */
  get held (): number { return this.stats.held }

  private validate (msg: Message): TopicValidatorResult {
    if (msg.type !== 'signed') return TopicValidatorResult.Reject
    try {
      const offer = decodeMessage(msg.data, offerSchema, MAX_GOSSIP_BYTES)
      if (msg.topic !== jobsTopic(offer.skillset)) throw new ProtocolError(`an offer for ${offer.skillset} on ${msg.topic}`)
      this.decoded.set(msg, offer)
      return TopicValidatorResult.Accept
    } catch (err) {
      this.stats.dropped++
      this.init.log.debug('rejected a malformed offer', { from: msg.from.toString(), error: errorMessage(err) })
      return TopicValidatorResult.Reject
    }
  }

  private onGossip (msg: Message): void {
    if (!msg.topic.startsWith('/ipfs-accelerate/1/jobs/') || msg.type !== 'signed') return
    const offer = this.decoded.get(msg)
    if (offer === undefined) return // rejected by the validator, counted there
    this.stats.offers++
    this.onOffer(offer, msg.from, undefined)
  }

  private limitFor (client: string, jobId: string): number {
    const head = this.bids.get(`${client}/${jobId}`)
    if (head !== undefined) return this.init.limits(head.skillset).input + MAX_CONTROL_FRAME_BYTES
    // A late assign (its bid forgotten) may still come: the largest input any served skillset takes.
    return Math.max(...this.init.skillsets.map((s) => this.init.limits(s).input)) + MAX_CONTROL_FRAME_BYTES
  }

  private onFrame (link: JobLink, f: LinkFrame): void {
    const key = `${link.peer}/${f.jobId}`
    switch (f.t) {
      case 'offer':
        this.stats.directOffers++
        this.onOffer(f, link.peer, link)
        return
      case 'assign':
        this.onAssign(link, f)
        return
      case 'decline':
        this.stats.declined++
        this.bids.delete(key)
        return
      case 'cancel':
        this.cancel(key, 'the client cancelled it')
        return
      case 'query':
        this.stats.queries++
        this.answerQuery(link, f.jobId)
        return
      default:
        this.onBadFrame(link, f.jobId, new ProtocolError(`a \`${f.t}\` frame is not for a worker`))
    }
  }

  private onBadFrame (link: JobLink, jobId: string, err: Error): void {
    this.stats.badFrames++
    const key = `${link.peer}/${jobId}`
    // Only a job this client has with us fails: tell the client, the link stays up.
    if (!this.bids.has(key) && this.jobs.get(key) === undefined) return
    this.bids.delete(key)
    this.init.log.info('a bad frame failed its job', { client: link.peer, jobId, error: err.message })
    void this.sendQuiet(link, { v: PROTOCOL_VERSION, t: 'error', jobId, code: 'ERR_PROTOCOL', message: err.message.slice(0, 2000) })
  }

  private onOffer (offer: Offer, client: PeerId | string, link: JobLink | undefined): void {
    const peer = client.toString()
    if (!this.started) { if (link !== undefined) void this.sendBusy(link, offer.jobId, 'the worker is stopping'); return }
    if (!this.offerBuckets.take(peer)) {
      this.stats.rateLimited++
      if (link !== undefined) void this.sendBusy(link, offer.jobId, 'too many offers from this peer: slow down')
      return
    }
    if (this.forbids(peer)) {
      if (link !== undefined) void this.sendForbidden(link, offer.jobId)
      return
    }
    const key = `${peer}/${offer.jobId}`
    // The same round of an offer may come by gossip and directly: bid once per round.
    const roundKey = `${key}/${offer.round}`
    if (this.seen.has(roundKey)) return
    this.seen.set(roundKey, true)
    if (this.jobs.get(key)?.outcome === undefined && this.jobs.get(key) !== undefined) return // in hand already
    const terms = this.init.handler.bid(offer)
    if (terms === undefined) {
      // Asked directly about a model we do not serve: say so, so the client need not wait for us.
      if (link !== undefined) void this.sendBusy(link, offer.jobId, `this worker does not serve ${offer.model ?? `\`${offer.skillset}\` jobs`}`)
      return
    }
    if ('busy' in terms) {
      this.stats.busy++
      if (link !== undefined) void this.sendBusy(link, offer.jobId, terms.busy)
      return
    }
    if (link === undefined && this.unreachable.has(peer)) return
    const task = this.sendBid(client, offer, terms, link).finally(() => { this.active.delete(task) })
    this.active.add(task)
  }

  private async sendBid (client: PeerId | string, offer: Offer, terms: BidTerms, given: JobLink | undefined): Promise<void> {
    const peer = client.toString()
    let link = given
    if (link === undefined) {
      try {
        link = await this.init.links.get(client, AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(Math.min(2000, offer.ttlMs))]))
      } catch (err) {
        // A client that listens nowhere and has no connection to us cannot hear a bid: it offers directly to the workers it reaches.
        this.stats.unreachable++
        this.unreachable.set(peer, true)
        this.init.log.debug('cannot reach a client to bid', { client: peer, jobId: offer.jobId, error: errorMessage(err) })
        return
      }
    }
    this.bids.set(`${peer}/${offer.jobId}`, offer)
    try {
      await link.send({ v: PROTOCOL_VERSION, t: 'bid', jobId: offer.jobId, ...terms })
      this.stats.bids++
    } catch (err) {
      this.init.log.debug('could not send a bid', { client: peer, jobId: offer.jobId, error: errorMessage(err) })
    }
  }

  /** Whether `allow` refuses this peer (counted). */
  private forbids (peer: string): boolean {
    if (this.init.allow === undefined || this.init.allow(peer)) return false
    this.stats.forbidden++
    return true
  }

  private async sendForbidden (link: JobLink, jobId: string): Promise<void> {
    this.init.log.debug('refused a job from a peer not allowed', { client: link.peer, jobId })
    await this.sendQuiet(link, { v: PROTOCOL_VERSION, t: 'error', jobId, code: 'ERR_FORBIDDEN', message: `this worker takes jobs only from the peers it allows, and ${link.peer} is not one: ask its operator to add it (--allow-peer), or offer the job to another worker` })
  }

  private async sendBusy (link: JobLink, jobId: string, reason: string): Promise<void> {
    await this.sendQuiet(link, { v: PROTOCOL_VERSION, t: 'busy', jobId, reason: reason.slice(0, 200) })
  }

  /** Send a frame whose loss the protocol recovers from (the client times out or asks again): log, do not throw. */
  private async sendQuiet (link: JobLink, f: LinkFrame, maxBytes?: number): Promise<boolean> {
    try {
      await link.send(f, maxBytes)
      return true
    } catch (err) {
      this.init.log.debug('could not send a frame', { client: link.peer, jobId: f.jobId, t: f.t, error: errorMessage(err) })
      return false
    }
  }

  private onAssign (link: JobLink, a: Assign): void {
    const key = `${link.peer}/${a.jobId}`
    this.bids.delete(key)
    if (this.forbids(link.peer)) { void this.sendForbidden(link, a.jobId); return }
    const existing = this.jobs.get(key)
    if (existing !== undefined) {
      // Leased again by the same client (it lost our link): never run twice; answer with what we have.
      existing.leaseEnd = performance.now() + a.leaseMs
      existing.heartbeatMs = a.heartbeatMs
      if (existing.outcome !== undefined) void this.deliver(existing)
      return
    }
    if (!this.started) { void this.sendQuiet(link, { v: PROTOCOL_VERSION, t: 'error', jobId: a.jobId, code: 'ERR_SHUTTING_DOWN', message: 'the worker is stopping: offer the job to another' }); return }
    const perClient = this.heldPerClient.get(link.peer) ?? 0
    if (perClient >= (this.init.maxHeldPerClient ?? 1024)) {
      void this.sendQuiet(link, { v: PROTOCOL_VERSION, t: 'error', jobId: a.jobId, code: 'ERR_QUEUE_FULL', message: `this worker holds ${perClient} jobs of yours already: offer it to another worker` })
      return
    }
    this.stats.leases++
    this.stats.held++
    this.heldPerClient.set(link.peer, perClient + 1)
    const head: JobHead = { jobId: a.jobId, traceId: a.traceId, skillset: a.skillset, cost: a.cost, inputBytes: a.inputBytes, ...(a.model === undefined ? {} : { model: a.model }) }
    const held: Held = { client: link.peer, head, controller: new AbortController(), heartbeatMs: a.heartbeatMs, leaseEnd: performance.now() + a.leaseMs, lastSentAt: performance.now() }
    this.jobs.set(key, held)
    this.init.log.debug('job leased', { jobId: a.jobId, traceId: a.traceId, client: link.peer })
    this.stats.executions++
    const signal = AbortSignal.any([held.controller.signal, this.shutdown.signal])
    const inputHash = hashInput(a.input, a.params)
    const task = this.init.handler.run(head, a, signal).then(async ({ claim, ...body }) => {
      const signature = await signResult(this.init.privateKey, { jobId: a.jobId, client: link.peer, worker: this.init.libp2p.peerId.toString(), model: body.model, ...claim, inputHash, outputHash: hashOutput(body.output) })
      held.outcome = { t: 'result', body: { ...body, provenance: { ...claim, inputHash, signature } } }
    }).catch((err: unknown) => {
      const code = /^ERR_[A-Z0-9_]{1,60}$/.test(errorCode(err)) ? errorCode(err) : 'ERR_INTERNAL'
      held.outcome = { t: 'error', code, message: errorMessage(err).slice(0, 2000) }
      if (code !== 'ERR_JOB_CANCELLED') this.init.log.info('job failed', { jobId: a.jobId, traceId: a.traceId, code, error: errorMessage(err) })
    }).then(async () => {
      this.release(held)
      // Keep the outcome (for a query) for a while even when it could be sent.
      this.jobs.set(key, held)
      if (held.controller.signal.aborted) return // cancelled or expired: the client is not waiting
      await this.deliver(held)
    }).finally(() => { this.active.delete(task) })
    this.active.add(task)
  }

  /** Send a job's outcome on whatever link to its client is open, or one opened over its connection. */
  private async deliver (held: Held): Promise<void> {
    const o = held.outcome
    if (o === undefined) return
    const f: LinkFrame = o.t === 'result'
      ? { v: PROTOCOL_VERSION, t: 'result', jobId: held.head.jobId, ...o.body }
      : { v: PROTOCOL_VERSION, t: 'error', jobId: held.head.jobId, code: o.code, message: o.message }
    let link = this.init.links.find(held.client)
    if (link === undefined) {
      try {
        link = await this.init.links.get(held.client, AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(2000)]))
      } catch (err) {
        this.init.log.info('the client of a finished job is gone: keeping its outcome for its query', { jobId: held.head.jobId, client: held.client, error: errorMessage(err) })
        return
      }
    }
    const limit = this.init.limits(held.head.skillset).output + MAX_CONTROL_FRAME_BYTES
    try {
      await link.send(f, limit)
      if (f.t === 'result') this.stats.results++
      else this.stats.errors++
    } catch (err) {
      if (link.closed) {
        this.init.log.info('lost the link while answering a job: keeping its outcome for its query', { jobId: held.head.jobId, client: held.client })
        return
      }
      // The result itself is refused (over the frame limit): the client gets a typed error instead.
      this.stats.errors++
      await this.sendQuiet(link, { v: PROTOCOL_VERSION, t: 'error', jobId: held.head.jobId, code: errorCode(err) === 'ERR_MESSAGE_TOO_LARGE' ? 'ERR_MESSAGE_TOO_LARGE' : 'ERR_INTERNAL', message: errorMessage(err).slice(0, 2000) })
    }
  }

  private answerQuery (link: JobLink, jobId: string): void {
    const held = this.jobs.get(`${link.peer}/${jobId}`)
    if (held === undefined || held.controller.signal.aborted) {
      void this.sendQuiet(link, { v: PROTOCOL_VERSION, t: 'status', jobId, state: 'unknown' })
      return
    }
    if (held.outcome !== undefined) { void this.deliver(held); return }
    held.lastSentAt = performance.now()
    void this.sendQuiet(link, { v: PROTOCOL_VERSION, t: 'progress', jobId, state: 'running' })
  }

  private cancel (key: string, why: string): void {
    const held = this.jobs.get(key)
    if (held === undefined || held.outcome !== undefined || held.controller.signal.aborted) return
    this.stats.cancelled++
    held.controller.abort(new JobCancelledError(`job ${held.head.jobId} was cancelled: ${why}`))
    this.init.log.debug('job cancelled', { jobId: held.head.jobId, client: held.client, why })
  }

  private release (held: Held): void {
    this.stats.held--
    const n = (this.heldPerClient.get(held.client) ?? 1) - 1
    if (n <= 0) this.heldPerClient.delete(held.client)
    else this.heldPerClient.set(held.client, n)
  }

  /** Heartbeats for jobs in hand; expired leases cancelled; old state pruned. */
  private tick (): void {
    const now = performance.now()
    const inHand: Array<[string, Held]> = []
    for (const [key, h] of this.jobs.entries()) {
      if (h.outcome !== undefined || h.controller.signal.aborted) continue
      inHand.push([key, h])
      if (now > h.leaseEnd) {
        this.stats.expired++
        this.cancel(key, 'its lease expired')
        continue
      }
      if (now - h.lastSentAt < h.heartbeatMs) continue
      const link = this.init.links.find(h.client)
      if (link === undefined) continue
      h.lastSentAt = now
      void this.sendQuiet(link, { v: PROTOCOL_VERSION, t: 'progress', jobId: h.head.jobId, state: 'running' })
    }
    // Jobs in hand never age out: refresh them (outside the loop above, which a refresh would revisit).
    for (const [key, h] of inHand) this.jobs.set(key, h)
    this.jobs.prune()
    this.bids.prune()
    this.seen.prune()
    this.unreachable.prune()
  }
}
