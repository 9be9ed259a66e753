/**
 * Choosing workers by fit. Pure functions over what a client knows:
 * adverts (model loaded, provider, measured throughput, queued cost), the
 * bids themselves, and its own record of each worker (cost it has in
 * flight there, recent failures, how long its jobs really took there).
 *
 * - Whom to offer a job to directly: a weighted random pick, weight the
 *   inverse of the expected completion time, so load spreads over the
 *   swarm instead of every client piling onto the same "best" worker, and
 *   a worker 10x slower gets about 10x fewer offers.
 * - How long to wait for more bids after the first: as long as the first
 *   took (bounded), longer while the best bid so far would take long anyway
 *   (see bidWindowEnd).
 * - Which bid wins: the lowest expected completion time, where a bid's
 *   claim is checked against the worker's advert (a bid cannot be faster
 *   than the throughput it advertises) and against what this client saw
 *   (recent failures weigh heavily; measured latency replaces claims).
 */
import type { AdvertModel, Bid } from '../wire/messages.ts'

/** What a client remembers of one worker. */
export interface WorkerRecord {
  /** Cost units this client has leased there and not had answered. */
  inFlightCost: number
  /** When jobs there failed or were lost (performance.now()), most recent last. */
  failures: number[]
  /** Smoothed ms per cost unit this client measured there (lease to answer), where known. */
  msPerCost?: number
}

export const FAILURE_WINDOW_MS = 60_000
/** Assumed throughput (cost units a second) of a worker that has not measured one. */
export const DEFAULT_THROUGHPUT = 50

export function recentFailures (r: WorkerRecord | undefined, now: number): number {
  if (r === undefined) return 0
  let n = 0
  for (const t of r.failures) if (now - t < FAILURE_WINDOW_MS) n++
  return n
}

/** Ms until the worker's advertised queue and `moreCost` after it are done, at its advertised throughput (or the fallback). */
export function claimedMs (model: Pick<AdvertModel, 'throughput' | 'queuedCost'>, moreCost: number, fallbackThroughput: number): number {
  const tput = model.throughput !== undefined && model.throughput > 0 ? model.throughput : fallbackThroughput
  return ((model.queuedCost ?? 0) + moreCost) / tput * 1000
}

/** Expected ms until a job of `cost` would be done there, from the advert and this client's record. */
export function expectedMs (model: Pick<AdvertModel, 'throughput' | 'queuedCost'>, cost: number, record: WorkerRecord | undefined, fallbackThroughput: number): number {
  const claimed = claimedMs(model, (record?.inFlightCost ?? 0) + cost, fallbackThroughput)
  if (record?.msPerCost === undefined) return claimed
  return Math.max(claimed, record.msPerCost * ((model.queuedCost ?? 0) + record.inFlightCost + cost))
}

/** Median advertised throughput, the stand-in for workers that have not measured theirs. */
export function typicalThroughput (models: ReadonlyArray<Pick<AdvertModel, 'throughput'>>): number {
  const t = models.map((m) => m.throughput).filter((x): x is number => x !== undefined && x > 0).sort((a, b) => a - b)
  return t.length === 0 ? DEFAULT_THROUGHPUT : t[Math.floor(t.length / 2)]!
}

/** Weight of a candidate in the random pick: inverse expected time, divided down by recent failures. */
export function weight (ms: number, failures: number): number {
  return 1 / Math.max(1, ms) / (1 + 4 * failures)
}

/** Pick up to `k` distinct items, each with probability proportional to its weight (without replacement). */
export function weightedPick<T> (items: ReadonlyArray<{ item: T, weight: number }>, k: number, random: () => number = Math.random): T[] {
  const pool = items.filter((i) => i.weight > 0 && Number.isFinite(i.weight)).map((i) => ({ ...i }))
  const out: T[] = []
  while (out.length < k && pool.length > 0) {
    const total = pool.reduce((s, i) => s + i.weight, 0)
    let r = random() * total
    let idx = pool.length - 1
    for (let i = 0; i < pool.length; i++) {
      r -= pool[i]!.weight
      if (r <= 0) { idx = i; break }
    }
    out.push(pool[idx]!.item)
    pool.splice(idx, 1)
  }
  return out
}

/**
 * Expected ms for a bid. A bid's own estimate is believed only as far as the
 * worker's advert allows: it cannot beat the throughput the worker
 * advertised, nor what this client measured there; a worker with no advert
 * is assumed typical.
 */
export function bidMs (bid: Pick<Bid, 'queuedCost' | 'throughput' | 'etaMs'>, cost: number, advert: Pick<AdvertModel, 'throughput'> | undefined, record: WorkerRecord | undefined, fallbackThroughput: number): number {
  const advertised = advert?.throughput !== undefined && advert.throughput > 0 ? advert.throughput : fallbackThroughput
  // A bid may report a better figure than a stale advert, but never above twice the advertised one.
  const tput = Math.min(bid.throughput !== undefined && bid.throughput > 0 ? bid.throughput : advertised, advertised * 2)
  const ahead = bid.queuedCost + (record?.inFlightCost ?? 0) + cost
  let ms = Math.max(ahead / tput * 1000, bid.etaMs ?? 0)
  if (record?.msPerCost !== undefined) ms = Math.max(ms, record.msPerCost * ahead)
  return ms
}

/** Rank bids: lowest expected ms first, recent failures pushed back, ties broken at random. */
export function rankBids<B> (bids: ReadonlyArray<{ bid: B, ms: number, failures: number, advertised: boolean }>, random: () => number = Math.random): B[] {
  return bids
    .map((b) => ({ b, key: b.ms * (1 + 4 * b.failures) * (b.advertised ? 1 : 2) * (1 + 0.1 * random()) }))
    .sort((x, y) => x.key - y.key)
    .map((x) => x.b.bid)
}

/**
 * When to stop waiting for the other direct candidates' bids, on the
 * `performance.now()` clock. After the first bid, wait as long as it took
 * to come (at least `minMs`, at most `maxMs`): the others are about as far
 * away. But while the best bid so far would take long anyway (a queue,
 * much of it this client's own jobs there), waiting costs little against
 * it: wait up to half its expected time. A lone short job still goes at
 * once to whoever answered first; a burst of jobs from a fresh `submit`,
 * which knows one worker at once and must dial the others, fills that
 * worker only until waiting for the others is worth it. The round's end
 * bounds every wait.
 */
export function bidWindowEnd (w: { firstBidAt: number, tookMs: number, bestMs: number, minMs: number, maxMs: number }): number {
  return w.firstBidAt + Math.max(Math.min(w.maxMs, Math.max(w.minMs, w.tookMs)), w.bestMs / 2)
}
