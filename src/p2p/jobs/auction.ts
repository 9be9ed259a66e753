/**
 * The auction of a job, seen from the client (split from client.ts,
 * which leases and answers): the workers that serve the job's model, rounds
 * of direct and gossip offers, and the choice among bids. A streaming job
 * is offered only over job protocol 1.1.0 links: a worker whose link
 * speaks 1.0.0 counts as having answered, and is not offered it.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { errorMessage, NoWorkerError } from '../../errors.ts'
import type { Serving } from '../swarm/adverts.ts'
import { BoundedMap } from '../wire/bounded.ts'
import { encodeMessage } from '../wire/codec.ts'
import { bidMs, bidWindowEnd, claimedMs, expectedMs, rankBids, recentFailures, typicalThroughput, weight, weightedPick } from './fit.ts'
import type { WorkerRecord } from './fit.ts'
import type { JobClientInit, JobRequest, Pending } from './types.ts'
import type { Bid, LinkFrame, Offer } from '../wire/messages.ts'
import { MAX_GOSSIP_BYTES, PROTOCOL_VERSION, jobsTopic } from '../wire/protocol.ts'

export interface AuctionDeps {
  init: JobClientInit
  records: BoundedMap<string, WorkerRecord>
  /** This client's record of a worker, made if need be. */
  record: (worker: string) => WorkerRecord
  stats: { rounds: number, directOffers: number, gossipOffers: number, oldLinks: number, fastPath: number, fastRefused: number }
  /** Send a frame the protocol can do without (declines): never throws. */
  send: (peer: string, f: LinkFrame) => Promise<void>
}

export class Auctioneer {
  private readonly deps: AuctionDeps

  constructor (deps: AuctionDeps) {
    this.deps = deps
  }

  candidates (req: JobRequest, excluded: ReadonlySet<string>): Serving[] {
    const self = this.deps.init.libp2p.peerId.toString()
    const known = this.deps.init.adverts.serving(req.skillset, req.model).filter((s) => !excluded.has(s.peerId) && s.peerId !== self)
    // A worker this client could not reach lately is passed over while others serve (an advert outlives a crash).
    const reachable = known.filter((s) => !this.unreachable.has(s.peerId))
    if (reachable.length > 0) return reachable
    if (known.length > 0) return known
    // Nothing advertised yet: the connected peers subscribed to the skillset's topic may serve it (each says busy if not),
    // unless their adverts or hints say they do not.
    return this.deps.init.libp2p.services.pubsub.getSubscribers(jobsTopic(req.skillset))
      .map((p) => p.toString())
      .filter((p) => !excluded.has(p) && p !== self && this.deps.init.adverts.mayServe(p, req.skillset, req.model))
      .map((peerId) => ({ peerId, model: { id: req.model ?? '', skillset: req.skillset, provider: '', dtype: '', device: '', loaded: true }, addrs: [], source: 'hint' as const }))
  }

  /** Workers this client could not open a link to in the last 30 s. */
  private readonly unreachable = new BoundedMap<string, true>(4096, 30_000)

  /** Workers that refused a fast-path assign in the last second: they get offers, not assigns. */
  private readonly noFast = new BoundedMap<string, true>(4096, 1000)

  /** Up to `n` candidates at random, weighted by fit: 1 / expected completion time, less for recent failures. */
  private pick (cands: Serving[], req: JobRequest, n: number, now: number): Serving[] {
    const records = cands.map((c) => this.deps.records.get(c.peerId))
    const typical = typicalThroughput(cands.map((c) => c.model))
    return weightedPick(cands.map((c, i) => ({ item: c, weight: weight(expectedMs(c.model, req.cost, records[i], typical), recentFailures(records[i], now)) })), n)
  }

  /**
   * The one-round-trip path: a worker this client holds a link to, whose advert (or directory entry, until
   * its advert comes) shows the model loaded, with room for this client's jobs and no recent failure here,
   * picked as the auction picks; its advert stands in for a bid. Undefined when there is none (or the job
   * streams): the job goes to auction().
   */
  direct (job: Pending, req: JobRequest, excluded: ReadonlySet<string>): Bid & { worker: string } | undefined {
    const init = this.deps.init
    if (job.streaming || init.fastPath === false) return undefined
    const now = performance.now()
    const max = init.fastPathMaxInFlight ?? 1024
    const maxWaitMs = init.fastPathMaxWaitMs ?? 100
    const all = init.adverts.serving(req.skillset, req.model).filter((c) => c.model.provider !== '' && !excluded.has(c.peerId))
    const typical = typicalThroughput(all.map((c) => c.model))
    // The work queued ahead of the job at each worker (its advert's queue and this client's jobs in flight there), at
    // its advertised throughput: the pace this client measured includes the bus and its own queueing.
    const waits = new Map(all.map((c) => [c.peerId, claimedMs(c.model, this.deps.records.get(c.peerId)?.inFlightCost ?? 0, typical)]))
    // A long-lived client holds links to a few workers: without this bound it kept sending them its jobs while their
    // queues grew and other workers sat idle (64 nodes, 8 clients that stay, half load: 1,135 of 1,500 jobs failed on
    // lease expiry and retries). A linked worker more than maxWaitMs busier than the freest known one goes to auction;
    // one alone (or with every other as busy) keeps the fast path, as the auction would pick it anyway.
    const freest = Math.min(...waits.values())
    const cands = all.filter((c) => {
      if (this.noFast.has(c.peerId) || !init.links.has(c.peerId)) return false
      const rec = this.deps.records.get(c.peerId)
      if ((rec?.inFlightCost ?? 0) + req.cost > max || recentFailures(rec, now) > 0) return false
      return waits.get(c.peerId)! <= freest + maxWaitMs
    })
    const pick = this.pick(cands, req, 1, now)[0]
    if (pick === undefined) return undefined
    this.deps.stats.fastPath++
    this.deps.record(pick.peerId).inFlightCost += req.cost
    const m = pick.model
    return { v: PROTOCOL_VERSION, t: 'bid', jobId: job.head.jobId, model: m.id, provider: m.provider, dtype: m.dtype, device: m.device, queuedCost: m.queuedCost ?? 0, ...(m.throughput === undefined ? {} : { throughput: m.throughput }), worker: pick.peerId }
  }

  /** A fast-path assign was refused: that worker gets offers only, for a second. */
  refusedFast (worker: string): void {
    this.deps.stats.fastRefused++
    this.noFast.set(worker, true)
  }

  /** Ask the connected peers for their directories (each at most every 2 s after a failure); true while one is in flight. */
  private askConnected (): boolean {
    const { libp2p, adverts } = this.deps.init
    for (const peer of libp2p.getPeers().slice(0, 8)) void adverts.learnFrom(peer)
    return adverts.fetching
  }

  noWorker (req: JobRequest, excluded: ReadonlySet<string>): NoWorkerError {
    const peers = this.deps.init.libp2p.getPeers().length
    if (peers === 0) return new NoWorkerError('no peer found: start a worker node (`npm start`), or pass --bootstrap with the multiaddr it printed (and --swarm-key with the swarm\'s key if it is private)')
    const what = req.model ?? `\`${req.skillset}\` jobs`
    const served = this.deps.init.adverts.served()
    const list = served.length === 0 ? 'no worker model at all' : served.map((s) => `${s.id} (${s.skillset})`).join(', ')
    return new NoWorkerError(`no worker serves ${what}${excluded.size > 0 ? ` apart from the ${excluded.size} that failed it` : ''}; the swarm serves ${list}: pick one of those, or start a worker that serves it`)
  }

  /** Rounds of offers until a bid is chosen; undefined when the deadline or the caller ends it. */
  async auction (job: Pending, req: JobRequest, excluded: ReadonlySet<string>, deadline: number, signal: AbortSignal, waitWake: (until: number) => Promise<void>, countRound: () => void): Promise<Bid & { worker: string } | undefined> {
    const { pubsub } = this.deps.init.libp2p.services
    const topic = jobsTopic(req.skillset)
    const fanout = this.deps.init.fanout ?? 3
    const startedAt = performance.now()
    const discoverUntil = Math.min(deadline, startedAt + (this.deps.init.discoveryMs ?? 5000))
    job.bids.clear()
    job.answered.clear()
    let offered = false
    for (let round = 0; !signal.aborted && performance.now() < deadline; round++) {
      let cands = this.candidates(req, excluded)
      const topicPeers = pubsub.getSubscribers(topic).map((p) => p.toString()).filter((p) => !excluded.has(p))
      const subscribers = topicPeers.length
      // Subscribers whose adverts list no such model do not count: a model nobody serves fails at once.
      if (cands.length === 0 && !topicPeers.some((p) => this.deps.init.adverts.mayServe(p, req.skillset, req.model))) {
        // Nothing known serves it: a directory answer or adverts already said so, or nobody answered yet. After a
        // worker failed the job (a retry; a refusal is final), the directory read at join time is old news: others
        // may be joining, so wait for discovery (bounded by discoveryMs) before saying no other worker serves it.
        const retrying = [...excluded].some((w) => !job.forbidden.has(w))
        const adverts = this.deps.init.adverts
        const settled = !retrying && adverts.stats.directoriesFetched > 0
        if (settled) throw this.noWorker(req, excluded)
        // Joined but not told yet (the peer's directory is on its way, or it could not answer in time on a loaded
        // host: asked again): no answer is not "nobody serves it", so the wait goes on to the job's deadline.
        const joining = adverts.stats.directoriesFetched === 0 && this.askConnected()
        if (!joining && performance.now() >= discoverUntil - 1) throw this.noWorker(req, excluded)
        await waitWake(Math.min(discoverUntil, performance.now() + 50))
        round--
        continue
      }
      countRound()
      offered = true
      this.deps.stats.rounds++
      job.answered.clear()
      const now = performance.now()
      const picks = this.pick(cands, req, fanout, now)
      const offer: Offer = { v: PROTOCOL_VERSION, t: 'offer', ...job.head, ttlMs: Math.max(1, Math.round(deadline - now)), round }
      const direct = new Set(picks.map((p) => p.peerId))
      // The round's clock starts once its offers are out: dials to new workers take time, more on a busy host.
      let sentAt: number | undefined
      void Promise.all(picks.map(async (p) => { await this.offerDirect(p, offer, signal, job) })).then(() => { sentAt = performance.now(); job.wake() })
      this.deps.stats.directOffers += picks.length
      // Gossip reaches workers this client does not know of: from the second round on, or when nothing is advertised yet.
      if ((round > 0 || cands.every((c) => c.source === 'hint' && c.model.provider === '')) && subscribers > 0) {
        this.deps.stats.gossipOffers++
        pubsub.publish(topic, encodeMessage(offer, MAX_GOSSIP_BYTES)).catch((err: unknown) => {
          this.deps.init.log.debug('could not publish an offer', { jobId: job.head.jobId, error: errorMessage(err) })
        })
      }
      // Wait for bids: the round's end, or every direct candidate answered, or a window after the first bid.
      const roundMs = Math.min(this.deps.init.maxRoundMs ?? 2000, (this.deps.init.roundMs ?? 300) * 2 ** round)
      let windowEnd = Infinity
      let firstBidAt: number | undefined
      for (;;) {
        const roundEnd = Math.min(deadline, (sentAt ?? performance.now()) + roundMs)
        const allAnswered = [...direct].every((d) => job.answered.has(d))
        if (job.bids.size > 0) {
          const ranked = this.rank(job, req, excluded)
          if (ranked.length === 0) {
            // Every bid was unusable (another model, a worker given up on, a claim its advert contradicts): wait on for others.
            this.settle(job, req, undefined)
            firstBidAt = undefined
            windowEnd = Infinity
          } else {
            firstBidAt ??= performance.now()
            windowEnd = bidWindowEnd({ firstBidAt, tookMs: firstBidAt - now, bestMs: ranked[0]!.ms, minMs: this.deps.init.bidWindowMs ?? 20, maxMs: this.deps.init.maxBidWindowMs ?? 250 })
            if (allAnswered || performance.now() >= windowEnd) return this.settle(job, req, ranked[0])
          }
        }
        if (performance.now() >= roundEnd || signal.aborted) break
        // Every direct candidate refused this client: on to the next round (other workers, or ERR_FORBIDDEN) now.
        if (job.bids.size === 0 && allAnswered && direct.size > 0 && [...direct].every((d) => job.forbidden.has(d))) break
        await waitWake(Math.min(roundEnd, windowEnd))
      }
      if (job.bids.size > 0) {
        const chosen = this.settle(job, req, this.rank(job, req, excluded)[0])
        if (chosen !== undefined) return chosen
      }
    }
    // The deadline came while looking for a worker (a timeout shorter than discovery): nothing to offer it to is ERR_NO_WORKER, not a timeout.
    if (!offered && req.signal?.aborted !== true) throw this.noWorker(req, excluded)
    return undefined
  }

  /** Offer the job on a link to a candidate, dialling it if need be (bounded); a failure only loses this candidate. */
  private async offerDirect (c: Serving, offer: Offer, signal: AbortSignal, job: Pending): Promise<void> {
    try {
      if (c.addrs.length > 0 && this.deps.init.libp2p.getConnections(peerIdFromString(c.peerId)).length === 0) {
        await this.deps.init.libp2p.peerStore.merge(peerIdFromString(c.peerId), { multiaddrs: c.addrs })
      }
      let link
      try {
        link = await this.deps.init.links.get(c.peerId, AbortSignal.any([signal, AbortSignal.timeout(3000)]))
      } catch (err) {
        if (!signal.aborted) this.unreachable.set(c.peerId, true)
        throw err
      }
      this.unreachable.delete(c.peerId)
      if (job.streaming && !link.streaming) {
        // A peer that speaks only job protocol 1.0.0 is never offered a stream: it counts as an answer.
        this.deps.stats.oldLinks++
        job.answered.add(c.peerId)
        job.wake()
        return
      }
      await link.send(offer)
    } catch (err) {
      this.deps.init.log.debug('could not offer a job directly', { worker: c.peerId, jobId: offer.jobId, error: errorMessage(err) })
    }
  }

  /** The usable bids, best first, each with its expected ms. Bids from workers that fail the advert check rank last. */
  private rank (job: Pending, req: JobRequest, excluded: ReadonlySet<string>): Array<{ bid: Bid & { worker: string }, ms: number }> {
    const serving = new Map(this.deps.init.adverts.serving(req.skillset, req.model).map((s) => [s.peerId, s]))
    // What is typical comes from the bids as well: an advert's figure may be older than a worker's first batch.
    const typical = typicalThroughput([...[...serving.values()].map((s) => s.model), ...job.bids.values()])
    const now = performance.now()
    const entries = [...job.bids.entries()].filter(([w, b]) => {
      if (excluded.has(w)) return false
      if (req.model !== undefined && b.model !== req.model) return false
      const ad = serving.get(w)
      // A bid that contradicts the worker's own advert (another provider or dtype) is not believed.
      return ad === undefined || ad.source === 'hint' || (ad.model.id === b.model && ad.model.provider === b.provider && ad.model.dtype === b.dtype)
    })
    return rankBids(entries.map(([w, b]) => {
      const ad = serving.get(w)
      const rec = this.deps.records.get(w)
      const ms = bidMs(b, req.cost, ad?.model, rec, typical)
      return { bid: { bid: { ...b, worker: w }, ms }, ms, failures: recentFailures(rec, now), advertised: ad !== undefined && ad.model.provider !== '' }
    }))
  }

  /**
   * The winner (if any), its cost counted in flight there at once; every
   * other bidder is declined. Counting it here, not when the lease is sent,
   * matters for a burst: the auctions that one event wakes (a dial that
   * opened, a round's end) decide one after another in the same tick, and
   * each must see what the ones before it took. leaseJob gives it back.
   */
  private settle (job: Pending, req: JobRequest, best: { bid: Bid & { worker: string }, ms: number } | undefined): Bid & { worker: string } | undefined {
    for (const [w] of job.bids) if (w !== best?.bid.worker) void this.deps.send(w, { v: PROTOCOL_VERSION, t: 'decline', jobId: job.head.jobId })
    const bids = job.bids.size
    job.bids.clear()
    if (best === undefined) return undefined
    this.deps.record(best.bid.worker).inFlightCost += req.cost
    this.deps.init.log.debug('leasing a job', { jobId: job.head.jobId, traceId: job.head.traceId, bids, worker: best.bid.worker, queuedCost: best.bid.queuedCost, expectedMs: Math.round(best.ms) })
    return best.bid
  }

}
