/**
 * The client side of the job protocol.
 *
 * 1. Discovery: the workers that serve the job's model, from adverts and
 *    directory hints. A model nobody serves fails at once with
 *    ERR_NO_WORKER listing what the swarm serves; no peer at all fails
 *    within `discoveryMs`.
 * 2. Auction, in rounds: the offer goes directly, on job links, to a few
 *    workers picked at random weighted by fit (dialled if need be), and by
 *    gossip when no worker is advertised yet or from the second round on (a
 *    fresh gossip message each round, published once the topic has
 *    subscribers). Bids are taken until every direct candidate answered, or
 *    as long again as the first bid took (bounded). No bid: the next round
 *    comes after a back-off.
 *    A worker this client already holds a link to, whose advert shows room,
 *    gets the `assign` at once instead (one round trip, auction.ts direct);
 *    when it refuses (its queue is full, it stops), the auction runs and
 *    the refusal is not a try.
 * 3. Lease: the input goes with `assign`, with a lease length from the
 *    worker's expected time and a heartbeat period. A worker that stops
 *    sending frames, or whose lease runs out, is given up on: the job is
 *    cancelled there and offered elsewhere. When the link breaks, the
 *    client asks that worker what became of the job before it offers it
 *    elsewhere.
 * 4. Failures: a worker-side fault is retried on another worker, up to
 *    `maxTries` workers; then one error names each try. A worker that
 *    does not take this client's jobs (its allow list: ERR_FORBIDDEN) is
 *    not a try: the job goes to the others, and only when every worker
 *    that serves it refused is the job's error ERR_FORBIDDEN.
 *
 *    A streaming job that handed partials to its caller is the exception:
 *    it is never retried elsewhere; it resumes on its worker from the last
 *    seq after a lost link, or ends with ERR_STREAM_BROKEN.
 *
 * Execution is at least once (a worker given up on may still finish);
 * delivery to the caller is exactly once: a job resolves once, and a late
 * or second answer is dropped. The auction lives in auction.ts, the
 * lease in lease.ts.
 */
import { randomBytes } from 'node:crypto'
import { AccelerateError, errorCode, errorMessage, ForbiddenError, JobFailedError, JobTimeoutError, StreamBrokenError } from '../../errors.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import type { Logger } from '../../logger.ts'
import type { Adverts } from '../swarm/adverts.ts'
import { BoundedMap } from '../wire/bounded.ts'
import { encodeMessage } from '../wire/codec.ts'
import type { WorkerRecord } from './fit.ts'
import type { JobLink, JobLinks } from './link.ts'
import { Auctioneer } from './auction.ts'
import { leaseJob } from './lease.ts'
import type { LeaseDeps } from './lease.ts'
import type { JobClientInit, JobRequest, Pending } from './types.ts'
import type { Bid, LinkFrame, Result } from '../wire/messages.ts'
import { MAX_CONTROL_FRAME_BYTES, PROTOCOL_VERSION } from '../wire/protocol.ts'

export type { JobClientInit, JobRequest } from './types.ts'


/** One worker's go at a job that did not end in its result. */
export interface JobTry { worker: string, code: string, message: string }

export interface JobResponse {
  jobId: string
  traceId: string
  worker: string
  model: string
  output: Record<string, unknown>
  /** Workers that had the job before the one that answered, and why they did not. */
  tries: JobTry[]
  /** How the result was computed, as the worker signed it (verified by the client). */
  provenance: Result['provenance'] & { worker: string }
  /** A streaming job: how many partials came before the result (all handed to `onPartial`). */
  partials?: number
  timings: Result['timings'] & { totalMs: number, bidMs: number, attempts: number, rounds: number, firstPartialMs?: number }
}


export function newJobId (): string {
  return randomBytes(12).toString('base64url')
}

/** Codes that say the job itself is wrong: another worker would refuse it too. */
const CALLER_FAULTS = new Set(['ERR_INVALID_INPUT', 'ERR_INPUT_TOO_LARGE', 'ERR_MESSAGE_TOO_LARGE'])
/** How a worker refuses an assign it has not bid on (jobs/worker.ts refusesUnbid): the job goes to auction instead. */
const FAST_REFUSALS = new Set(['ERR_QUEUE_FULL', 'ERR_SHUTTING_DOWN', 'ERR_MODEL_NOT_FOUND'])

export class JobClient {
  private readonly init: JobClientInit
  private readonly pending = new Map<string, Pending>()
  private readonly records = new BoundedMap<string, WorkerRecord>(4096, 10 * 60_000)
  private started = false
  private unlisten: (() => void) | undefined
  readonly stats = { submitted: 0, answered: 0, failed: 0, rounds: 0, directOffers: 0, gossipOffers: 0, lost: 0, stalled: 0, expired: 0, queries: 0, recovered: 0, lateFrames: 0, badFrames: 0, badSignatures: 0, partials: 0, streamsBroken: 0, oldLinks: 0, fastPath: 0, fastRefused: 0 }

  private readonly leaseDeps: LeaseDeps
  private readonly auctioneer: Auctioneer

  constructor (init: JobClientInit) {
    this.init = init
    this.leaseDeps = {
      self: init.libp2p.peerId.toString(),
      links: init.links,
      limits: init.limits,
      init,
      stats: this.stats,
      record: (worker) => this.record(worker),
      send: async (peer, f) => { await this.send(peer, f) }
    }
    this.auctioneer = new Auctioneer({ init, records: this.records, record: (w) => this.record(w), stats: this.stats, send: async (peer, f) => { await this.send(peer, f) } })
  }


  start (): void {
    if (this.started) return
    this.started = true
    this.init.links.setHandler('client', {
      limitFor: (link, jobId) => {
        const p = this.pending.get(jobId)
        return p?.lease?.worker === link.peer ? this.init.limits(p.head.skillset).output + MAX_CONTROL_FRAME_BYTES : MAX_CONTROL_FRAME_BYTES
      },
      frame: (link, f) => { this.onFrame(link, f) },
      badFrame: (link, jobId, err) => {
        const p = this.pending.get(jobId)
        if (p?.lease?.worker !== link.peer || p.lease.outcome !== undefined) return
        this.stats.badFrames++
        p.lease.outcome = { t: 'error', worker: link.peer, code: 'ERR_PROTOCOL', message: err.message }
        p.wake()
      }
    })
    this.unlisten = this.init.links.onLinkEnd((peer) => {
      for (const p of this.pending.values()) if (p.lease?.worker === peer) p.wake()
    })
  }

  stop (): void {
    if (!this.started) return
    this.started = false
    this.unlisten?.()
    this.init.links.setHandler('client', undefined)
    for (const p of this.pending.values()) p.wake()
  }

  private record (worker: string): WorkerRecord {
    let r = this.records.get(worker)
    if (r === undefined) { r = { inFlightCost: 0, failures: [] }; this.records.set(worker, r) }
    return r
  }

  private onFrame (link: JobLink, f: LinkFrame): void {
    const p = this.pending.get(f.jobId)
    if (f.t === 'bid' || f.t === 'busy') {
      // A streaming job goes only over 1.1.0 links: a bid over a 1.0.0 one is declined.
      const old = p?.streaming === true && !link.streaming
      if (p === undefined || p.lease !== undefined || (old && f.t === 'bid')) {
        if (f.t === 'bid') void this.send(link.peer, { v: PROTOCOL_VERSION, t: 'decline', jobId: f.jobId })
        if (p !== undefined && old) { this.stats.oldLinks++; p.answered.add(link.peer); p.wake() }
        return
      }
      if (f.t === 'bid') p.bids.set(link.peer, f)
      p.answered.add(link.peer)
      p.wake()
      return
    }
    if (f.t === 'error' && f.code === 'ERR_FORBIDDEN' && p !== undefined && p.lease?.worker !== link.peer) {
      // Refused on offer (the worker's allow list): an answer, and a worker never offered this job again.
      forbid(p, link.peer, f.message)
      return
    }
    if (p?.lease?.worker !== link.peer || p.lease.outcome !== undefined) {
      this.stats.lateFrames++ // an answer for a job already answered, given up on, or leased elsewhere
      return
    }
    p.lease.lastHeard = performance.now()
    if (f.t === 'partial') {
      if (p.lease.stream === undefined) {
        p.lease.outcome = { t: 'error', worker: link.peer, code: 'ERR_PROTOCOL', message: 'a partial for a job that does not stream' }
      } else {
        try {
          p.lease.stream.receive(f.seq, f.data)
          this.stats.partials++
          return // the lease loop has nothing to do: the partial goes to the caller
        } catch (err) {
          p.lease.outcome = { t: 'error', worker: link.peer, code: 'ERR_PROTOCOL', message: errorMessage(err) }
        }
      }
    } else if (f.t === 'result') p.lease.outcome = { t: 'result', worker: link.peer, result: f }
    else if (f.t === 'error') p.lease.outcome = { t: 'error', worker: link.peer, code: f.code, message: f.message }
    else if (f.t === 'status') p.lease.unknown = true
    p.wake()
  }

  /** Send a frame the protocol can do without (declines, cancels): log a failure, never throw. */
  private async send (peer: string, f: LinkFrame): Promise<void> {
    const link = this.init.links.find(peer)
    if (link === undefined) return
    try {
      await link.send(f)
    } catch (err) {
      this.init.log.debug('could not send a frame', { worker: peer, t: f.t, jobId: f.jobId, error: errorMessage(err) })
    }
  }

  async submit (req: JobRequest): Promise<JobResponse> {
    if (!this.started) this.start()
    this.stats.submitted++
    const t0 = performance.now()
    const deadline = t0 + req.timeoutMs
    const signal = AbortSignal.any([AbortSignal.timeout(req.timeoutMs), ...(req.signal === undefined ? [] : [req.signal])])
    const head: Pending['head'] = {
      jobId: newJobId(),
      traceId: newJobId(),
      skillset: req.skillset,
      ...(req.model === undefined ? {} : { model: req.model }),
      cost: req.cost,
      inputBytes: encodeMessage(req.input, Number.MAX_SAFE_INTEGER).byteLength
    }
    const limits = this.init.limits(req.skillset)
    if (head.inputBytes > limits.input) throw new AccelerateError('ERR_INPUT_TOO_LARGE', `the job's input is ${head.inputBytes} bytes, over the ${limits.input}-byte limit of \`${req.skillset}\` jobs: split it into smaller jobs`)
    let wake: () => void = () => undefined
    const job: Pending = { head, streaming: req.stream !== undefined, streamed: 0, bids: new Map(), answered: new Set(), excluded: new Set(), forbidden: new Map(), wake: () => { wake() } }
    const waitWake = async (until: number): Promise<void> => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(0, until - performance.now()))
        function done (): void { clearTimeout(timer); signal.removeEventListener('abort', done); wake = () => undefined; resolve() }
        wake = done
        signal.addEventListener('abort', done, { once: true })
      })
    }
    this.pending.set(head.jobId, job)
    const tries: JobTry[] = []
    const excluded = job.excluded
    let rounds = 0
    let bidAt = 0
    try {
      while (!signal.aborted) {
        let chosen: (Bid & { worker: string }) | undefined = this.auctioneer.direct(job, req, excluded)
        const fast = chosen !== undefined
        try {
          chosen ??= await this.auctioneer.auction(job, req, excluded, deadline, signal, waitWake, () => rounds++)
        } catch (err) {
          if (job.forbidden.size > 0 && errorCode(err) === 'ERR_NO_WORKER') throw this.refused(job, req, tries, err)
          // No worker left after some failed it: the caller needs those failures, not a list of what the swarm serves.
          if (tries.length > 0 && errorCode(err) === 'ERR_NO_WORKER') throw new JobFailedError(`job ${head.jobId} failed on ${tries.length} worker(s) and no other worker serves it: ${describeTries(tries)}: check those workers' logs, or resubmit`, { cause: err })
          throw err
        }
        if (chosen === undefined) break
        bidAt = bidAt === 0 ? performance.now() - t0 : bidAt
        const outcome = await leaseJob(this.leaseDeps, job, req, chosen, deadline, signal, waitWake)
        if (outcome.t === 'result') {
          this.stats.answered++
          return {
            jobId: head.jobId,
            traceId: head.traceId,
            worker: outcome.worker,
            model: outcome.result.model,
            output: outcome.result.output,
            tries,
            provenance: { ...outcome.result.provenance, worker: outcome.worker },
            ...(outcome.result.partials === undefined ? {} : { partials: outcome.result.partials }),
            timings: { ...outcome.result.timings, totalMs: performance.now() - t0, bidMs: bidAt, attempts: tries.length + 1, rounds, ...(job.firstPartialAt === undefined ? {} : { firstPartialMs: job.firstPartialAt - t0 }) }
          }
        }
        // A fast-path assign the worker could not take: not a try; the auction finds one that can.
        if (fast && FAST_REFUSALS.has(outcome.code)) { this.auctioneer.refusedFast(outcome.worker); continue }
        if (CALLER_FAULTS.has(outcome.code)) throw new AccelerateError(outcome.code, `worker ${outcome.worker} refused the job: ${outcome.message}`)
        if (job.streamed > 0) {
          // The caller has seen part of this run's output: another worker's run would not continue it. No silent retry.
          this.stats.streamsBroken++
          throw new StreamBrokenError(`job ${head.jobId} streamed ${job.streamed} partial(s) (seq 0-${job.streamed - 1}) from worker ${outcome.worker}, then ended with ${outcome.code}: ${outcome.message}; it could not be resumed there, so it is not retried elsewhere: submit it again if its whole output is still wanted`, { partials: job.streamed })
        }
        if (outcome.code === 'ERR_FORBIDDEN') { forbid(job, outcome.worker, outcome.message); continue }
        tries.push({ worker: outcome.worker, code: outcome.code, message: outcome.message })
        excluded.add(outcome.worker)
        this.init.log.info('a worker did not answer the job: offering it elsewhere', { jobId: head.jobId, traceId: head.traceId, worker: outcome.worker, code: outcome.code, error: outcome.message })
        if (tries.length >= (this.init.maxTries ?? 3)) {
          throw new JobFailedError(`job ${head.jobId} failed on ${tries.length} worker(s): ${describeTries(tries)}: check those workers' logs, or resubmit`)
        }
      }
      if (req.signal?.aborted === true) throw new JobFailedError('the job was cancelled', { cause: req.signal.reason })
      throw new JobTimeoutError(`no result within ${Math.round(req.timeoutMs / 1000)} s (${rounds} offer round(s)${tries.length === 0 ? '' : `; tried ${describeTries(tries)}`}): raise --timeout or check the workers`)
    } catch (err) {
      this.stats.failed++
      throw err
    } finally {
      this.pending.delete(head.jobId)
      job.wake = () => undefined
    }
  }

  /** Workers to offer the job to, from adverts and hints, minus those excluded. */
  /** The error for a job no worker would take: every one that serves it refused this client, or failed it. */
  private refused (job: Pending, req: JobRequest, tries: readonly JobTry[], cause: unknown): AccelerateError {
    const self = this.init.libp2p.peerId.toString()
    const what = req.model ?? `\`${req.skillset}\` jobs`
    const refusals = [...job.forbidden].map(([w, m]) => `${w}: ${m}`).join('; ').slice(0, 2000)
    const fix = `ask a worker's operator to allow this client (start --allow-peer ${self}), or submit with an identity they allow`
    if (tries.length > 0) return new JobFailedError(`job ${job.head.jobId} failed on ${tries.length} worker(s) (${describeTries(tries)}) and the ${job.forbidden.size} other worker(s) that serve ${what} refused this client (ERR_FORBIDDEN: ${refusals}): ${fix}`, { cause })
    return new ForbiddenError(`every worker that serves ${what} (${job.forbidden.size}) refused this client ${self}: ${refusals}: ${fix}`, { cause })
  }

  /** Workers and models this client knows (for ERR_NO_WORKER messages and status). */
  known (): ReturnType<Adverts['served']> {
    return this.init.adverts.served()
  }
}

function forbid (job: Pending, worker: string, message: string): void {
  job.forbidden.set(worker, message.slice(0, 300))
  job.excluded.add(worker)
  job.answered.add(worker)
  job.bids.delete(worker)
  job.wake()
}

function describeTries (tries: readonly JobTry[]): string {
  return tries.map((t, i) => `${i + 1}) ${t.worker}: ${t.code} ${t.message}`).join('; ')
}
