/**
 * The gateway's job client: one per node, long-lived, on the node's own
 * libp2p, job links and adverts (no process, no connection per request).
 *
 * A libp2p node cannot dial itself, so the swarm's auction never offers a
 * job to the node that submits it. This client therefore decides first
 * whether the job runs here:
 *
 * - This node serves the model and its handler would bid now (the model
 *   is loaded and its queue admits the cost): compare the expected
 *   completion time here (queued cost and measured throughput, exact) with
 *   the best advertised worker elsewhere, by the same `expectedMs` the
 *   auction ranks with, plus what going through the swarm costs (auction,
 *   lease, transfer: measured on this client's swarm jobs, smoothed; 50 ms
 *   until one is measured). Here wins ties.
 * - Otherwise, or when a peer is expected to finish sooner, the job goes to
 *   the swarm through the job client (auction, lease, retries, signed
 *   results), which never offers it to this node.
 *
 * A local job runs through the same `JobHandler.run` a leased job takes
 * (input parsing, cost check, images, queue, embedding cache), so both
 * paths give the same output; its partials go to the caller in order, and
 * the caller's signal (the HTTP client went away) cancels it.
 *
 * Why not make this node a bidder in its own auction: the auction is made
 * of wire frames on links (offer, bid, assign, signed result); a loopback
 * link would add encoding, signing and a round trip to every local job for
 * the one decision above, which the numbers the auction uses already make.
 */
import { errorCode, InputTooLargeError, JobTimeoutError, QueueFullError, ShuttingDownError } from '../errors.ts'
import type { SkillsetName } from '../interfaces/index.ts'
import type { Logger } from '../logger.ts'
import type { Adverts } from '../p2p/swarm/adverts.ts'
import { encodeMessage } from '../p2p/wire/codec.ts'
import { expectedMs, typicalThroughput } from '../p2p/jobs/fit.ts'
import { newJobId } from '../p2p/jobs/client.ts'
import type { JobClient } from '../p2p/jobs/client.ts'
import type { FrameLimits } from '../p2p/jobs/types.ts'
import type { BidTerms, JobHandler, JobHead } from '../p2p/jobs/worker.ts'
import { PROTOCOL_VERSION } from '../p2p/wire/protocol.ts'
import type { Assign } from '../p2p/wire/messages.ts'
import type { GatewayAnswer, GatewayBackend, GatewayJob, SwarmModel } from '../gateway/openai/backend.ts'

export interface LocalFirstClientInit {
  /** This node's peer id. */
  self: string
  /** This node's job handler: `bid` says whether it can start a job now, `run` runs it. */
  handler: Pick<JobHandler, 'bid' | 'run'>
  /** The node's job client (the swarm, never this node). */
  jobs: Pick<JobClient, 'submit'>
  adverts: Pick<Adverts, 'serving' | 'served'>
  /** The models this node serves, loaded or not. */
  ownModels: () => Array<{ id: string, skillset: SkillsetName, loaded: boolean }>
  limits: (skillset: SkillsetName) => FrameLimits
  log: Logger
}

/** How long a local job's progress frames would be apart (unused locally: the lease is the job's own timeout). */
const LOCAL_HEARTBEAT_MS = 1000
/** What a job through the swarm is assumed to cost beyond its queue and run time until one was measured (bid window, round trips). */
const DEFAULT_SWARM_OVERHEAD_MS = 50

export class LocalFirstClient implements GatewayBackend {
  private readonly init: LocalFirstClientInit
  /** Jobs run here and sent to the swarm, for /healthz. */
  readonly stats = { local: 0, swarm: 0, swarmOverheadMs: DEFAULT_SWARM_OVERHEAD_MS }
  private readonly shutdown = new AbortController()

  constructor (init: LocalFirstClientInit) {
    this.init = init
  }

  /** End every job in flight with ERR_SHUTTING_DOWN (their HTTP clients get 503), and take no more. Idempotent. */
  stop (): void {
    this.shutdown.abort(new ShuttingDownError('this node is stopping: send the request to another node, or retry once it is back'))
  }

  async submit (job: GatewayJob): Promise<GatewayAnswer> {
    if (this.shutdown.signal.aborted) throw this.shutdown.signal.reason as Error
    try {
      return await this.route({ ...job, signal: AbortSignal.any([job.signal, this.shutdown.signal]) })
    } catch (err) {
      if (this.shutdown.signal.aborted && !job.signal.aborted) throw new ShuttingDownError((this.shutdown.signal.reason as Error).message, { cause: err })
      throw err
    }
  }

  private async route (job: GatewayJob): Promise<GatewayAnswer> {
    const inputBytes = encodeMessage(job.input, Number.MAX_SAFE_INTEGER).byteLength
    const limit = this.init.limits(job.skillset).input
    if (inputBytes > limit) throw new InputTooLargeError(`the job's input is ${inputBytes} bytes, over the ${limit}-byte limit of \`${job.skillset}\` jobs: send less at once`)
    const head: JobHead = { jobId: newJobId(), traceId: newJobId(), skillset: job.skillset, ...(job.model === undefined ? {} : { model: job.model }), cost: job.cost, inputBytes }
    const terms = this.init.handler.bid(head)
    if (terms !== undefined && !('busy' in terms) && this.runsHere(job, terms)) return await this.runHere(head, job)
    // Another worker: the model this node would have run, so a default means the same model everywhere.
    const model = job.model ?? (terms !== undefined && !('busy' in terms) ? terms.model : undefined)
    this.stats.swarm++
    try {
      const r = await this.init.jobs.submit({
        skillset: job.skillset,
        ...(model === undefined ? {} : { model }),
        input: job.input,
        cost: job.cost,
        timeoutMs: job.timeoutMs,
        signal: job.signal,
        ...(job.onLease === undefined ? {} : { onLease: job.onLease }),
        ...(job.onPartial === undefined ? {} : { stream: { onPartial: job.onPartial } })
      })
      const overhead = r.timings.totalMs - r.timings.queueMs - r.timings.runMs
      if (Number.isFinite(overhead) && overhead >= 0) this.stats.swarmOverheadMs = Math.round((0.8 * this.stats.swarmOverheadMs + 0.2 * overhead) * 10) / 10
      return { worker: r.worker, model: r.model, output: r.output }
    } catch (err) {
      // This node serves it but is full, and no peer serves it: no capacity now, rather than "nobody serves it".
      if (terms !== undefined && 'busy' in terms && errorCode(err) === 'ERR_NO_WORKER') {
        throw new QueueFullError(`this node serves ${job.model ?? `the default \`${job.skillset}\` model`} but ${terms.busy}, and no other worker serves it: retry shortly`, { cause: err })
      }
      throw err
    }
  }

  /** Whether this node is expected to finish the job no later than the best worker advertised elsewhere. */
  private runsHere (job: GatewayJob, terms: BidTerms): boolean {
    const remote = this.init.adverts.serving(job.skillset, terms.model).filter((s) => s.peerId !== this.init.self && s.source === 'advert')
    if (remote.length === 0) return true
    const typical = typicalThroughput([...remote.map((r) => r.model), terms])
    const here = expectedMs(terms, job.cost, undefined, typical)
    const best = Math.min(...remote.map((r) => expectedMs(r.model, job.cost, undefined, typical))) + this.stats.swarmOverheadMs
    this.init.log.debug('here or the swarm', { model: terms.model, cost: job.cost, hereMs: Math.round(here), swarmMs: Math.round(best), workers: remote.length })
    return here <= best
  }

  private async runHere (head: JobHead, job: GatewayJob): Promise<GatewayAnswer> {
    this.stats.local++
    const timeout = AbortSignal.timeout(job.timeoutMs)
    const signal = AbortSignal.any([timeout, job.signal])
    const assign: Assign = { v: PROTOCOL_VERSION, t: 'assign', ...head, input: job.input, leaseMs: job.timeoutMs, heartbeatMs: LOCAL_HEARTBEAT_MS }
    job.onLease?.(this.init.self)
    let seq = 0
    const emit = job.onPartial === undefined ? undefined : async (p: Record<string, unknown>): Promise<void> => { await job.onPartial!(p, seq++) }
    try {
      const out = await this.init.handler.run(head, assign, signal, emit, this.init.self)
      return { worker: this.init.self, model: out.model, output: out.output }
    } catch (err) {
      if (timeout.aborted && !job.signal.aborted) throw new JobTimeoutError(`no result within ${Math.round(job.timeoutMs / 1000)} s on this node: retry, or send less at once`, { cause: err })
      throw err
    }
  }

  models (): SwarmModel[] {
    const out = new Map<string, SwarmModel>()
    for (const m of this.init.ownModels()) out.set(m.id, { id: m.id, skillset: m.skillset, workers: m.loaded ? 1 : 0, local: true })
    for (const s of this.init.adverts.served()) {
      const here = out.get(s.id)
      const workers = this.init.adverts.serving(s.skillset, s.id).filter((w) => w.peerId !== this.init.self).length
      if (here !== undefined) here.workers += workers
      else out.set(s.id, { id: s.id, skillset: s.skillset, workers, local: false })
    }
    return [...out.values()]
  }
}
