/**
 * What a worker shows about itself: Prometheus metrics (`/metrics`), the
 * status document (`/status.json`) and the status page (`/`). The node hands
 * in a view of its parts (`NodeParts`, node-parts.ts, read at each request) and wraps its
 * job handler with `observeJobs`, which records each job's end; nothing here
 * changes what the node does.
 *
 * All three routes are open (no token), like `/healthz`: a Prometheus
 * scraper sends no credentials, and a person opens the page in a browser
 * that has none. What they show is public to the swarm already or counts
 * (status-schema.ts says what is left out).
 */
import { errorCode } from '../errors.ts'
import type { JobHandler, JobHead } from '../p2p/jobs/worker.ts'
import { StreamingQueue } from '../scheduler/streaming-queue.ts'
import type { Route } from '../gateway/http.ts'
import { statusRoutes } from '../gateway/status-routes.ts'
import { NodeMetrics } from './metrics.ts'
import type { NodeParts } from './node-parts.ts'
import { STATUS_VERSION } from './status-schema.ts'
import type { RecentJob, StatusDocument } from './status-schema.ts'

/** How many ended jobs the status keeps. */
export const RECENT_JOBS = 50
const OUTCOME_CODE = /^ERR_[A-Z0-9_]{1,60}$/

/** The outcome label of a job's end: `ok`, or its error code as the client gets it (p2p/jobs/worker.ts). */
export function outcomeOf (err: unknown): string {
  const code = errorCode(err)
  return OUTCOME_CODE.test(code) ? code : 'ERR_INTERNAL'
}

export class NodeObserver {
  readonly metrics: NodeMetrics
  private readonly parts: () => NodeParts
  private readonly startedAt = new Date()
  private readonly recent: RecentJob[] = []
  private readonly totals = new Map<string, number>()

  constructor (parts: () => NodeParts) {
    this.parts = parts
    this.metrics = new NodeMetrics(parts)
  }

  /**
   * The node's job handler, with each job's end recorded: outcome, time from
   * lease to end, and the served model (`modelOf`; `(none)` for a model this
   * node does not serve, so a client cannot mint label values).
   */
  jobs (handler: JobHandler, modelOf: (head: JobHead) => string | undefined): JobHandler {
    const record = (head: JobHead, outcome: string, started: number): void => {
      this.record({ id: head.jobId, skillset: head.skillset, model: modelOf(head) ?? '(none)', outcome, ms: performance.now() - started, at: new Date().toISOString() })
    }
    return {
      bid: (head) => handler.bid(head),
      ...(handler.streams === undefined ? {} : { streams: handler.streams.bind(handler) }),
      run: async (head, assign, signal, emit, client) => {
        const started = performance.now()
        try {
          const outcome = await handler.run(head, assign, signal, emit, client)
          record(head, 'ok', started)
          return outcome
        } catch (err) {
          record(head, outcomeOf(err), started)
          throw err
        }
      }
    }
  }

  private record (job: RecentJob): void {
    this.metrics.observeJob(job)
    this.totals.set(job.outcome, (this.totals.get(job.outcome) ?? 0) + 1)
    this.recent.unshift({ ...job, ms: Math.round(job.ms * 10) / 10 })
    if (this.recent.length > RECENT_JOBS) this.recent.length = RECENT_JOBS
  }

  /** The status document (status-schema.ts) as of now. */
  status (): StatusDocument {
    const p = this.parts()
    const connected = new Set((p.libp2p?.getPeers() ?? []).map(String))
    const now = performance.now()
    return {
      v: STATUS_VERSION,
      status: p.state,
      node: {
        peerId: p.libp2p?.peerId.toString() ?? '',
        startedAt: this.startedAt.toISOString(),
        uptimeS: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
        requested: p.requested,
        hardware: p.hardware ?? null,
        models: p.served.map((m) => ({
          id: m.entry.id,
          skillset: m.entry.skillset,
          cid: m.cid,
          loaded: m.queue.ready && p.state === 'ok',
          randomWeights: m.randomWeights,
          loadMs: Math.round(m.loadMs),
          plan: { device: m.plan.device, provider: m.plan.provider, dtype: m.plan.dtype, threads: m.plan.intraOpThreads, reasons: m.plan.reasons, fallbacks: m.plan.fallbacks },
          queue: { depth: m.queue.depth, queuedCost: m.queue.queuedCost, throughput: round(m.queue.throughput) ?? null, unit: m.queue instanceof StreamingQueue ? 'tokens/s' : 'items/s' }
        }))
      },
      swarm: {
        connectedPeers: connected.size,
        peers: (p.adverts?.peers() ?? []).map(({ peerId, advert, expiresAt }) => ({
          peerId,
          connected: connected.has(peerId),
          expiresInS: Math.max(0, Math.round((expiresAt - now) / 100) / 10),
          hardware: advert.hardware,
          queueDepth: advert.queueDepth,
          models: advert.models.map((m) => ({ id: m.id, skillset: m.skillset, loaded: m.loaded, provider: m.provider, dtype: m.dtype, device: m.device, throughput: m.throughput ?? null, queuedCost: m.queuedCost ?? null }))
        }))
      },
      jobs: {
        inHand: p.jobs?.held ?? 0,
        queueDepth: p.served.reduce((n, m) => n + m.queue.depth, 0),
        totals: Object.fromEntries(this.totals),
        recent: [...this.recent]
      }
    }
  }

  /** `/`, `/status.json` and `/metrics`, all open (see the header). */
  routes (): Route[] {
    return statusRoutes({ status: () => this.status(), metrics: async () => await this.metrics.scrape() })
  }
}

function round (x: number | undefined): number | undefined {
  return x === undefined ? undefined : Math.round(x * 100) / 100
}
