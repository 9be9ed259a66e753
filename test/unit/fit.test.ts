/**
 * Choosing workers by fit (src/p2p/jobs/fit.ts), with a seeded random so every
 * count below is reproducible: the weighted pick spreads load in proportion
 * to speed, a bid cannot claim more than twice its advertised throughput,
 * and recent failures push a worker back.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { bidMs, bidWindowEnd, DEFAULT_THROUGHPUT, expectedMs, FAILURE_WINDOW_MS, rankBids, recentFailures, typicalThroughput, weight, weightedPick } from '../../src/p2p/jobs/fit.ts'
import type { WorkerRecord } from '../../src/p2p/jobs/fit.ts'
import { mulberry32 } from '../helpers/p2p-nodes.ts'

function tally<T extends string> (n: number, pick: () => T[]): Map<T, number> {
  const counts = new Map<T, number>()
  for (let i = 0; i < n; i++) for (const x of pick()) counts.set(x, (counts.get(x) ?? 0) + 1)
  return counts
}

test('weightedPick picks in proportion to weight', () => {
  const random = mulberry32(1)
  const items = [{ item: 'a', weight: 6 }, { item: 'b', weight: 3 }, { item: 'c', weight: 1 }] as const
  const n = 20_000
  const counts = tally(n, () => weightedPick(items, 1, random))
  assert.equal([...counts.values()].reduce((s, x) => s + x, 0), n)
  for (const { item, weight } of items) {
    const share = (counts.get(item) ?? 0) / n
    assert.ok(Math.abs(share - weight / 10) < 0.02, `${item}: ${share} vs ${weight / 10}`)
  }
})

test('weightedPick returns k distinct items, skips unusable weights, and stops when the pool is empty', () => {
  const random = mulberry32(2)
  for (let i = 0; i < 200; i++) {
    const got = weightedPick([{ item: 1, weight: 1 }, { item: 2, weight: 5 }, { item: 3, weight: 0.1 }, { item: 4, weight: 2 }], 3, random)
    assert.equal(got.length, 3)
    assert.equal(new Set(got).size, 3)
  }
  const odd = weightedPick([{ item: 'zero', weight: 0 }, { item: 'nan', weight: Number.NaN }, { item: 'inf', weight: Infinity }, { item: 'neg', weight: -1 }, { item: 'ok', weight: 1 }], 5, random)
  assert.deepEqual(odd, ['ok'])
  assert.deepEqual(weightedPick([], 3, random), [])
  // the second pick is among the rest: with one heavy item, it comes first nearly always
  const firsts = tally(2000, () => weightedPick([{ item: 'heavy', weight: 1000 }, { item: 'light', weight: 1 }], 2, random).slice(0, 1))
  assert.ok((firsts.get('heavy') ?? 0) > 1980)
})

test('a worker 10x slower is offered about 10x fewer jobs', () => {
  const random = mulberry32(42)
  const cost = 4
  const fast = { throughput: 100, queuedCost: 0 }
  const slow = { throughput: 10, queuedCost: 0 }
  const typical = typicalThroughput([fast, slow])
  const cands = [
    { item: 'fast', weight: weight(expectedMs(fast, cost, undefined, typical), 0) },
    { item: 'slow', weight: weight(expectedMs(slow, cost, undefined, typical), 0) }
  ]
  const counts = tally(10_000, () => weightedPick(cands, 1, random))
  const ratio = (counts.get('fast') ?? 0) / Math.max(1, counts.get('slow') ?? 0)
  assert.ok(ratio >= 6 && ratio <= 16, `fast/slow = ${ratio.toFixed(2)}`)
  assert.ok((counts.get('slow') ?? 0) > 0, 'the slow worker still gets some')
})

test('expectedMs counts the queue, this client\'s cost in flight and what it measured', () => {
  const m = { throughput: 10, queuedCost: 20 }
  assert.equal(expectedMs(m, 10, undefined, 50), 3000)
  assert.equal(expectedMs(m, 10, { inFlightCost: 30, failures: [] }, 50), 6000)
  assert.equal(expectedMs({ queuedCost: 0 }, 10, undefined, 50), 200, 'no throughput advertised: the fallback')
  assert.equal(expectedMs(m, 10, { inFlightCost: 0, failures: [], msPerCost: 500 }, 50), 15_000, 'measured slower than claimed: measured')
  assert.equal(expectedMs(m, 10, { inFlightCost: 0, failures: [], msPerCost: 1 }, 50), 3000, 'measured faster: the claim stands')
})

test('bidMs caps a bid\'s claimed throughput at twice the advertised', () => {
  const advert = { throughput: 10 }
  const cost = 10
  assert.equal(bidMs({ queuedCost: 0 }, cost, advert, undefined, 50), 1000, 'no claim: the advert')
  assert.equal(bidMs({ queuedCost: 0, throughput: 15 }, cost, advert, undefined, 50), cost / 15 * 1000, 'a claim within twice the advert stands')
  assert.equal(bidMs({ queuedCost: 0, throughput: 1000 }, cost, advert, undefined, 50), 500, 'a claim of 100x is cut to 2x')
  assert.equal(bidMs({ queuedCost: 0, throughput: 1000 }, cost, undefined, undefined, 50), 100, 'no advert: twice the typical at most')
  assert.equal(bidMs({ queuedCost: 0, throughput: 1000, etaMs: 0 }, cost, advert, undefined, 50), 500, 'an eta of 0 does not beat the cap')
  assert.equal(bidMs({ queuedCost: 0, etaMs: 4000 }, cost, advert, undefined, 50), 4000, 'a slower eta is believed')
  assert.equal(bidMs({ queuedCost: 40 }, cost, advert, { inFlightCost: 50, failures: [] }, 50), 10_000, 'queue and cost in flight count')
  assert.equal(bidMs({ queuedCost: 0, throughput: 1000 }, cost, advert, { inFlightCost: 0, failures: [], msPerCost: 300 }, 50), 3000, 'measured latency replaces the claim')
})

test('rankBids: lowest expected time first, recent failures pushed back, unadvertised workers after advertised ones', () => {
  for (let seed = 0; seed < 50; seed++) {
    const random = mulberry32(seed)
    assert.deepEqual(rankBids([
      { bid: 'slow', ms: 3000, failures: 0, advertised: true },
      { bid: 'fast-but-failing', ms: 1000, failures: 1, advertised: true },
      { bid: 'fast', ms: 1000, failures: 0, advertised: true },
      { bid: 'fast-unadvertised', ms: 1000, failures: 0, advertised: false }
    ], random), ['fast', 'fast-unadvertised', 'slow', 'fast-but-failing'])
  }
  // equal bids: the order is random, so one client does not pile onto one worker
  const firsts = new Set<string>()
  const random = mulberry32(7)
  for (let i = 0; i < 100; i++) firsts.add(rankBids([{ bid: 'x', ms: 100, failures: 0, advertised: true }, { bid: 'y', ms: 100, failures: 0, advertised: true }], random)[0]!)
  assert.deepEqual([...firsts].sort(), ['x', 'y'])
})

test('bidWindowEnd: as long as the first bid took, bounded; longer while the best bid would take long anyway', () => {
  const w = (o: Partial<Parameters<typeof bidWindowEnd>[0]>): number => bidWindowEnd({ firstBidAt: 1000, tookMs: 3, bestMs: 40, minMs: 20, maxMs: 250, ...o })
  assert.equal(w({}), 1020, 'a quick bid for a short job: the minimum')
  assert.equal(w({ tookMs: 90 }), 1090, 'the others are about as far as the first was')
  assert.equal(w({ tookMs: 4000 }), 1250, 'never longer than the maximum for a short job')
  assert.equal(w({ bestMs: 1200 }), 1600, 'a best bid 1.2 s away (a queue, or this client\'s own jobs there): wait up to half of it')
  // a burst from one client: each job leased to the same worker makes the next one's best bid longer, and its window with it
  let inFlight = 0
  const windows: number[] = []
  for (let k = 0; k < 5; k++) {
    windows.push(w({ bestMs: bidMs({ queuedCost: 0 }, 2, undefined, { inFlightCost: inFlight, failures: [] }, 50) }) - 1000)
    inFlight += 2
  }
  assert.deepEqual(windows, [20, 40, 60, 80, 100])
})

test('recentFailures counts only the last minute; weight divides down by failures', () => {
  const now = 1_000_000
  const r: WorkerRecord = { inFlightCost: 0, failures: [now - FAILURE_WINDOW_MS - 1, now - 30_000, now - 10] }
  assert.equal(recentFailures(r, now), 2)
  assert.equal(recentFailures(undefined, now), 0)
  assert.equal(weight(100, 0) / weight(100, 1), 5)
  assert.equal(weight(0, 0), 1, 'a zero estimate is not infinite weight')
})

test('typicalThroughput is the median advertised, or the default', () => {
  assert.equal(typicalThroughput([]), DEFAULT_THROUGHPUT)
  assert.equal(typicalThroughput([{}, { throughput: 0 }]), DEFAULT_THROUGHPUT)
  assert.equal(typicalThroughput([{ throughput: 5 }, { throughput: 500 }, { throughput: 20 }]), 20)
})
