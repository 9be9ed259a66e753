/**
 * Serving limits of `/ipfs-accelerate/blocks/1.0.0`, so that one greedy
 * peer cannot take a node's disk, memory and upload from the others:
 *   - a global cap on requests served at once (each may hold `readAhead`
 *     blocks in memory: 32 × 8 × 1 MiB = 256 MiB at most by default);
 *   - per peer, a cap on requests served at once, and a byte budget (a
 *     token bucket: a burst, refilled at a rate). A request is refused
 *     while the peer is in debt; a stream that runs the bucket dry is
 *     slowed to the refill rate, within its deadline;
 *   - a deadline per request;
 *   - a small cap on the roots of one `has` request.
 * Refusals are typed errors with stable codes (ERR_PEER_BUSY,
 * ERR_RATE_LIMITED, ERR_REQUEST_DEADLINE, ERR_TOO_MANY_ROOTS) sent in the
 * `error` frame; the client turns them back into those classes and asks
 * another peer.
 */
import { PeerBusyError, RateLimitedError, RequestDeadlineError, TooManyRootsError } from '../../errors.ts'

export interface ServeLimitsInit {
  /** Requests served at once, from all peers (default 32). */
  maxActive?: number
  /** Requests served at once to one peer (default 8). */
  maxActivePerPeer?: number
  /** Bytes one peer may take at once before it is slowed down (default 512 MiB). */
  peerBurstBytes?: number
  /** The rate one peer's budget refills at, bytes per second (default 64 MiB/s). */
  peerBytesPerSecond?: number
  /** How long one request may take, start to end (default 120 s). */
  requestDeadlineMs?: number
  /** Roots in one `has` request (default 64; a pull asks about one). */
  maxHasRoots?: number
}

export const SERVE_LIMIT_DEFAULTS: Readonly<Required<ServeLimitsInit>> = Object.freeze({
  maxActive: 32,
  maxActivePerPeer: 8,
  peerBurstBytes: 512 * 1024 * 1024,
  peerBytesPerSecond: 64 * 1024 * 1024,
  requestDeadlineMs: 120_000,
  maxHasRoots: 64
})

/** The codes of the refusals above: a client asks another peer when it gets one. */
export const REFUSAL_CODES: ReadonlySet<string> = new Set(['ERR_PEER_BUSY', 'ERR_RATE_LIMITED', 'ERR_REQUEST_DEADLINE', 'ERR_TOO_MANY_ROOTS'])

const REFUSALS: Readonly<Record<string, new (message?: string) => Error>> = Object.freeze({
  ERR_PEER_BUSY: PeerBusyError,
  ERR_RATE_LIMITED: RateLimitedError,
  ERR_REQUEST_DEADLINE: RequestDeadlineError,
  ERR_TOO_MANY_ROOTS: TooManyRootsError
})

/** The typed error for a refusal a peer sent, or undefined when the code is not one. */
export function refusalError (code: string, message: string, peer: string): Error | undefined {
  const Cls = REFUSALS[code]
  return Cls === undefined ? undefined : new Cls(`peer ${peer}: ${message}`)
}

export function isRefusal (err: unknown): boolean {
  return err instanceof PeerBusyError || err instanceof RateLimitedError || err instanceof RequestDeadlineError || err instanceof TooManyRootsError
}

interface PeerState { active: number, tokens: number, at: number }

export interface Admission {
  /** Take `bytes` from the peer's budget, waiting (within `signal`) when it runs dry. */
  spend (bytes: number, signal: AbortSignal): Promise<void>
  release (): void
}

const MAX_TRACKED_PEERS = 4096

export class ServeLimits {
  readonly init: Readonly<Required<ServeLimitsInit>>
  private active = 0
  private readonly peers = new Map<string, PeerState>()
  private readonly now: () => number

  constructor (init: ServeLimitsInit = {}, now: () => number = () => performance.now()) {
    const merged = { ...SERVE_LIMIT_DEFAULTS, ...Object.fromEntries(Object.entries(init).filter(([, v]) => v !== undefined)) }
    for (const [k, v] of Object.entries(merged)) {
      if (!Number.isFinite(v) || v <= 0) throw new RangeError(`serve limit ${k} must be a positive number, got ${String(v)}`)
    }
    this.init = Object.freeze(merged)
    this.now = now
  }

  /** Admit one request from `peer`, or throw the refusal to send back. */
  admit (peer: string): Admission {
    const s = this.state(peer)
    this.refill(s)
    if (this.active >= this.init.maxActive) throw new PeerBusyError(`this node serves ${this.init.maxActive} block requests at once and is at that limit: ask another peer, or retry later`)
    if (s.active >= this.init.maxActivePerPeer) throw new PeerBusyError(`this node serves ${this.init.maxActivePerPeer} block requests at once to one peer, and yours are running: wait for them, or ask another peer`)
    if (s.tokens <= 0) {
      const waitS = Math.ceil((1 - s.tokens) / this.init.peerBytesPerSecond)
      throw new RateLimitedError(`you have taken your share of this node's upload for now (${this.init.peerBytesPerSecond} bytes/s after a burst of ${this.init.peerBurstBytes}): ask another peer, or retry in ${waitS} s`)
    }
    this.active++
    s.active++
    let released = false
    return {
      spend: async (bytes, signal) => {
        this.refill(s)
        s.tokens -= bytes
        if (s.tokens >= 0) return
        const ms = (-s.tokens / this.init.peerBytesPerSecond) * 1000
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve() }, ms)
          const onAbort = (): void => { clearTimeout(timer); reject(signal.reason) }
          signal.addEventListener('abort', onAbort, { once: true })
        })
      },
      release: () => {
        if (released) return
        released = true
        this.active--
        s.active--
      }
    }
  }

  /** Requests being served now (for tests and status). */
  get activeRequests (): number { return this.active }

  /** The `has` cap: throws TooManyRootsError past it. */
  checkHasRoots (n: number): void {
    if (n > this.init.maxHasRoots) throw new TooManyRootsError(`a has request may name ${this.init.maxHasRoots} roots; it named ${n}: split it into smaller batches`)
  }

  private state (peer: string): PeerState {
    let s = this.peers.get(peer)
    if (s === undefined) {
      if (this.peers.size >= MAX_TRACKED_PEERS) this.prune()
      s = { active: 0, tokens: this.init.peerBurstBytes, at: this.now() }
      this.peers.set(peer, s)
    }
    return s
  }

  private refill (s: PeerState): void {
    const t = this.now()
    s.tokens = Math.min(this.init.peerBurstBytes, s.tokens + ((t - s.at) / 1000) * this.init.peerBytesPerSecond)
    s.at = t
  }

  /** Forget idle peers whose budget is whole again (they would start from a full bucket anyway). */
  private prune (): void {
    for (const [id, s] of this.peers) {
      this.refill(s)
      if (s.active === 0 && s.tokens >= this.init.peerBurstBytes) this.peers.delete(id)
    }
  }
}
