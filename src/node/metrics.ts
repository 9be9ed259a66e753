/**
 * The node's Prometheus metrics, on a Registry of its own (never
 * prom-client's global one: a process can host several nodes, as tests and
 * benchmarks do, and each must expose its own numbers).
 *
 * Jobs are observed as they end (counter and latency histogram by
 * skillset, model and outcome); everything else is read from the parts'
 * own counters at scrape time (`collect`), so the parts keep one source of
 * truth and /healthz and /metrics never disagree.
 *
 * Label values are bounded: models are the ones this node serves (or
 * `(none)`), outcomes are `ok` or an error code of src/errors.ts (anything
 * else is ERR_INTERNAL, as the job worker reports it), reasons are fixed
 * tables below. No peer id, job id or input ever becomes a label.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { NodeParts } from './node-parts.ts'
import { StreamingQueue } from '../scheduler/streaming-queue.ts'

const P = 'ipfs_accelerate_'

/** Job latency buckets, in seconds: an embedding of a few texts to a long generation. */
export const JOB_BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300])

type Stats = Record<string, number>
/** Which counter of which part counts a dropped or refused message, by reason. */
const DROPS: ReadonlyArray<{ source: string, reason: string, read: (p: NodeParts) => number | undefined }> = Object.freeze([
  { source: 'jobs', reason: 'malformed_offer', read: (p) => p.jobs?.dropped },
  { source: 'jobs', reason: 'bad_frame', read: (p) => p.jobs?.badFrames },
  { source: 'jobs', reason: 'rate_limited', read: (p) => p.jobs?.rateLimited },
  { source: 'jobs', reason: 'forbidden_peer', read: (p) => p.jobs?.forbidden },
  { source: 'jobs', reason: 'old_protocol', read: (p) => p.jobs?.oldLinks },
  { source: 'adverts', reason: 'malformed', read: (p) => p.adverts?.stats.dropped },
  { source: 'adverts', reason: 'foreign_addrs', read: (p) => p.adverts?.stats.foreignAddrs },
  { source: 'adverts', reason: 'bad_hint', read: (p) => p.adverts?.stats.badHints },
  { source: 'links', reason: 'refused', read: (p) => p.links?.refused },
  { source: 'store', reason: 'refused_by_limit', read: (p) => p.exchange?.refusedRequests },
  { source: 'store', reason: 'malformed_request', read: (p) => p.exchange?.malformedRequests }
])

/** Job bus events worth a rate on a dashboard, from the job worker's counters. */
const BUS_EVENTS: ReadonlyArray<[string, keyof NonNullable<NodeParts['jobs']>]> = Object.freeze([
  ['offer', 'offers'], ['direct_offer', 'directOffers'], ['bid', 'bids'], ['busy', 'busy'], ['lease', 'leases'],
  ['result', 'results'], ['error', 'errors'], ['cancelled', 'cancelled'], ['expired', 'expired'], ['query', 'queries'], ['resumed', 'resumed'], ['refused', 'refused']
])

/** A counter whose value is another part's cumulative count: set at scrape time. */
function mirrored<L extends string> (counter: Counter<L>, rows: Array<[Partial<Record<L, string>>, number | undefined]>): void {
  counter.reset()
  for (const [labels, v] of rows) if (v !== undefined) counter.inc(labels, v)
}

export class NodeMetrics {
  readonly registry = new Registry()
  private readonly jobs: Counter<'skillset' | 'model' | 'outcome'>
  private readonly latency: Histogram<'skillset' | 'model' | 'outcome'>

  constructor (parts: () => NodeParts) {
    const registers = [this.registry]
    this.jobs = new Counter({ name: `${P}jobs_total`, help: 'Jobs this worker ran to an end, by skillset, model and outcome (ok or the error code).', labelNames: ['skillset', 'model', 'outcome'], registers })
    this.latency = new Histogram({ name: `${P}job_duration_seconds`, help: 'Time from a lease to the job\'s end on this worker (queue wait included), by skillset, model and outcome.', labelNames: ['skillset', 'model', 'outcome'], buckets: [...JOB_BUCKETS], registers })

    const models = (fn: (m: NodeParts['served'][number]) => number | undefined) => (g: Gauge<'model' | 'skillset'>): void => {
      g.reset()
      for (const m of parts().served) { const v = fn(m); if (v !== undefined) g.set({ model: m.entry.id, skillset: m.entry.skillset }, v) }
    }
    const depth = models((m) => m.queue.depth)
    const cost = models((m) => m.queue.queuedCost)
    const loaded = models((m) => m.queue.ready ? 1 : 0)
    new Gauge({ name: `${P}queue_depth`, help: 'Jobs waiting plus running, per served model.', labelNames: ['model', 'skillset'], registers, collect () { depth(this) } })
    new Gauge({ name: `${P}queue_cost`, help: 'Cost units waiting (texts, or KV-cache tokens for streaming models), per served model.', labelNames: ['model', 'skillset'], registers, collect () { cost(this) } })
    new Gauge({ name: `${P}model_loaded`, help: '1 while the model has an inference thread up and the node bids for it, else 0.', labelNames: ['model', 'skillset'], registers, collect () { loaded(this) } })
    new Gauge({
      name: `${P}model_throughput`,
      help: 'Measured rate per runner: items/s (batching skillsets) or tokens/s (streaming skillsets), as adverts publish it.',
      labelNames: ['model', 'skillset', 'unit'],
      registers,
      collect () {
        this.reset()
        for (const m of parts().served) {
          const t = m.queue.throughput
          if (t !== undefined) this.set({ model: m.entry.id, skillset: m.entry.skillset, unit: m.queue instanceof StreamingQueue ? 'tokens_per_second' : 'items_per_second' }, t)
        }
      }
    })
    new Counter({
      name: `${P}tokens_generated_total`,
      help: 'Tokens (partials) streaming models emitted; rate() of it is the node\'s tokens/s.',
      labelNames: ['model', 'skillset'],
      registers,
      collect () { mirrored(this, parts().served.flatMap((m) => m.queue instanceof StreamingQueue ? [[{ model: m.entry.id, skillset: m.entry.skillset }, m.queue.stats.partials]] : [])) }
    })
    new Gauge({
      name: `${P}model_load_seconds`,
      help: 'How long the model took to load at start (weights from the store into its inference threads), with the plan it runs on.',
      labelNames: ['model', 'skillset', 'provider', 'dtype', 'device'],
      registers,
      collect () {
        this.reset()
        for (const m of parts().served) this.set({ model: m.entry.id, skillset: m.entry.skillset, provider: m.plan.provider, dtype: m.plan.dtype, device: m.plan.device }, m.loadMs / 1000)
      }
    })
    new Gauge({ name: `${P}peers_connected`, help: 'libp2p peers with a connection to this node now (workers and clients).', registers, collect () { this.set(parts().libp2p?.getPeers().length ?? 0) } })
    new Gauge({ name: `${P}workers_known`, help: 'Other workers with a live advert in this node\'s table.', registers, collect () { this.set(parts().adverts?.peers().length ?? 0) } })
    const exchange = [
      ['bytes', 'Block bytes the block exchange (/ipfs-accelerate/blocks/1.0.0) served to peers and fetched from them.', 'servedBytes', 'fetchedBytes'],
      ['blocks', 'Blocks the block exchange served to peers and fetched from them.', 'servedBlocks', 'fetchedBlocks']
    ] as const
    for (const [unit, help, served, fetched] of exchange) {
      new Counter({ name: `${P}store_exchange_${unit}_total`, help, labelNames: ['direction'], registers, collect () { const x = parts().exchange; mirrored(this, [[{ direction: 'served' }, x?.[served]], [{ direction: 'fetched' }, x?.[fetched]]]) } })
    }
    new Counter({
      name: `${P}dropped_messages_total`,
      help: 'Messages and requests dropped or refused, by the part that dropped them and why.',
      labelNames: ['source', 'reason'],
      registers,
      collect () { const p = parts(); mirrored(this, DROPS.map((d) => [{ source: d.source, reason: d.reason }, d.read(p)])) }
    })
    new Counter({
      name: `${P}job_bus_events_total`,
      help: 'Job protocol events on this worker: offers heard, bids sent, leases taken, answers sent...',
      labelNames: ['event'],
      registers,
      collect () { const s: Stats | undefined = parts().jobs; mirrored(this, BUS_EVENTS.map(([event, key]) => [{ event }, s?.[key]])) }
    })
  }

  /** A job ended on this worker. */
  observeJob (job: { skillset: string, model: string, outcome: string, ms: number }): void {
    const labels = { skillset: job.skillset, model: job.model, outcome: job.outcome }
    this.jobs.inc(labels)
    this.latency.observe(labels, job.ms / 1000)
  }

  /** The exposition text and its content type. */
  async scrape (): Promise<{ contentType: string, text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() }
  }
}
