/**
 * Bounded state for anything keyed by job or peer: every such map on the
 * job bus is an LRU with a size cap and an age limit, so a flood of job ids
 * or peer ids costs a bounded amount of memory.
 */

/** An insertion-ordered map with a size cap (oldest evicted first) and a time to live. */
export class BoundedMap<K, V> {
  private readonly map = new Map<K, { v: V, at: number }>()
  readonly max: number
  readonly ttlMs: number
  evicted = 0

  constructor (max: number, ttlMs: number) {
    this.max = max
    this.ttlMs = ttlMs
  }

  get size (): number { return this.map.size }

  get (k: K): V | undefined {
    const e = this.map.get(k)
    if (e === undefined) return undefined
    if (performance.now() - e.at > this.ttlMs) { this.map.delete(k); return undefined }
    return e.v
  }

  has (k: K): boolean { return this.get(k) !== undefined }

  /** Set (and refresh the age of) an entry. */
  set (k: K, v: V): void {
    this.map.delete(k)
    this.map.set(k, { v, at: performance.now() })
    while (this.map.size > this.max) {
      const oldest = this.map.keys().next().value as K
      this.map.delete(oldest)
      this.evicted++
    }
  }

  delete (k: K): boolean { return this.map.delete(k) }

  /** Drop expired entries (call from a timer). */
  prune (): void {
    const cutoff = performance.now() - this.ttlMs
    for (const [k, e] of this.map) {
      if (e.at > cutoff) break // insertion order is age order
      this.map.delete(k)
    }
  }

  * entries (): IterableIterator<[K, V]> {
    for (const [k, e] of this.map) yield [k, e.v]
  }
}

/** A token bucket: `rate` tokens a second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number
  private last = performance.now()
  private readonly rate: number
  private readonly burst: number

  constructor (rate: number, burst: number) {
    this.rate = rate
    this.burst = burst
    this.tokens = burst
  }

  take (n = 1): boolean {
    const now = performance.now()
    this.tokens = Math.min(this.burst, this.tokens + (now - this.last) / 1000 * this.rate)
    this.last = now
    if (this.tokens < n) return false
    this.tokens -= n
    return true
  }

  /** Give back `n` tokens (never past `burst`). */
  give (n = 1): void {
    this.tokens = Math.min(this.burst, this.tokens + n)
  }
}

/** One token bucket per peer, the peers themselves bounded. */
export class PeerBuckets {
  private readonly buckets: BoundedMap<string, TokenBucket>
  private readonly rate: number
  private readonly burst: number

  constructor (rate: number, burst: number, maxPeers = 4096) {
    this.rate = rate
    this.burst = burst
    this.buckets = new BoundedMap(maxPeers, 10 * 60_000)
  }

  take (peer: string, n = 1): boolean {
    let b = this.buckets.get(peer)
    if (b === undefined) { b = new TokenBucket(this.rate, this.burst); this.buckets.set(peer, b) }
    return b.take(n)
  }

  /** Give back tokens a peer spent on something that turned out to be worth it. */
  give (peer: string, n = 1): void {
    this.buckets.get(peer)?.give(n)
  }
}
