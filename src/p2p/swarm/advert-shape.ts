/**
 * What an advert says, split in two for the question "is an advert due?":
 * its shape (what the node serves and where: a change goes out at once)
 * and its load, in bands (a change waits for the interval). Pure.
 */
import type { Advert, AdvertModel } from '../wire/messages.ts'

/** What a node advertises; the rest of an advert (version, seq, TTL, boot, leaving) Adverts adds. */
export type AdvertBody = Omit<Advert, 'v' | 't' | 'seq' | 'ttlMs' | 'leaving' | 'bootId'>

/** Load fields of an advert's models: a change in these alone waits for `intervalMs` (and counts only across a band). */
type LoadFree = Omit<AdvertBody, 'queueDepth'> & { models: Array<Omit<AdvertModel, 'queuedCost' | 'throughput'>> }

/** An advert body with its shape (what it serves, where) and its load (queued cost, depth, throughput), each as a string to compare. */
export interface Prepared { body: AdvertBody, shape: string, load: string }

/**
 * When a load advert is due: a model's expected wait (queued cost over throughput) crossing a band (under 50 ms,
 * then powers of 4: 50-200 ms, 200-800 ms, ...), or its throughput crossing a power of 2. Under load the exact
 * figures change with every job; sent at each change, every busy worker told every node every interval (64 nodes at
 * half load: 7.6 adverts a second taken in per node, ~60 gossip messages per job, O(N) per job). A wait under 50 ms
 * (about 25 one-ms jobs queued) does not change which worker is best by much; clients also count what they put in
 * flight themselves, and bids and fast-path refusals carry the exact queue. The advert itself carries the exact
 * figures of its moment.
 */
function loadBands (m: AdvertModel): [number, number] {
  const t = m.throughput ?? 0
  const q = m.queuedCost ?? 0
  const waitMs = t > 0 ? q / t * 1000 : q > 0 ? Infinity : 0
  const wait = waitMs < 50 ? 0 : waitMs === Infinity ? -1 : 1 + Math.floor(Math.log(waitMs / 50) / Math.log(4))
  return [wait, t <= 0 ? 0 : 1 + Math.floor(Math.log2(t))]
}

/** The body with its shape and load bands, as strings to compare with the last advert's. */
export function prepare (body: AdvertBody): Prepared {
  const shape: LoadFree = { ...body, models: body.models.map(({ queuedCost: _q, throughput: _t, ...m }) => m) }
  delete (shape as Partial<AdvertBody>).queueDepth
  return { body, shape: JSON.stringify(shape), load: JSON.stringify(body.models.map(loadBands)) }
}
