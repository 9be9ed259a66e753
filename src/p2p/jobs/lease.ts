/**
 * A job's lease, seen from the client: the input goes with `assign`, with a
 * lease length from the worker's expected time and a heartbeat period; the
 * client waits for the outcome, checks a result's signed provenance, and
 * gives the worker up when it goes silent (after a `query` it does not
 * answer), when its link breaks and it cannot be reached again, or when the
 * lease runs out. Split from client.ts, which runs the auctions; client.ts and this file share the `Pending` job state (types.ts).
 *
 * A streaming job (1.1.0) hands its partials to the caller in order as they
 * come (stream-flow.ts PartialIn), acknowledging them as the caller
 * consumes them and on every heartbeat (which renews the worker's lease;
 * each frame from the worker renews the client's). After a lost link the
 * query carries `fromSeq`, so the worker resumes where the caller is.
 * The result must name as many partials as arrived, with their hash
 * signed; it is returned once the caller has consumed every partial.
 */
import type { Bid, LinkFrame, Offer, Result } from '../wire/messages.ts'
import type { JobLinks } from './link.ts'
import type { WorkerRecord } from './fit.ts'
import type { FrameLimits, JobRequest, Outcome, Pending } from './types.ts'
import { errorCode, errorMessage } from '../../errors.ts'
import { DEFAULT_STREAM_WINDOW, PartialIn } from './stream-flow.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { MAX_CONTROL_FRAME_BYTES, PROTOCOL_VERSION } from '../wire/protocol.ts'
import { hashInput, hashOutput, verifyResult } from '../trust/provenance.ts'



/** What a lease needs of its client. */
export interface LeaseDeps {
  /** This client's peer id (results are signed for it). */
  self: string
  links: JobLinks
  limits: (skillset: SkillsetName) => FrameLimits
  init: { heartbeatMs?: number, stallBeats?: number, minLeaseMs?: number }
  stats: { lost: number, stalled: number, expired: number, queries: number, recovered: number, badSignatures: number }
  record: (worker: string) => WorkerRecord
  /** Send a frame the protocol can do without (cancel): never throws. */
  send: (peer: string, f: LinkFrame) => Promise<void>
}

/** Lease the job to the chosen worker and wait for its outcome; a lost or stalled worker yields an error outcome. */
export async function leaseJob (deps: LeaseDeps, job: Pending, req: JobRequest, chosen: Bid & { worker: string }, deadline: number, signal: AbortSignal, waitWake: (until: number) => Promise<void>): Promise<Outcome> {
  const worker = chosen.worker
  // the auction counted the job's cost in flight there when it chose this bid; it is given back when the lease ends
  const rec = deps.record(worker)
  const leasedAt = performance.now()
  const hb = (deps.init.heartbeatMs ?? 1000)
  const leaseMs = Math.max(1, Math.min(Math.round(deadline - leasedAt), (deps.init.minLeaseMs ?? 10_000) + 4 * (chosen.etaMs ?? 0)))
  let leaseEnd = leasedAt + leaseMs
  const onPartial = req.stream?.onPartial
  const window = req.stream?.window ?? DEFAULT_STREAM_WINDOW
  const stream = onPartial === undefined
    ? undefined
    : new PartialIn({
      window,
      onPartial: async (data, seq) => { job.firstPartialAt ??= performance.now(); job.streamed++; await onPartial(data, seq) },
      sendAck: (next) => { void deps.send(worker, { v: PROTOCOL_VERSION, t: 'ack', jobId: job.head.jobId, next }) }
    })
  job.lease = { worker, lastHeard: leasedAt, ...(stream === undefined ? {} : { stream }) }
  let ackedAt = leasedAt
  const lost = (code: string, message: string): Outcome => {
    rec.failures.push(performance.now())
    if (rec.failures.length > 16) rec.failures.shift()
    void deps.send(worker, { v: PROTOCOL_VERSION, t: 'cancel', jobId: job.head.jobId })
    return { t: 'error', worker, code, message }
  }
  try {
    // inside the try: a caller's callback that throws still gives back the cost counted in flight
    req.onLease?.(worker)
    const link = deps.links.find(worker)
    if (link === undefined) return lost('ERR_WORKER_LOST', 'the link to the worker closed before the lease')
    try {
      await link.send({ v: PROTOCOL_VERSION, t: 'assign', ...job.head, input: req.input, ...(req.params === undefined ? {} : { params: req.params }), leaseMs, heartbeatMs: hb, ...(stream === undefined ? {} : { window }) }, deps.limits(req.skillset).input + MAX_CONTROL_FRAME_BYTES)
    } catch (err) {
      if (errorCode(err) === 'ERR_MESSAGE_TOO_LARGE') return { t: 'error', worker, code: 'ERR_INPUT_TOO_LARGE', message: errorMessage(err) }
    }
    const stallMs = (deps.init.stallBeats ?? 3) * hb
    let queryAt: number | undefined
    for (;;) {
      const l = job.lease
      if (stream?.error !== undefined) {
        // The caller's own callback failed: the job ends with that error, and the worker stops.
        void deps.send(worker, { v: PROTOCOL_VERSION, t: 'cancel', jobId: job.head.jobId })
        throw stream.error
      }
      if (l.outcome?.t === 'result') {
        const why = await checkProvenance(deps.self, job, req, l.outcome.worker, l.outcome.result, stream)
        if (why !== undefined) {
          deps.stats.badSignatures++
          return lost('ERR_BAD_SIGNATURE', `the result's provenance does not hold: ${why}`)
        }
        // Every partial reaches the caller before the result does.
        await stream?.drained()
      }
      if (l.outcome !== undefined) {
        if (l.outcome.t === 'result') {
          const perCost = (performance.now() - leasedAt) / Math.max(1, req.cost)
          rec.msPerCost = rec.msPerCost === undefined ? perCost : 0.7 * rec.msPerCost + 0.3 * perCost
        } else {
          rec.failures.push(performance.now())
        }
        return l.outcome
      }
      if (signal.aborted) {
        void deps.send(worker, { v: PROTOCOL_VERSION, t: 'cancel', jobId: job.head.jobId })
        return { t: 'error', worker, code: 'ERR_JOB_TIMEOUT', message: 'the job ran out of time at the worker' }
      }
      const now = performance.now()
      if (stream !== undefined) {
        // A stream's lease lives as long as the worker is heard from; the worker's, as long as we ack.
        leaseEnd = Math.min(deadline, Math.max(leaseEnd, l.lastHeard + leaseMs))
        if (now - ackedAt >= hb) { ackedAt = now; stream.ackNow() }
      }
      if (l.unknown === true) {
        deps.stats.lost++
        return lost('ERR_WORKER_LOST', 'the worker no longer knows the job (it restarted, or gave the lease up)')
      }
      if (now >= leaseEnd) {
        deps.stats.expired++
        return lost('ERR_LEASE_EXPIRED', `no answer within the ${leaseMs} ms lease`)
      }
      const linkUp = deps.links.has(worker)
      if (queryAt !== undefined && l.lastHeard > queryAt) { queryAt = undefined; deps.stats.recovered++ }
      if (queryAt === undefined && (!linkUp || now - l.lastHeard > stallMs)) {
        // A lost link or silence: ask the worker (over a new link if need be) before giving the job up.
        queryAt = now
        deps.stats.queries++
        try {
          const again = await deps.links.get(worker, AbortSignal.any([signal, AbortSignal.timeout(Math.min(2000, 2 * hb))]))
          await again.send({ v: PROTOCOL_VERSION, t: 'query', jobId: job.head.jobId, ...(stream === undefined ? {} : { fromSeq: stream.next }) })
        } catch (err) {
          if (job.lease.outcome !== undefined) continue
          deps.stats.lost++
          return lost('ERR_WORKER_LOST', `the link to the worker broke and it could not be reached again: ${errorMessage(err)}`)
        }
        continue
      }
      if (queryAt !== undefined && now - queryAt > 2 * hb) {
        if (linkUp) { deps.stats.stalled++; return lost('ERR_WORKER_STALLED', `the worker sent nothing for ${Math.round(now - l.lastHeard)} ms (heartbeat every ${hb} ms) and did not answer a query`) }
        deps.stats.lost++
        return lost('ERR_WORKER_LOST', 'the link to the worker broke and the worker did not answer a query')
      }
      await waitWake(Math.min(leaseEnd, queryAt !== undefined ? queryAt + 2 * hb + 1 : l.lastHeard + stallMs + 1, stream === undefined ? Infinity : ackedAt + hb))
    }
  } finally {
    stream?.close()
    rec.inFlightCost = Math.max(0, rec.inFlightCost - req.cost)
    delete job.lease
  }
}

/** Check a result's signed provenance: the worker's signature over this job, this client, this input, the output and (a stream) the partials received. */
async function checkProvenance (self: string, job: Pending, req: JobRequest, worker: string, r: Result, stream: PartialIn | undefined): Promise<string | undefined> {
  const p = r.provenance
  job.inputHash ??= hashInput(req.input, req.params)
  if (!Buffer.from(p.inputHash).equals(Buffer.from(job.inputHash))) return 'it names another input'
  let partials: { partials: number, partialsHash: Uint8Array } | undefined
  if (stream !== undefined) {
    if (r.partials !== stream.next || p.partialsHash === undefined) return `it names ${String(r.partials)} partials, ${stream.next} arrived`
    partials = { partials: stream.next, partialsHash: stream.hash.digest() }
  } else if (r.partials !== undefined) {
    return 'it names partials for a job that does not stream'
  }
  return await verifyResult({ jobId: job.head.jobId, client: self, worker, model: r.model, modelCid: p.modelCid, provider: p.provider, dtype: p.dtype, inputHash: p.inputHash, outputHash: hashOutput(r.output), ...partials }, p.signature)
}
