/**
 * The client side of the job protocol: offer a job on its skillset's topic,
 * take bids on direct streams, lease the job to exactly one worker with its
 * input, and return that worker's result. Unanswered offers are re-sent;
 * a job whose worker is lost before it answers is offered again, and a
 * job's result is accepted once.
 */
import { randomBytes } from 'node:crypto'
import { z } from 'zod'
import type { Libp2p, Stream } from '@libp2p/interface'
import { AccelerateError, JobFailedError, JobTimeoutError, NoWorkerError, ProtocolError } from '../errors.ts'
import type { SkillsetName } from '../interfaces/index.ts'
import type { Logger } from '../logger.ts'
import type { Adverts } from './adverts.ts'
import { encodeMessage } from './codec.ts'
import { JobChannel } from './job-channel.ts'
import type { NodeServices } from './libp2p.ts'
import { bidSchema, errorSchema, resultSchema, workerOutcomeSchema } from './messages.ts'
import type { Bid, Offer, Result } from './messages.ts'
import { JOB_PROTOCOL, MAX_GOSSIP_BYTES, PROTOCOL_VERSION, jobsTopic } from './protocol.ts'

export interface JobRequest {
  skillset: SkillsetName
  model?: string
  input: Record<string, unknown>
  params?: Record<string, unknown>
  /** Cost units of the input (texts for embed). */
  cost: number
  timeoutMs: number
  signal?: AbortSignal
}

export interface JobResponse {
  jobId: string
  traceId: string
  worker: string
  model: string
  output: Record<string, unknown>
  timings: Result['timings'] & { totalMs: number, bidMs: number, attempts: number }
}

export interface JobClientInit {
  libp2p: Libp2p<NodeServices>
  log: Logger
  /** Live adverts, to know how many workers may bid. */
  adverts?: Adverts
  /** After the first bid, wait at least this long (or as long as the first bid took) for the others, unless every known worker bid. */
  bidWindowMs?: number
  /** Re-send an offer nobody bid on after this long. */
  reofferMs?: number
}

interface PendingBid { bid: Bid, channel: ClientChannel, worker: string }

/** What a worker sends a client: bids, then results or errors. */
const workerFrameSchema = z.discriminatedUnion('t', [bidSchema, resultSchema, errorSchema])
type ClientChannel = JobChannel<typeof workerFrameSchema>

interface PendingJob {
  offer: Offer
  bids: PendingBid[]
  leased: boolean
  excluded: Set<string>
  expected: number
  /** When the offer went out (performance.now()). */
  offeredAt: number
  windowTimer?: NodeJS.Timeout
  /** Resolves with a lease decision: the chosen bid. */
  choose: (b: PendingBid) => void
}

export function newJobId (): string {
  return randomBytes(12).toString('base64url')
}

export class JobClient {
  private readonly init: JobClientInit
  private readonly pending = new Map<string, PendingJob>()
  /** Jobs leased to each worker and not yet answered: spreads load before bids catch up. */
  private readonly inFlight = new Map<string, number>()
  private readonly channels = new Set<ClientChannel>()
  private started = false

  constructor (init: JobClientInit) {
    this.init = init
  }

  async start (): Promise<void> {
    if (this.started) return
    await this.init.libp2p.handle(JOB_PROTOCOL, (stream, connection) => { this.onChannel(stream, connection.remotePeer.toString()) }, { maxInboundStreams: 1024 })
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    await this.init.libp2p.unhandle(JOB_PROTOCOL)
    for (const ch of [...this.channels]) ch.end()
  }

  /** A worker opened a job channel: its bids arrive unclaimed, outcomes go to the job that waits. */
  private onChannel (stream: Stream, worker: string): void {
    const ch: ClientChannel = new JobChannel({
      stream,
      peer: worker,
      incoming: workerFrameSchema,
      log: this.init.log,
      onUnclaimed: (msg) => {
        if (msg.t === 'bid') this.onBid(msg, ch)
        else this.init.log.debug('dropped an outcome for a job not waiting for it', { worker, jobId: msg.jobId })
      },
      onClose: () => { this.channels.delete(ch) }
    })
    this.channels.add(ch)
  }

  private onBid (bid: Bid, channel: ClientChannel): void {
    const worker = channel.peer
    const job = this.pending.get(bid.jobId)
    if (job === undefined || job.leased || job.excluded.has(worker)) {
      void this.decline({ bid, channel, worker })
      return
    }
    job.bids.push({ bid, channel, worker })
    if (job.bids.length >= job.expected) {
      this.decide(job)
    } else if (job.windowTimer === undefined) {
      // Wait for the other expected bidders as long again as the first bid took (at least
      // bidWindowMs): on a loaded swarm every bid is slower, and the window scales with it.
      const wait = Math.max(this.init.bidWindowMs ?? 20, performance.now() - job.offeredAt)
      job.windowTimer = setTimeout(() => { this.decide(job) }, wait)
    }
  }

  private async decline (b: PendingBid): Promise<void> {
    try {
      await b.channel.send({ v: PROTOCOL_VERSION, t: 'decline', jobId: b.bid.jobId }, AbortSignal.timeout(2000))
    } catch (err) {
      this.init.log.debug('could not decline a bid', { worker: b.worker, jobId: b.bid.jobId, error: (err as Error).message })
    }
  }

  private score (b: PendingBid): number {
    return b.bid.queueDepth + (this.inFlight.get(b.worker) ?? 0) + Math.random() * 0.5
  }

  private decide (job: PendingJob): void {
    clearTimeout(job.windowTimer)
    job.windowTimer = undefined
    if (job.leased || job.bids.length === 0) return
    const ranked = [...job.bids].sort((a, b) => this.score(a) - this.score(b))
    job.bids = []
    job.leased = true
    const [best, ...rest] = ranked
    this.init.log.debug('leasing a job', { jobId: job.offer.jobId, traceId: job.offer.traceId, bids: ranked.length, expected: job.expected, worker: best!.worker, queueDepth: best!.bid.queueDepth })
    for (const r of rest) void this.decline(r)
    job.choose(best!)
  }

  /** How many workers we expect to bid: live adverts serving it, else topic subscribers. */
  private expectedBidders (req: JobRequest): number {
    const adverts = this.init.adverts?.peers() ?? []
    const serving = adverts.filter((p) => p.advert.models.some((m) => m.skillset === req.skillset && (req.model === undefined || m.id === req.model)))
    if (serving.length > 0) return serving.length
    return Math.max(1, this.init.libp2p.services.pubsub.getSubscribers(jobsTopic(req.skillset)).length)
  }

  /** Wait (bounded) until some peer is subscribed to the skillset's topic. */
  private async waitForWorkers (topic: string, deadline: number, signal: AbortSignal): Promise<void> {
    const { pubsub } = this.init.libp2p.services
    while (pubsub.getSubscribers(topic).length === 0) {
      if (Date.now() >= deadline || signal.aborted) {
        const peers = this.init.libp2p.getPeers().length
        throw new NoWorkerError(peers === 0
          ? 'no peer found: start a worker node (`npm start`), or pass --bootstrap with the multiaddr it printed'
          : `connected to ${peers} peer(s), but none serves \`${topic.split('/').pop() ?? ''}\` jobs: start a worker that serves it`)
      }
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  async submit (req: JobRequest): Promise<JobResponse> {
    const t0 = performance.now()
    const deadline = Date.now() + req.timeoutMs
    const signal = AbortSignal.any([AbortSignal.timeout(req.timeoutMs), ...(req.signal === undefined ? [] : [req.signal])])
    const topic = jobsTopic(req.skillset)
    const inputBytes = encodeMessage(req.input, Number.MAX_SAFE_INTEGER).byteLength
    await this.waitForWorkers(topic, deadline, signal)
    const offer: Offer = {
      v: PROTOCOL_VERSION,
      t: 'offer',
      jobId: newJobId(),
      traceId: newJobId(),
      skillset: req.skillset,
      ...(req.model === undefined ? {} : { model: req.model }),
      cost: req.cost,
      inputBytes,
      deadline,
      sentAt: Date.now()
    }
    const excluded = new Set<string>()
    let attempts = 0
    let lastError: Error | undefined
    try {
      while (Date.now() < deadline) {
        attempts++
        const chosen = await this.offerOnce(offer, req, excluded, signal)
        if (chosen === undefined) break
        const bidMs = performance.now() - t0
        this.inFlight.set(chosen.worker, (this.inFlight.get(chosen.worker) ?? 0) + 1)
        try {
          const outcome = await this.lease(chosen, offer, req, signal)
          if (outcome.t === 'result') {
            return {
              jobId: offer.jobId,
              traceId: offer.traceId,
              worker: chosen.worker,
              model: outcome.model,
              output: outcome.output,
              timings: { ...outcome.timings, totalMs: performance.now() - t0, bidMs, attempts }
            }
          }
          const err = new AccelerateError(outcome.code, `worker ${chosen.worker} failed the job: ${outcome.message}`)
          if (outcome.code !== 'ERR_QUEUE_FULL' && outcome.code !== 'ERR_SHUTTING_DOWN') throw err
          lastError = err
        } catch (err) {
          if (err instanceof AccelerateError && err.code !== 'ERR_PROTOCOL') throw err
          lastError = err as Error
          this.init.log.warn('lost the worker of a job: offering it again', { jobId: offer.jobId, traceId: offer.traceId, worker: chosen.worker, error: (err as Error).message })
        } finally {
          const n = (this.inFlight.get(chosen.worker) ?? 1) - 1
          if (n <= 0) this.inFlight.delete(chosen.worker)
          else this.inFlight.set(chosen.worker, n)
        }
        excluded.add(chosen.worker)
      }
    } finally {
      this.pending.delete(offer.jobId)
    }
    if (req.signal?.aborted === true) throw new JobFailedError('the job was cancelled', { cause: req.signal.reason })
    throw new JobTimeoutError(`no result within ${Math.round(req.timeoutMs / 1000)} s (${attempts} offer round(s))${lastError === undefined ? '' : `; last error: ${lastError.message}`}: raise --timeout or check the workers`)
  }

  /** Publish the offer (again every reofferMs) until a bid is chosen or the deadline passes. */
  private async offerOnce (offer: Offer, req: JobRequest, excluded: Set<string>, signal: AbortSignal): Promise<PendingBid | undefined> {
    const { pubsub } = this.init.libp2p.services
    const bytes = encodeMessage(offer, MAX_GOSSIP_BYTES)
    return await new Promise<PendingBid | undefined>((resolve) => {
      let reoffer: NodeJS.Timeout | undefined
      const finish = (b: PendingBid | undefined): void => {
        clearInterval(reoffer)
        signal.removeEventListener('abort', onAbort)
        resolve(b)
      }
      const onAbort = (): void => {
        const job = this.pending.get(offer.jobId)
        if (job !== undefined) job.leased = true
        finish(undefined)
      }
      const job: PendingJob = { offer, bids: [], leased: false, excluded, expected: this.expectedBidders(req), offeredAt: performance.now(), choose: finish }
      this.pending.set(offer.jobId, job)
      signal.addEventListener('abort', onAbort, { once: true })
      const publish = (): void => {
        pubsub.publish(jobsTopic(offer.skillset), bytes).catch((err: unknown) => {
          this.init.log.warn('could not publish an offer', { jobId: offer.jobId, error: (err as Error).message })
        })
      }
      publish()
      reoffer = setInterval(publish, this.init.reofferMs ?? 1000)
    })
  }

  private async lease (chosen: PendingBid, offer: Offer, req: JobRequest, signal: AbortSignal): Promise<z.infer<typeof workerOutcomeSchema>> {
    try {
      const answered = chosen.channel.wait(offer.jobId, signal)
      answered.catch(() => undefined) // awaited below; this only marks it handled if the send fails first
      await chosen.channel.send({ v: PROTOCOL_VERSION, t: 'assign', jobId: offer.jobId, input: req.input, ...(req.params === undefined ? {} : { params: req.params }) }, signal)
      const outcome = await answered
      if (outcome.t === 'bid') throw new ProtocolError(`worker ${chosen.worker} bid again for job ${offer.jobId} instead of answering it`)
      return outcome
    } catch (err) {
      if (signal.aborted) throw new JobTimeoutError(`worker ${chosen.worker} did not answer before the deadline: raise --timeout or check the workers`, { cause: err })
      throw err
    }
  }
}
