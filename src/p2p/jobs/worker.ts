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
 *
 * Streaming jobs (a skillset for which `streams()` is true) are bid for and
 * taken only over job protocol 1.1.0 links: their partials go out under the
 * client's window (answers.ts, stream-flow.ts); each `ack` also renews
 * the lease; a client that has no link to us for `resumeGraceMs` (it went
 * away) and does not ask again has its job cancelled, so the runner stops.
 */
import type { Message } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { errorCode, errorMessage, JobCancelledError, ProtocolError, ShuttingDownError } from '../../errors.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { BoundedMap, PeerBuckets } from '../wire/bounded.ts'
import { decodeMessage } from '../wire/codec.ts'
import type { JobLink } from './link.ts'
import { bidSchema, offerSchema } from '../wire/messages.ts'
import type { Assign, LinkFrame, Offer } from '../wire/messages.ts'
import { MAX_CONTROL_FRAME_BYTES, MAX_GOSSIP_BYTES, PROTOCOL_VERSION, jobsTopic } from '../wire/protocol.ts'
import { hashInput, hashOutput, signResult } from '../trust/provenance.ts'
import { answerQuery, deliver, forbiddenFrame, heartbeats, openStream, sendQuiet, unbidRefusal } from './answers.ts'
import type { AnswerDeps, Held, JobHead } from './answers.ts'
import type { BidTerms, JobWorkerInit } from './handler.ts'
import { DEFAULT_STREAM_WINDOW } from './stream-flow.ts'

export type { JobHead, ResultBody } from './answers.ts'
export type { BidTerms, JobHandler, JobWorkerInit, RunOutcome } from './handler.ts'

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
  readonly stats = { offers: 0, directOffers: 0, dropped: 0, rateLimited: 0, bids: 0, busy: 0, unreachable: 0, leases: 0, executions: 0, declined: 0, results: 0, errors: 0, cancelled: 0, expired: 0, queries: 0, badFrames: 0, held: 0, forbidden: 0, partials: 0, acks: 0, resumed: 0, orphaned: 0, oldLinks: 0, refused: 0 }
  private readonly onMessage = (evt: CustomEvent<Message>): void => { this.onGossip(evt.detail) }
  private readonly answers: AnswerDeps
  private unlisten: (() => void) | undefined

  constructor (init: JobWorkerInit) {
    this.init = init
    this.offerBuckets = new PeerBuckets(init.offerRate?.rate ?? 200, init.offerRate?.burst ?? 400)
    this.answers = { links: init.links, limits: init.limits, log: init.log, stats: this.stats, shutdown: this.shutdown.signal }
  }

  private streams (skillset: SkillsetName): boolean {
    return this.init.handler.streams?.(skillset) ?? false
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
    // A streaming job's client without a link: its partials pause, and it is cancelled unless the client asks again in time.
    this.unlisten = this.init.links.onLinkEnd((peer) => {
      for (const [, h] of this.jobs.entries()) {
        if (h.client !== peer || h.stream === undefined || h.outcome !== undefined) continue
        h.stream.broken = true
        h.orphanedAt ??= performance.now()
      }
    })
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
    this.unlisten?.()
    this.shutdown.abort(new ShuttingDownError('the worker stopped while it ran this job: offer it to another'))
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
    const head = this.bids.get(`${client}/${jobId}`) // else an unbid assign may come: the largest input of any served skillset
    if (head !== undefined) return this.init.limits(head.skillset).input + MAX_CONTROL_FRAME_BYTES
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
        answerQuery(this.answers, link, f.jobId, this.jobs.get(key), f.fromSeq)
        return
      case 'ack':
        this.onAck(link, key, f.next)
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
    void sendQuiet(this.answers, link, { v: PROTOCOL_VERSION, t: 'error', jobId, code: 'ERR_PROTOCOL', message: err.message.slice(0, 2000) })
  }

  /** The client consumed partials: credit for more, and the lease renewed (a live reader keeps a long job alive). */
  private onAck (link: JobLink, key: string, next: number): void {
    const held = this.jobs.get(key)
    if (held?.stream === undefined || held.controller.signal.aborted) return
    this.stats.acks++
    try {
      held.stream.ack(next)
    } catch (err) {
      this.onBadFrame(link, held.head.jobId, err as Error)
      return
    }
    held.leaseEnd = Math.max(held.leaseEnd, performance.now() + held.leaseMs)
    delete held.orphanedAt
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
    if (link !== undefined && !link.streaming && this.streams(offer.skillset)) {
      this.stats.oldLinks++
      void this.sendBusy(link, offer.jobId, `\`${offer.skillset}\` jobs stream: they need job protocol 1.1.0, and this link speaks 1.0.0`)
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
    if (!link.streaming && this.streams(offer.skillset)) {
      // A peer that speaks only 1.0.0 cannot take a stream: no bid.
      this.stats.oldLinks++
      return
    }
    const bid = { v: PROTOCOL_VERSION, t: 'bid' as const, jobId: offer.jobId, ...terms }
    const checked = bidSchema.safeParse(bid)
    if (!checked.success) {
      // The client would drop it as malformed and this worker would silently get no work (an infinite estimate once did that): say so.
      this.init.log.warn('this worker made a bid that is not valid on the wire: not sent', { jobId: offer.jobId, problems: checked.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') })
      return
    }
    this.bids.set(`${peer}/${offer.jobId}`, offer)
    try {
      await link.send(checked.data)
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
    await sendQuiet(this.answers, link, forbiddenFrame(link.peer, jobId))
  }

  private async sendBusy (link: JobLink, jobId: string, reason: string): Promise<void> { await sendQuiet(this.answers, link, { v: PROTOCOL_VERSION, t: 'busy', jobId, reason: reason.slice(0, 200) }) }

  private onAssign (link: JobLink, a: Assign): void {
    const key = `${link.peer}/${a.jobId}`
    // A bid that became a lease gives its offer token back: the rate bounds offers never leased (a flood), not jobs.
    const bidFor = this.bids.delete(key)
    if (bidFor) this.offerBuckets.give(link.peer)
    if (this.forbids(link.peer)) { void this.sendForbidden(link, a.jobId); return }
    // An assign with no bid (the client's one-round-trip path): taken if it could be bid on now, else refused at once.
    if (!bidFor && this.jobs.get(key) === undefined && this.refusesUnbid(link, a)) return
    const existing = this.jobs.get(key)
    if (existing !== undefined) {
      // Leased again by the same client (it lost our link): never run twice; answer with what we have.
      existing.leaseEnd = performance.now() + a.leaseMs
      existing.heartbeatMs = a.heartbeatMs
      if (existing.outcome !== undefined) void deliver(this.answers, existing)
      return
    }
    if (!this.started) { void sendQuiet(this.answers, link, { v: PROTOCOL_VERSION, t: 'error', jobId: a.jobId, code: 'ERR_SHUTTING_DOWN', message: 'the worker is stopping: offer the job to another' }); return }
    const streaming = this.streams(a.skillset)
    if (streaming && !link.streaming) {
      this.stats.oldLinks++
      void sendQuiet(this.answers, link, { v: PROTOCOL_VERSION, t: 'error', jobId: a.jobId, code: 'ERR_PROTOCOL', message: `\`${a.skillset}\` jobs stream: they need job protocol 1.1.0, and this link speaks 1.0.0: upgrade the client` })
      return
    }
    const perClient = this.heldPerClient.get(link.peer) ?? 0
    if (perClient >= (this.init.maxHeldPerClient ?? 1024)) {
      void sendQuiet(this.answers, link, { v: PROTOCOL_VERSION, t: 'error', jobId: a.jobId, code: 'ERR_QUEUE_FULL', message: `this worker holds ${perClient} jobs of yours already: offer it to another worker` })
      return
    }
    this.stats.leases++
    this.stats.held++
    this.heldPerClient.set(link.peer, perClient + 1)
    const head: JobHead = { jobId: a.jobId, traceId: a.traceId, skillset: a.skillset, cost: a.cost, inputBytes: a.inputBytes, ...(a.model === undefined ? {} : { model: a.model }) }
    const held: Held = { client: link.peer, head, controller: new AbortController(), heartbeatMs: a.heartbeatMs, leaseMs: a.leaseMs, leaseEnd: performance.now() + a.leaseMs, lastSentAt: performance.now() }
    const stream = streaming ? openStream(this.answers, held, a.window ?? DEFAULT_STREAM_WINDOW) : undefined
    if (stream !== undefined) held.stream = stream
    this.jobs.set(key, held)
    this.init.log.debug('job leased', { jobId: a.jobId, traceId: a.traceId, client: link.peer })
    this.stats.executions++
    if (stream !== undefined) held.streamFailed = new AbortController()
    const signal = AbortSignal.any([held.controller.signal, this.shutdown.signal, ...(held.streamFailed === undefined ? [] : [held.streamFailed.signal])])
    const inputHash = hashInput(a.input, a.params)
    const emit = stream === undefined ? undefined : async (data: Record<string, unknown>): Promise<void> => { await stream.emit(data, signal) }
    const task = this.init.handler.run(head, a, signal, emit, link.peer).then(async ({ claim, ...body }) => {
      // A stream's partials are covered too: their count and running hash are signed with the output.
      const partials = stream === undefined ? undefined : { partials: stream.next, partialsHash: stream.hash.digest() }
      const signature = await signResult(this.init.privateKey, { jobId: a.jobId, client: link.peer, worker: this.init.libp2p.peerId.toString(), model: body.model, ...claim, inputHash, outputHash: hashOutput(body.output), ...partials })
      held.outcome = { t: 'result', body: { ...body, ...(partials === undefined ? {} : { partials: partials.partials }), provenance: { ...claim, inputHash, ...(partials === undefined ? {} : { partialsHash: partials.partialsHash }), signature } } }
    }).catch((err: unknown) => {
      const code = /^ERR_[A-Z0-9_]{1,60}$/.test(errorCode(err)) ? errorCode(err) : 'ERR_INTERNAL'
      held.outcome = { t: 'error', code, message: errorMessage(err).slice(0, 2000) }
      if (code !== 'ERR_JOB_CANCELLED') this.init.log.info('job failed', { jobId: a.jobId, traceId: a.traceId, code, error: errorMessage(err) })
    }).then(async () => {
      this.release(held)
      // Keep the outcome (for a query) for a while even when it could be sent.
      this.jobs.set(key, held)
      if (held.controller.signal.aborted) return // cancelled or expired: the client is not waiting
      await deliver(this.answers, held)
    }).finally(() => { this.active.delete(task) })
    this.active.add(task)
  }

  /** Refuse (answering at once) an unbid assign this worker cannot start now; false when it takes it. */
  private refusesUnbid (link: JobLink, a: Assign): boolean {
    const why = unbidRefusal(a, this.started ? this.init.handler.bid(a) : { busy: 'the worker is stopping' }, this.started)
    if (why === undefined) return false
    this.stats.refused++
    void sendQuiet(this.answers, link, { v: PROTOCOL_VERSION, t: 'error', jobId: a.jobId, ...why })
    return true
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

  /** Heartbeats for jobs in hand; expired leases and orphaned streams cancelled; old state pruned. */
  private tick (): void {
    const inHand = heartbeats(this.answers, this.jobs.entries(), this.init.resumeGraceMs ?? 5000, (key, why) => {
      if (why === 'expired') this.stats.expired++
      else this.stats.orphaned++
      this.cancel(key, why === 'expired' ? 'its lease expired' : 'its client went away (no link, and it did not ask to resume)')
    })
    // Jobs in hand never age out: refresh them (outside the walk above, which a refresh would revisit).
    for (const [key, h] of inHand) this.jobs.set(key, h)
    this.jobs.prune()
    this.bids.prune()
    this.seen.prune()
    this.unreachable.prune()
  }
}
