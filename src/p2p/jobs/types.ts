/**
 * The types the client side of the job protocol shares between its parts
 * (client.ts, auction.ts, lease.ts), and the frame limits both sides
 * take per skillset. Here, not in one of those files, so that none of
 * them imports another's types back.
 */
import type { Libp2p } from '@libp2p/interface'
import type { SkillsetName } from '../../interfaces/index.ts'
import type { Logger } from '../../logger.ts'
import type { Adverts } from '../swarm/adverts.ts'
import type { NodeServices } from '../swarm/libp2p.ts'
import type { Bid, Offer, Result } from '../wire/messages.ts'
import type { JobLinks } from './link.ts'
import type { PartialIn } from './stream-flow.ts'

/** The largest frame bodies of a skillset's jobs, on both sides. */
export interface FrameLimits {
  input: number
  output: number
  /** Streaming skillsets: the largest `partial` frame body (its envelope included). */
  partial?: number
}

export interface JobRequest {
  skillset: SkillsetName
  model?: string
  input: Record<string, unknown>
  params?: Record<string, unknown>
  /** Cost units of the input (texts for embed). */
  cost: number
  timeoutMs: number
  signal?: AbortSignal
  /**
   * A streaming skillset's job (job protocol 1.1.0): each partial (wire
   * form) is handed to `onPartial` in order, one at a time; a slow callback
   * pauses the job on the worker (`window` partials at most in flight,
   * default 16). Only workers with 1.1.0 links are offered the job.
   */
  stream?: {
    onPartial: (partial: Record<string, unknown>, seq: number) => void | Promise<void>
    window?: number
  }
  /** Called each time the job is leased to a worker (again after a retry elsewhere), before its input goes out. */
  onLease?: (worker: string) => void
}

export interface JobClientInit {
  libp2p: Libp2p<NodeServices>
  links: JobLinks
  adverts: Adverts
  limits: (skillset: SkillsetName) => FrameLimits
  log: Logger
  /** Workers offered each job directly (default 3). */
  fanout?: number
  /** After the first bid, wait at least this long (or as long as it took) for the other direct candidates (default 20 ms)... */
  bidWindowMs?: number
  /** ...but never longer than this (default 250 ms), unless the best bid would take long anyway: then up to half its expected time (fit.ts bidWindowEnd). */
  maxBidWindowMs?: number
  /** The first round waits this long for a bid; later rounds twice as long each, up to maxRoundMs (defaults 300, 2000). */
  roundMs?: number
  maxRoundMs?: number
  /** Workers send progress this often while they hold a job (default 1000 ms)... */
  heartbeatMs?: number
  /** ...and one silent for this many periods is given up on (default 3). */
  stallBeats?: number
  /** Shortest lease (default 10 s); longer for jobs a worker expects to take longer. */
  minLeaseMs?: number
  /** Workers a job may fail on before the client gives up (default 3). */
  maxTries?: number
  /** How long to look for a worker before ERR_NO_WORKER when none is known (default 5 s). */
  discoveryMs?: number
  /**
   * One round trip for a known worker (default true): a job goes straight to a worker this client holds a link
   * to and whose advert shows the model loaded, with the lease and input, no offer or bid; a refusal (its queue is
   * full, it stops, it does not serve the model) sends the job to the ordinary auction. Streaming jobs always
   * go through the auction.
   */
  fastPath?: boolean
  /** The fast path is taken while this client's jobs in flight at the worker cost at most this much (default 1024). */
  fastPathMaxInFlight?: number
  /**
   * ...and while the work queued ahead of the job there (its advert's queue plus what this client has in flight, at
   * its advertised throughput) is at most this much longer than at the freest worker known (default 100 ms); past it,
   * the auction asks who is free.
   */
  fastPathMaxWaitMs?: number
}

/** How a lease ended. */
export type Outcome = { t: 'result', worker: string, result: Result } | { t: 'error', worker: string, code: string, message: string }

/** A job the client has in hand: auction state, then its lease. */
export interface Pending {
  head: Pick<Offer, 'jobId' | 'traceId' | 'skillset' | 'model' | 'cost' | 'inputBytes'>
  /** Auction state: bids and direct candidates that answered. */
  bids: Map<string, Bid>
  answered: Set<string>
  /** Workers not offered this job again: those that failed it, and those that refused this client (ERR_FORBIDDEN). */
  excluded: Set<string>
  /** Workers that refused this client, and what they said. */
  forbidden: Map<string, string>
  /** Wakes the auction or lease loop. */
  wake: () => void
  /** Hash of the input and params, computed once (checked against each result's provenance). */
  inputHash?: Uint8Array
  /** The job streams (JobRequest.stream): only 1.1.0 links carry it. */
  streaming: boolean
  /** Partials the caller was handed over every lease (a job that streamed is not retried elsewhere). */
  streamed: number
  /** performance.now() of the first partial. */
  firstPartialAt?: number
  /** The worker that holds the lease, and its frames. */
  lease?: { worker: string, lastHeard: number, outcome?: Outcome, unknown?: boolean, stream?: PartialIn }
}
