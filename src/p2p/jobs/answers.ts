/**
 * What a worker sends back about a job it holds: partials of a streaming
 * job (1.1.0, with their window and replay buffer, stream-flow.ts), the
 * outcome (result or error), and answers to a client's `query` after it
 * lost the link (the kept outcome, `progress`, or `status: unknown`; a
 * streaming job resumes from the client's `fromSeq`). Split from
 * worker.ts, which takes offers and leases; both share `Held`.
 */
import { errorCode, errorMessage } from '../../errors.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import type { Logger } from '../../logger.ts'
import type { JobLink, JobLinks } from './link.ts'
import type { Assign, LinkFrame, Offer, Result } from '../wire/messages.ts'
import { MAX_CONTROL_FRAME_BYTES, PROTOCOL_VERSION } from '../wire/protocol.ts'
import { PartialOut } from './stream-flow.ts'
import type { FrameLimits } from './types.ts'

/** What a worker knows of a job before its input arrives. */
export type JobHead = Pick<Offer, 'jobId' | 'traceId' | 'skillset' | 'model' | 'cost' | 'inputBytes'>
export type ResultBody = Omit<Result, 'v' | 't' | 'jobId'>

/** A job in hand (or its kept outcome), by `client/jobId`. */
export interface Held {
  client: string
  head: JobHead
  controller: AbortController
  heartbeatMs: number
  leaseMs: number
  leaseEnd: number
  lastSentAt: number
  /** A streaming job's partials (1.1.0). */
  stream?: PartialOut
  /** A streaming job's client has no link to us since then: cancelled after the resume grace unless it asks again. */
  orphanedAt?: number
  /** Ends a streaming job whose partial cannot be sent at all (over its frame limit): the job fails, its client is told. */
  streamFailed?: AbortController
  outcome?: { t: 'result', body: ResultBody } | { t: 'error', code: string, message: string }
}

export interface AnswerDeps {
  links: JobLinks
  limits: (skillset: SkillsetName) => FrameLimits
  log: Logger
  stats: { results: number, errors: number, partials: number, resumed: number }
  shutdown: AbortSignal
}

/** Send a frame whose loss the protocol recovers from (the client times out or asks again): log, do not throw. */
export async function sendQuiet (deps: Pick<AnswerDeps, 'log'>, link: JobLink, f: LinkFrame, maxBytes?: number): Promise<boolean> {
  try {
    await link.send(f, maxBytes)
    return true
  } catch (err) {
    deps.log.debug('could not send a frame', { client: link.peer, jobId: f.jobId, t: f.t, error: errorMessage(err) })
    return false
  }
}

/** The partial stream of a streaming job: frames go on whatever 1.1.0 link to the client is open. */
export function openStream (deps: AnswerDeps, held: Held, window: number): PartialOut {
  const limit = deps.limits(held.head.skillset).partial ?? MAX_CONTROL_FRAME_BYTES
  return new PartialOut({
    window,
    send: async (seq, data) => {
      const link = deps.links.find(held.client)
      if (link === undefined || !link.streaming) return false
      held.lastSentAt = performance.now()
      try {
        await link.send({ v: PROTOCOL_VERSION, t: 'partial', jobId: held.head.jobId, seq, data }, limit)
      } catch (err) {
        // A closed link pauses the stream until the client resumes; a partial refused on an open link never goes: the job fails.
        if (!link.closed) held.streamFailed?.abort(err)
        deps.log.debug('could not send a partial', { client: link.peer, jobId: held.head.jobId, seq, error: errorMessage(err) })
        return false
      }
      deps.stats.partials++
      return true
    }
  })
}

/** Send a job's outcome on whatever link to its client is open, or one opened over its connection. */
export async function deliver (deps: AnswerDeps, held: Held): Promise<void> {
  const o = held.outcome
  if (o === undefined) return
  // A streaming job's result follows its partials: while some are not on the wire, it waits for the client's resume.
  if (o.t === 'result' && held.stream !== undefined && !held.stream.flushed) return
  const f: LinkFrame = o.t === 'result'
    ? { v: PROTOCOL_VERSION, t: 'result', jobId: held.head.jobId, ...o.body }
    : { v: PROTOCOL_VERSION, t: 'error', jobId: held.head.jobId, code: o.code, message: o.message }
  let link = deps.links.find(held.client)
  if (link === undefined) {
    try {
      link = await deps.links.get(held.client, AbortSignal.any([deps.shutdown, AbortSignal.timeout(2000)]))
    } catch (err) {
      deps.log.info('the client of a finished job is gone: keeping its outcome for its query', { jobId: held.head.jobId, client: held.client, error: errorMessage(err) })
      return
    }
  }
  const limit = deps.limits(held.head.skillset).output + MAX_CONTROL_FRAME_BYTES
  try {
    await link.send(f, limit)
    if (f.t === 'result') deps.stats.results++
    else deps.stats.errors++
  } catch (err) {
    if (link.closed) {
      deps.log.info('lost the link while answering a job: keeping its outcome for its query', { jobId: held.head.jobId, client: held.client })
      return
    }
    // The result itself is refused (over the frame limit): the client gets a typed error instead.
    deps.stats.errors++
    await sendQuiet(deps, link, { v: PROTOCOL_VERSION, t: 'error', jobId: held.head.jobId, code: errorCode(err) === 'ERR_MESSAGE_TOO_LARGE' ? 'ERR_MESSAGE_TOO_LARGE' : 'ERR_INTERNAL', message: errorMessage(err).slice(0, 2000) })
  }
}

/** Answer a client's query about a job: its outcome, `progress`, or `status: unknown`; a streaming job resumes from `fromSeq`. */
export function answerQuery (deps: AnswerDeps, link: JobLink, jobId: string, held: Held | undefined, fromSeq: number | undefined): void {
  const unknown = (): void => { void sendQuiet(deps, link, { v: PROTOCOL_VERSION, t: 'status', jobId, state: 'unknown' }) }
  if (held === undefined || held.controller.signal.aborted) { unknown(); return }
  if (held.stream !== undefined) {
    delete held.orphanedAt
    // A resume needs the partials from fromSeq still in the replay buffer; a query without fromSeq cannot resume a stream.
    if (fromSeq === undefined || !link.streaming || !held.stream.resume(fromSeq)) {
      deps.log.info('cannot resume a streaming job: the client asked for partials no longer kept', { jobId, client: link.peer, fromSeq, acked: held.stream.acked, next: held.stream.next })
      unknown()
      return
    }
    deps.stats.resumed++
  }
  if (held.outcome !== undefined) { void deliver(deps, held); return }
  held.lastSentAt = performance.now()
  void sendQuiet(deps, link, { v: PROTOCOL_VERSION, t: 'progress', jobId, state: 'running' })
}

/**
 * One pass over the jobs held: a progress heartbeat to each job's client
 * when due; `end` for a job whose lease expired or whose streaming client
 * has been gone past the resume grace. Returns the jobs still in hand.
 */
export function heartbeats (deps: AnswerDeps, jobs: Iterable<[string, Held]>, resumeGraceMs: number, end: (key: string, why: 'expired' | 'orphaned') => void): Array<[string, Held]> {
  const now = performance.now()
  const inHand: Array<[string, Held]> = []
  for (const [key, h] of jobs) {
    if (h.outcome !== undefined || h.controller.signal.aborted) continue
    inHand.push([key, h])
    if (now > h.leaseEnd) { end(key, 'expired'); continue }
    if (h.orphanedAt !== undefined && now - h.orphanedAt > resumeGraceMs) { end(key, 'orphaned'); continue }
    if (now - h.lastSentAt < h.heartbeatMs) continue
    const link = deps.links.find(h.client)
    if (link === undefined) continue
    h.lastSentAt = now
    void sendQuiet(deps, link, { v: PROTOCOL_VERSION, t: 'progress', jobId: h.head.jobId, state: 'running' })
  }
  return inHand
}

/** The error frame for a client that this worker's allow list refuses. */
export function forbiddenFrame (client: string, jobId: string): LinkFrame {
  return { v: PROTOCOL_VERSION, t: 'error', jobId, code: 'ERR_FORBIDDEN', message: `this worker takes jobs only from the peers it allows, and ${client} is not one: ask its operator to add it (--allow-peer), or offer the job to another worker` }
}

/** Why an assign with no bid before it is refused (the bid rule says no), or undefined when it can start now. */
export function unbidRefusal (a: Pick<Assign, 'model' | 'skillset'>, terms: object | undefined, started: boolean): { code: string, message: string } | undefined {
  if (terms !== undefined && !('busy' in terms)) return undefined
  if (terms === undefined) return { code: 'ERR_MODEL_NOT_FOUND', message: `this worker does not serve ${a.model ?? `\`${a.skillset}\` jobs`}: offer the job to another worker` }
  return { code: started ? 'ERR_QUEUE_FULL' : 'ERR_SHUTTING_DOWN', message: `${String((terms as { busy: unknown }).busy)}: offer the job to another worker` }
}
