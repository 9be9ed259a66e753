/**
 * Job links: one `/ipfs-accelerate/job/1.x` stream per pair of peers,
 * opened by whichever side first needs it (a client to offer a job
 * directly, a worker to bid on a gossiped offer) and kept open for every
 * later job between them, in both directions: a node can be a worker and
 * a client at once. Opening a stream per job cost more than the rest of a
 * small job's trip (~3 ms here).
 *
 * Frames are dispatched by type: frames for a worker (offer, assign,
 * decline, cancel, query, ack) to the worker's handler, the others to the
 * client's. A frame that fails to decode, or is over its job's limit,
 * fails that job only (see frames.ts).
 *
 * Versions: a link speaks 1.1.0 (streaming: partial and ack frames) when
 * both peers do, else 1.0.0; `streaming` says which. The opener proposes
 * the newest it speaks (one round trip) unless the peer store already
 * knows which the peer handles (identify), then that one alone, lazily.
 * A frame 1.0.0 does not know is never sent on a 1.0.0 link, and refused
 * from one.
 *
 * Fairness: frames queued together (in one turn of the event loop, or
 * while the stream waits to drain) go out by a round robin over jobs, one
 * frame per job in turn, so one job's partials (or a backlog of them) do
 * not hold up other jobs' frames on the same link; each streaming job has
 * at most its window of partials out anyway. Bytes already handed to the
 * stream are not pre-empted: a large frame (an embed result of MiBs), or
 * what yamux's send window already holds, still delays the frames behind
 * it by its own transfer time.
 *
 * Coalescing: the frames waiting when the pump runs (queued in the same turn
 * of the event loop, or while the stream drained) go out together as one
 * write, up to COALESCE_BYTES, so 256 jobs in flight cost fewer encryptions
 * and syscalls per job than one. No timer holds a frame back: the pump
 * starts on the next microtask after the first frame is queued.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { errorMessage, ProtocolError } from '../../errors.ts'
import type { Logger } from '../../logger.ts'
import { decodeMessage } from '../wire/codec.ts'
import { encodeFrame, FrameReader } from './frames.ts'
import { frameAllowed, linkFrameSchema, TO_WORKER } from '../wire/messages.ts'
import type { LinkFrame } from '../wire/messages.ts'
import { JOB_PROTOCOL_STREAM, JOB_PROTOCOLS, MAX_CONTROL_FRAME_BYTES, MAX_FRAME_BYTES } from '../wire/protocol.ts'
import { Uint8ArrayList } from 'uint8arraylist'

interface Outgoing { bytes: Uint8ArrayList, resolve: () => void, reject: (err: Error) => void }

/** Frames waiting together are written as one, up to this many bytes (yamux's largest frame). */
const COALESCE_BYTES = 64 * 1024

/** One side's view of frames: limits by job, handling, and bad frames. */
export interface LinkHandler {
  /** Body limit for the next frame about this job that this side receives. */
  limitFor(link: JobLink, jobId: string): number
  frame(link: JobLink, frame: LinkFrame): void
  /** A frame about this job could not be used (oversize, bad CBOR, bad schema). */
  badFrame(link: JobLink, jobId: string, err: Error): void
}

export class JobLink {
  readonly peer: string
  readonly stream: Stream
  private readonly reader: FrameReader
  private closedWith: Error | undefined
  /** Frames waiting to go, per job; the Map's order is the round robin's. */
  private readonly outgoing = new Map<string, Outgoing[]>()
  private pumping = false
  private readonly onEnd: (link: JobLink, err: Error) => void
  /** This link speaks job protocol 1.1.0 (streaming frames). */
  readonly streaming: boolean
  lastFrameAt = performance.now()
  /** Frames sent, writes they took (frames waiting together share one), the longest queue of one job. */
  readonly stats = { sent: 0, writes: 0, queuedMax: 0 }

  constructor (stream: Stream, peer: string, handlers: { worker?: LinkHandler, client?: LinkHandler }, onEnd: (link: JobLink, err: Error) => void) {
    this.stream = stream
    this.peer = peer
    this.onEnd = onEnd
    this.streaming = stream.protocol === JOB_PROTOCOL_STREAM
    // Until the body is read we cannot know its type: the larger of the two sides' limits applies.
    const limit = (jobId: string): number => Math.max(
      handlers.worker?.limitFor(this, jobId) ?? MAX_CONTROL_FRAME_BYTES,
      handlers.client?.limitFor(this, jobId) ?? MAX_CONTROL_FRAME_BYTES
    )
    const either = (jobId: string, err: Error): void => {
      // Neither side can tell whose job it is without a body: both hear of it; each ignores jobs it does not have.
      handlers.worker?.badFrame(this, jobId, err)
      handlers.client?.badFrame(this, jobId, err)
    }
    this.reader = new FrameReader({
      limitFor: limit,
      oversize: (jobId, bytes, max) => { either(jobId, new ProtocolError(`a frame of ${bytes} bytes about job ${jobId} is over its ${max}-byte limit`)) },
      frame: (jobId, body) => {
        this.lastFrameAt = performance.now()
        let msg: LinkFrame
        try {
          msg = decodeMessage(body, linkFrameSchema, MAX_FRAME_BYTES)
          if (msg.jobId !== jobId) throw new ProtocolError(`a frame's body names job ${msg.jobId}, its header ${jobId}`)
          if (!frameAllowed(msg, this.streaming)) throw new ProtocolError(`a \`${msg.t}\` frame (or field) of job protocol 1.1.0 on a 1.0.0 link`)
        } catch (err) {
          either(jobId, err as Error)
          return
        }
        const side = TO_WORKER.has(msg.t) ? handlers.worker : handlers.client
        if (side === undefined) {
          either(jobId, new ProtocolError(`a \`${msg.t}\` frame reached a node that is not a ${TO_WORKER.has(msg.t) ? 'worker' : 'client'}`))
          return
        }
        side.frame(this, msg)
      }
    })
    stream.addEventListener('message', (evt) => {
      if (this.closedWith !== undefined) return
      try {
        this.reader.push(evt.data)
      } catch (err) {
        this.end(err as Error)
      }
    })
    stream.addEventListener('end', () => {
      // The peer sends nothing more here (its end is closed and every frame
      // it sent was read): end the link on our side too, or
      // the stream would linger (and hold one of the peer's inbound stream
      // slots) until libp2p's inactivity timeout. A frame cut off by the
      // close can never complete: a protocol error.
      this.end(this.reader.midFrame ? new ProtocolError(`the job link with ${peer} closed inside a frame`) : undefined)
    })
    stream.addEventListener('close', (evt) => {
      this.end(evt.error ?? new ProtocolError(`the job link with ${peer} closed`))
    })
  }

  get closed (): boolean { return this.closedWith !== undefined }

  /**
   * Send one frame. A job's frames go out in order; frames of different
   * jobs take turns (round robin), each waiting for the stream to drain
   * when its buffer is full. Resolves when the frame is on the stream.
   */
  async send (msg: LinkFrame, maxBytes: number = MAX_CONTROL_FRAME_BYTES): Promise<void> {
    if (this.closedWith !== undefined) throw this.closedWith
    if (!frameAllowed(msg, this.streaming)) throw new ProtocolError(`a \`${msg.t}\` frame needs job protocol 1.1.0, and the link with ${this.peer} speaks 1.0.0`)
    const bytes = encodeFrame(msg, maxBytes)
    await new Promise<void>((resolve, reject) => {
      let q = this.outgoing.get(msg.jobId)
      if (q === undefined) { q = []; this.outgoing.set(msg.jobId, q) }
      q.push({ bytes, resolve, reject })
      this.stats.queuedMax = Math.max(this.stats.queuedMax, q.length)
      if (!this.pumping) {
        // Start on the next microtask: frames queued in the same turn (a burst of partials and a short job's answer) take turns.
        this.pumping = true
        queueMicrotask(() => { void this.pump() })
      }
    })
  }

  /** Frames waiting to go (all jobs). */
  get queued (): number {
    let n = 0
    for (const q of this.outgoing.values()) n += q.length
    return n
  }

  private async pump (): Promise<void> {
    try {
      for (;;) {
        // Every frame waiting now, up to COALESCE_BYTES, goes out as one write (one yamux frame, one Noise
        // encryption, one socket write), still taken job by job in turn; the receiver reads frames from a byte
        // stream, so the bytes on the wire are the same as one write per frame.
        const batch: Outgoing[] = []
        const bytes = new Uint8ArrayList()
        while (bytes.byteLength < COALESCE_BYTES) {
          const first = this.outgoing.entries().next()
          if (first.done === true) break
          const [jobId, q] = first.value
          const item = q.shift()!
          // This job goes to the back of the turn order; a job with nothing left leaves it.
          this.outgoing.delete(jobId)
          if (q.length > 0) this.outgoing.set(jobId, q)
          batch.push(item)
          bytes.append(item.bytes)
        }
        if (batch.length === 0) return
        try {
          if (this.closedWith !== undefined) throw this.closedWith
          if (!this.stream.send(bytes)) await this.stream.onDrain({ signal: AbortSignal.timeout(30_000) })
          this.stats.sent += batch.length
          this.stats.writes++
          for (const item of batch) item.resolve()
        } catch (err) {
          // The error reaches these frames' senders; later frames still go (or fail on a closed link).
          for (const item of batch) item.reject(err as Error)
        }
      }
    } finally {
      this.pumping = false
    }
  }

  /** End the link. With no error it closes gracefully, else it aborts the stream. */
  end (err?: Error): void {
    if (this.closedWith !== undefined) return
    this.closedWith = err ?? new ProtocolError(`the job link with ${this.peer} closed`)
    for (const q of this.outgoing.values()) for (const o of q) o.reject(this.closedWith)
    this.outgoing.clear()
    if (err === undefined) {
      this.stream.close({ signal: AbortSignal.timeout(2000) }).catch((e: unknown) => { this.stream.abort(e as Error) })
    } else if (this.stream.status === 'open') {
      this.stream.abort(err)
    }
    this.onEnd(this, this.closedWith)
  }
}

export interface JobLinksInit {
  libp2p: Libp2p
  log: Logger
  /** Most links held at once; past it new inbound links are refused. */
  maxLinks?: number
  /** Job protocols spoken, newest first (default both; tests make a 1.0.0-only peer). */
  protocols?: readonly string[]
}

/** Every job link of a node, one (or briefly two) per peer; worker and client register their handlers. */
export class JobLinks {
  private readonly init: JobLinksInit
  private readonly links = new Map<string, Set<JobLink>>()
  private readonly opening = new Map<string, Promise<JobLink>>()
  private readonly handlers: { worker?: LinkHandler, client?: LinkHandler } = {}
  private readonly closeListeners = new Set<(peer: string, err: Error) => void>()
  private started = false
  readonly stats = { opened: 0, accepted: 0, refused: 0, ended: 0 }

  constructor (init: JobLinksInit) {
    this.init = init
  }

  private get protocols (): readonly string[] { return this.init.protocols ?? JOB_PROTOCOLS }

  /** What to propose to a peer: the newest both speak when the peer store knows its protocols (lazily, no round trip), else every one of ours. */
  private async proposal (id: PeerId): Promise<{ protocols: string[], lazy: boolean }> {
    const ours = [...this.protocols]
    let theirs: string[] = []
    try {
      theirs = (await this.init.libp2p.peerStore.get(id)).protocols
    } catch (err) {
      this.init.log.debug('peer store has no protocols for the peer: negotiating', { peer: id.toString(), error: errorMessage(err) })
    }
    const best = ours.find((p) => theirs.includes(p))
    return best === undefined ? { protocols: ours, lazy: ours.length === 1 } : { protocols: [best], lazy: true }
  }

  setHandler (side: 'worker' | 'client', h: LinkHandler | undefined): void {
    if (h === undefined) delete this.handlers[side]
    else this.handlers[side] = h
  }

  /** Called when a link with a peer ends (a client checks on its jobs there). */
  onLinkEnd (fn: (peer: string, err: Error) => void): () => void {
    this.closeListeners.add(fn)
    return () => { this.closeListeners.delete(fn) }
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    await this.init.libp2p.handle([...this.protocols], (stream, connection) => {
      const peer = connection.remotePeer.toString()
      if (this.count() >= (this.init.maxLinks ?? 4096)) {
        this.stats.refused++
        stream.abort(new ProtocolError('too many job links'))
        return
      }
      this.stats.accepted++
      this.add(stream, peer)
    }, { maxInboundStreams: 8, runOnLimitedConnection: false })
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    for (const p of this.protocols) await this.init.libp2p.unhandle(p)
    for (const set of [...this.links.values()]) for (const l of [...set]) l.end()
    this.links.clear()
  }

  private count (): number {
    let n = 0
    for (const s of this.links.values()) n += s.size
    return n
  }

  private add (stream: Stream, peer: string): JobLink {
    const link = new JobLink(stream, peer, this.handlers, (l, err) => {
      this.stats.ended++
      const set = this.links.get(peer)
      set?.delete(l)
      if (set?.size === 0) this.links.delete(peer)
      this.init.log.debug('job link ended', { peer, error: err.message })
      if (!this.has(peer)) for (const fn of this.closeListeners) fn(peer, err)
    })
    let set = this.links.get(peer)
    if (set === undefined) { set = new Set(); this.links.set(peer, set) }
    set.add(link)
    return link
  }

  has (peer: string): boolean {
    for (const l of this.links.get(peer) ?? []) if (!l.closed) return true
    return false
  }

  /** An open link to the peer, if there is one (newest first). */
  find (peer: string): JobLink | undefined {
    let found: JobLink | undefined
    for (const l of this.links.get(peer) ?? []) if (!l.closed) found = l
    return found
  }

  /** An open link to the peer, or a new one over an existing or new connection (bounded by `signal`). */
  async get (peer: string | PeerId, signal: AbortSignal): Promise<JobLink> {
    const key = peer.toString()
    const open = this.find(key)
    if (open !== undefined) return open
    const pending = this.opening.get(key)
    if (pending !== undefined) return await pending
    const opening = (async () => {
      const id = typeof peer === 'string' ? peerIdFromString(peer) : peer
      // negotiateFully: false sends a single protocol's proposal with the first frame (saves a round trip).
      const { protocols, lazy } = await this.proposal(id)
      const stream = await this.init.libp2p.dialProtocol(id, protocols, { signal, negotiateFully: !lazy })
      this.stats.opened++
      return this.add(stream, key)
    })()
    this.opening.set(key, opening)
    try {
      return await opening
    } catch (err) {
      throw new ProtocolError(`cannot open a job link to ${key}: ${errorMessage(err)}`, { cause: err })
    } finally {
      this.opening.delete(key)
    }
  }
}

