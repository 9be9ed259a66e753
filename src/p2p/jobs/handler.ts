/**
 * The contracts of the worker side of the job protocol (worker.ts):
 * what the node decides (JobHandler: whether to bid, how to run a leased
 * job) and what a JobWorker is built from.
 */
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import type { SkillsetName } from '../../interfaces/index.ts'
import type { Logger } from '../../logger.ts'
import type { JobHead, ResultBody } from './answers.ts'
import type { FrameLimits } from './types.ts'
import type { JobLinks } from './link.ts'
import type { NodeServices } from '../swarm/libp2p.ts'
import type { Assign, Bid } from '../wire/messages.ts'
import type { ProvenanceClaim } from '../trust/provenance.ts'

export type BidTerms = Omit<Bid, 'v' | 't' | 'jobId'>
/** What the node's handler returns: the result, and how it was computed (the worker signs it). */
export type RunOutcome = Omit<ResultBody, 'provenance' | 'partials'> & { claim: ProvenanceClaim }

/** What the node decides: whether to bid, and how to run a leased job. */
export interface JobHandler {
  /** Terms of a bid; `{ busy }` when it serves the model but cannot start the job now; undefined when it does not serve it. */
  bid(head: JobHead): BidTerms | { busy: string } | undefined
  /**
   * Run a leased job; a streaming job also gets `emit` for its partials
   * (wire form), which resolves when the client has room. `client` is the
   * peer that leased it (attachments are fetched from it).
   */
  run(head: JobHead, assign: Assign, signal: AbortSignal, emit?: (partial: Record<string, unknown>) => Promise<void>, client?: string): Promise<RunOutcome>
  /** Whether the skillset's jobs stream (absent: none do). */
  streams?(skillset: SkillsetName): boolean
}

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
  /** How long a streaming job's client may be without a link to us before its job is cancelled (default 5000 ms). */
  resumeGraceMs?: number
}
