/**
 * The worker side of the job protocol: hear offers on the skillsets' topics,
 * bid over a direct stream to the client, run what the client leases to us,
 * and answer with the result or a typed error on that stream.
 *
 * A job id makes every step idempotent: a job leased to us twice (the
 * client re-offered it) runs once, and the second lease gets the same result.
 */
import type { Message } from '@libp2p/gossipsub'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { errorCode, errorMessage } from '../errors.ts'
import type { SkillsetName } from '../interfaces/index.ts'
import type { Logger } from '../logger.ts'
import { decodeMessage } from './codec.ts'
import { JobChannel } from './job-channel.ts'
import type { NodeServices } from './libp2p.ts'
import { clientReplySchema, offerSchema } from './messages.ts'
import type { Assign, Bid, JobErrorMessage, Offer, Result } from './messages.ts'
import { JOB_PROTOCOL, MAX_GOSSIP_BYTES, PROTOCOL_VERSION, jobsTopic } from './protocol.ts'

/** What the node decides: whether to bid, and how to run a leased job. */
export interface JobHandler {
  /** A bid for this offer, or undefined to stay silent. */
  bid(offer: Offer): Omit<Bid, 'v' | 't' | 'jobId'> | undefined
  run(offer: Offer, assign: Assign, signal: AbortSignal): Promise<Omit<Result, 'v' | 't' | 'jobId'>>
}

export interface JobWorkerInit {
  libp2p: Libp2p<NodeServices>
  handler: JobHandler
  skillsets: SkillsetName[]
  log: Logger
  /** How long to wait for the client's answer to a bid. */
  leaseTimeoutMs?: number
}

type WorkerChannel = JobChannel<typeof clientReplySchema>

interface Done { outcome: Promise<Omit<Result, 'v' | 't' | 'jobId'>>, at: number }

const DONE_TTL_MS = 120_000

export class JobWorker {
  private readonly init: JobWorkerInit
  private started = false
  private readonly active = new Set<Promise<void>>()
  private readonly jobs = new Map<string, Done>()
  private readonly bidding = new Set<string>()
  private readonly shutdown = new AbortController()
  private readonly channels = new Map<string, Promise<WorkerChannel>>()
  private sweep: NodeJS.Timeout | undefined
  /** Counters for /metrics and tests. */
  readonly stats = { offers: 0, dropped: 0, bids: 0, leases: 0, declined: 0, results: 0, errors: 0 }
  private readonly onMessage = (evt: CustomEvent<Message>): void => { this.onOffer(evt.detail) }

  constructor (init: JobWorkerInit) {
    this.init = init
  }

  start (): void {
    if (this.started) return
    this.started = true
    const { pubsub } = this.init.libp2p.services
    pubsub.addEventListener('message', this.onMessage)
    for (const s of this.init.skillsets) pubsub.subscribe(jobsTopic(s))
    this.sweep = setInterval(() => {
      const cutoff = Date.now() - DONE_TTL_MS
      for (const [id, d] of this.jobs) if (d.at < cutoff) this.jobs.delete(id)
    }, 10_000)
    this.sweep.unref()
  }

  /** Stop bidding at once; jobs already leased finish (the node drains its queues first). */
  stopBidding (): void {
    if (!this.started) return
    this.started = false
    const { pubsub } = this.init.libp2p.services
    pubsub.removeEventListener('message', this.onMessage)
    for (const s of this.init.skillsets) pubsub.unsubscribe(jobsTopic(s))
  }

  async stop (graceMs = 10_000): Promise<void> {
    this.stopBidding()
    clearInterval(this.sweep)
    if (this.active.size > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([Promise.allSettled([...this.active]), new Promise((resolve) => { timer = setTimeout(resolve, graceMs) })])
      clearTimeout(timer)
    }
    this.shutdown.abort()
    for (const open of this.channels.values()) void open.then((ch) => { ch.end() }, () => undefined)
    this.channels.clear()
  }

  private onOffer (msg: Message): void {
    if (!msg.topic.startsWith('/ipfs-accelerate/1/jobs/')) return
    this.stats.offers++
    if (msg.type !== 'signed') { this.stats.dropped++; return }
    let offer: Offer
    try {
      offer = decodeMessage(msg.data, offerSchema, MAX_GOSSIP_BYTES)
    } catch (err) {
      this.stats.dropped++
      this.init.log.debug('dropped a malformed offer', { from: msg.from.toString(), error: errorMessage(err) })
      return
    }
    if (msg.topic !== jobsTopic(offer.skillset)) { this.stats.dropped++; return }
    if (offer.deadline <= Date.now() || this.bidding.has(offer.jobId)) return
    const bid = this.init.handler.bid(offer)
    if (bid === undefined) return
    const task = this.negotiate(msg.from, offer, bid).catch((err: unknown) => {
      this.init.log.debug('job stream ended with an error', { jobId: offer.jobId, traceId: offer.traceId, error: errorMessage(err) })
    }).finally(() => {
      this.bidding.delete(offer.jobId)
      this.active.delete(task)
    })
    this.bidding.add(offer.jobId)
    this.active.add(task)
  }

  /** The open channel to a client, or a new one (opened with this bid). */
  private async channel (client: PeerId, signal: AbortSignal): Promise<WorkerChannel> {
    const key = client.toString()
    const open = this.channels.get(key)
    if (open !== undefined) {
      const ch = await open
      if (!ch.closed) return ch
      if (this.channels.get(key) === open) this.channels.delete(key)
    }
    const opening = (async () => {
      // negotiateFully: false sends the protocol proposal with the first bid (saves a round trip).
      const stream = await this.init.libp2p.dialProtocol(client, JOB_PROTOCOL, { signal: AbortSignal.any([signal, AbortSignal.timeout(5000)]), negotiateFully: false })
      return new JobChannel({
        stream,
        peer: key,
        incoming: clientReplySchema,
        log: this.init.log,
        onClose: (ch) => { void this.channels.get(key)?.then((c) => { if (c === ch) this.channels.delete(key) }) }
      })
    })()
    this.channels.set(key, opening)
    opening.catch(() => { if (this.channels.get(key) === opening) this.channels.delete(key) })
    return await opening
  }

  private async negotiate (client: PeerId, offer: Offer, bid: Omit<Bid, 'v' | 't' | 'jobId'>): Promise<void> {
    const log = this.init.log
    const untilDeadline = Math.max(1, offer.deadline - Date.now())
    const signal = AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(untilDeadline)])
    const ch = await this.channel(client, signal)
    const replied = ch.wait(offer.jobId, AbortSignal.any([signal, AbortSignal.timeout(this.init.leaseTimeoutMs ?? 10_000)]))
    replied.catch(() => undefined) // awaited below; this only marks it handled if the send fails first
    await ch.send({ v: PROTOCOL_VERSION, t: 'bid', jobId: offer.jobId, ...bid } satisfies Bid, signal)
    this.stats.bids++
    const reply = await replied
    if (reply.t === 'decline') {
      this.stats.declined++
      return
    }
    this.stats.leases++
    log.debug('job leased', { jobId: offer.jobId, traceId: offer.traceId, client: client.toString() })
    let done = this.jobs.get(offer.jobId)
    if (done === undefined) {
      done = { outcome: this.init.handler.run(offer, reply, signal), at: Date.now() }
      this.jobs.set(offer.jobId, done)
      done.outcome.catch(() => { this.jobs.delete(offer.jobId) })
    }
    try {
      const outcome = await done.outcome
      await ch.send({ v: PROTOCOL_VERSION, t: 'result', jobId: offer.jobId, ...outcome } satisfies Result, signal)
      this.stats.results++
    } catch (err) {
      if (ch.closed) throw err
      this.stats.errors++
      log.info('job failed', { jobId: offer.jobId, traceId: offer.traceId, code: errorCode(err), error: errorMessage(err) })
      const code = /^ERR_[A-Z0-9_]{1,60}$/.test(errorCode(err)) ? errorCode(err) : 'ERR_INTERNAL'
      await ch.send({ v: PROTOCOL_VERSION, t: 'error', jobId: offer.jobId, code, message: errorMessage(err).slice(0, 2000) } satisfies JobErrorMessage, signal)
    }
  }
}
