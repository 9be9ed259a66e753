/**
 * `/ipfs-accelerate/blocks/1.0.0`: a model's whole DAG streamed from peers
 * over one libp2p stream per request, instead of bitswap's block-by-block
 * want lists. The client verifies every block against its CID as it lands,
 * accepts only blocks of the DAG it asked for, and splits the work across
 * several peers (by subtree, then by batches of leaves). A peer that sends
 * a bad block is dropped and its share goes to the others; what no peer
 * could give is returned to the caller (the model store then uses bitswap).
 * The server side answers within serving limits (limits.ts); a peer that
 * refuses a request for a limit (busy, rate-limited, deadline) is not
 * dropped: that part of the work goes to another peer.
 */
import type { Libp2p, PeerId, Startable } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'
import { ModelIntegrityError, ProtocolError, StoreError } from '../../errors.ts'
import { forComponent } from '../../logger.ts'
import type { Logger } from '../../logger.ts'
import { blockMatches, DAG_PB_CODE, readBlock } from '../blocks/cid.ts'
import { childLinks, missingBlocks } from '../blocks/dag.ts'
import { Limiter } from '../sync.ts'
import { BLOCKS_PROTOCOL, FrameReader, controlFrame, MAX_CACHE_KEYS, parseControl, replySchema, sendFrame, WIRE_VERSION } from './wire.ts'
import type { Reply, Request } from './wire.ts'
import { emptyExchangeStats, errorMessage, serveStream } from './server.ts'
import type { ExchangeHandlers, ExchangeStats } from './server.ts'
import { planWork, WorkQueue } from './plan.ts'
import { isRefusal, refusalError, ServeLimits } from './limits.ts'
import type { ServeLimitsInit } from './limits.ts'

export type { ExchangeHandlers, ExchangeStats }
export { BLOCKS_PROTOCOL }

export interface BlockExchangeComponents {
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'>
  /** Where fetched blocks go (Helia's blockstore, so bitswap learns of them). */
  blockstore: Pick<Blockstore, 'get' | 'put' | 'has'>
  /** Where served blocks are read from (default `blockstore`); a plain file blockstore skips Helia's layers. */
  source?: Pick<Blockstore, 'get' | 'has'>
}

export interface BlockExchangeInit {
  protocol?: string
  /** Inbound streams per connection. */
  maxInboundStreams?: number
  /** Block reads the server keeps ahead of the socket. */
  readAhead?: number
  /** Concurrent requests to one peer when fetching. */
  streamsPerPeer?: number
  /** Leaves per request once a DAG is split across peers. */
  leavesPerRequest?: number
  /** Block writes in flight on the receiving side. */
  putConcurrency?: number
  /** Wait this long for a request, or for the next frame of an answer. */
  requestTimeoutMs?: number
  /** Hash each block before sending it (the receiver always does). */
  verifyOnSend?: boolean
  /** What the server serves at once and to whom (limits.ts; defaults in SERVE_LIMIT_DEFAULTS). */
  limits?: ServeLimitsInit
}

export interface FetchProgress {
  blocks: number
  bytes: number
  /** DAG size estimated from the root's links (dag-pb Tsize), once known. */
  totalBytes?: number
}

export interface FetchOptions {
  signal?: AbortSignal
  onProgress?: (p: FetchProgress) => void
  /** Called with the size the root claims when it arrives, before anything is written; throw (a StoreError) to refuse the pull. */
  admit?: (totalBytes: number) => Promise<void>
  /** Stop with a StoreError once more than this many bytes arrived (a peer's claimed sizes may lie). */
  maxBytes?: number
}

export interface FetchResult {
  blocks: number
  bytes: number
  /** Bytes received from each peer. */
  byPeer: Record<string, number>
  /** Subtree roots no peer could give; the caller decides what to do with them. */
  leftover: CID[]
  /** One line per peer failure, for logs. */
  failures: string[]
}

/** A peer's bad behaviour: it is not asked again during this fetch. */
class PeerFault extends Error {}
/** The peer does not hold part of what was asked: ask someone else for that part. */
class PeerLacks extends Error {}

type OnBlock = (cid: CID, bytes: Uint8Array, peer: string) => Promise<void>

export class BlockExchange implements Startable {
  readonly protocol: string
  private readonly components: BlockExchangeComponents
  private readonly init: Required<BlockExchangeInit>
  private readonly log: Logger
  /** The server's limits (its counters, for tests and status). */
  readonly limits: ServeLimits
  /** Blocks and bytes served and fetched, requests refused (for /metrics). */
  readonly stats: ExchangeStats = emptyExchangeStats()
  private handlers: ExchangeHandlers = {}
  private shutdown = new AbortController()
  private started = false

  constructor (components: BlockExchangeComponents, init: BlockExchangeInit = {}) {
    this.components = components
    this.init = {
      protocol: init.protocol ?? BLOCKS_PROTOCOL,
      maxInboundStreams: init.maxInboundStreams ?? 64,
      readAhead: init.readAhead ?? 8,
      streamsPerPeer: init.streamsPerPeer ?? 1,
      leavesPerRequest: init.leavesPerRequest ?? 16,
      putConcurrency: init.putConcurrency ?? 8,
      requestTimeoutMs: init.requestTimeoutMs ?? 30_000,
      verifyOnSend: init.verifyOnSend ?? false,
      limits: init.limits ?? {}
    }
    this.limits = new ServeLimits(this.init.limits)
    this.protocol = this.init.protocol
    this.log = forComponent('ipfs-accelerate:store:exchange')
  }

  /** Set what the server answers to `has`, `manifest` and `cache` requests. */
  setHandlers (handlers: ExchangeHandlers): void {
    this.handlers = { ...this.handlers, ...handlers }
  }

  async start (): Promise<void> {
    if (this.started) return
    this.shutdown = new AbortController()
    await this.components.libp2p.handle(this.protocol, (stream, connection) => {
      void serveStream(stream, connection, {
        blockstore: this.components.source ?? this.components.blockstore,
        handlers: () => this.handlers,
        log: this.log,
        readAhead: this.init.readAhead,
        requestTimeoutMs: this.init.requestTimeoutMs,
        verifyOnSend: this.init.verifyOnSend,
        signal: this.shutdown.signal,
        limits: this.limits,
        stats: this.stats
      })
    }, { maxInboundStreams: this.init.maxInboundStreams })
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.shutdown.abort(new StoreError('the block exchange is stopping'))
    await this.components.libp2p.unhandle(this.protocol)
  }

  /** Ask a peer whether it holds each root's whole DAG. */
  async has (peer: PeerId, roots: CID[], options: { signal?: AbortSignal } = {}): Promise<boolean[]> {
    const r = await this.request(peer, { v: WIRE_VERSION, t: 'has', roots: roots.map((c) => c.bytes) }, undefined, options.signal)
    if (r.t !== 'has' || r.have.length !== roots.length) throw new ProtocolError(`peer ${peer.toString()} answered "has" with ${r.t}`)
    return r.have
  }

  /** A peer's record of a model (validated by the caller), or undefined. */
  async manifest (peer: PeerId, ref: string, options: { signal?: AbortSignal } = {}): Promise<unknown> {
    const r = await this.request(peer, { v: WIRE_VERSION, t: 'manifest', ref }, undefined, options.signal)
    if (r.t === 'none') return undefined
    if (r.t !== 'manifest') throw new ProtocolError(`peer ${peer.toString()} answered "manifest" with ${r.t}`)
    return r.record
  }

  /**
   * The cached embedding blocks a peer holds for `keys` (at most
   * MAX_CACHE_KEYS), each verified against its CID; the caller checks what
   * they hold. One round trip for all of a job's texts.
   */
  async cacheBlocks (peer: PeerId, keys: string[], options: { signal?: AbortSignal } = {}): Promise<Array<{ cid: CID, bytes: Uint8Array }>> {
    if (keys.length > MAX_CACHE_KEYS) throw new StoreError(`a cache lookup names at most ${MAX_CACHE_KEYS} keys, not ${keys.length}`)
    const got: Array<{ cid: CID, bytes: Uint8Array }> = []
    const r = await this.request(peer, { v: WIRE_VERSION, t: 'cache', keys }, async (cid, bytes) => {
      if (got.length >= keys.length) throw new ProtocolError('more blocks in a cache answer than keys asked')
      if (!blockMatches(cid, bytes)) throw new ModelIntegrityError(`peer ${peer.toString()} sent a cache block that does not match its CID`)
      got.push({ cid, bytes })
    }, options.signal)
    if (r.t === 'error') throw new StoreError(`peer ${peer.toString()}: ${r.code}: ${r.message}`)
    if (r.t !== 'end') throw new ProtocolError(`peer ${peer.toString()} answered "cache" with ${r.t}`)
    return got
  }

  /** Subtree roots under `root` that are not in the local blockstore (empty: the DAG is complete). */
  async missingBlocks (root: CID, options: { signal?: AbortSignal } = {}): Promise<CID[]> {
    return await missingBlocks(this.components.blockstore, root, options)
  }

  /** Fetch what is missing of `root`'s DAG from `peers` (each believed to hold it). */
  async fetch (root: CID, peers: PeerId[], options: FetchOptions = {}): Promise<FetchResult> {
    const signal = AbortSignal.any([this.shutdown.signal, ...(options.signal === undefined ? [] : [options.signal])])
    const result: FetchResult = { blocks: 0, bytes: 0, byPeer: {}, leftover: [], failures: [] }
    const missing = await this.missingBlocks(root, { signal })
    if (missing.length === 0 || peers.length === 0) return { ...result, leftover: missing }
    const progress: FetchProgress = { blocks: 0, bytes: 0 }
    const puts = new Limiter(this.init.putConcurrency)
    const bs = this.components.blockstore
    const onBlock: OnBlock = async (cid, bytes, peer) => {
      if (progress.totalBytes === undefined && cid.equals(root) && cid.code === DAG_PB_CODE) {
        progress.totalBytes = bytes.byteLength + childLinks(cid, bytes).reduce((s, l) => s + (l.tsize ?? 0), 0)
        await options.admit?.(progress.totalBytes)
      }
      if (options.maxBytes !== undefined && progress.bytes + bytes.byteLength > options.maxBytes) {
        throw new StoreError(`${root.toString()} passed ${options.maxBytes} bytes while it was fetched, more than the pull allows (its root claimed ${progress.totalBytes ?? 'no size'}): the peers serve more than the model claims, or raise store.maxPullMB`)
      }
      await puts.run(async () => {
        try {
          await bs.put(cid, bytes, { signal })
        } catch (err) {
          signal.throwIfAborted() // cancelled: say so, not that the write failed
          throw new StoreError(`cannot write block ${cid.toString()} to the blockstore: ${errorMessage(err)}`, { cause: err })
        }
      })
      progress.blocks++
      progress.bytes += bytes.byteLength
      result.byPeer[peer] = (result.byPeer[peer] ?? 0) + bytes.byteLength
      options.onProgress?.({ ...progress })
    }
    const workers = peers.length * this.init.streamsPerPeer
    const items = workers <= 1
      ? missing
      : await planWork(missing, workers, {
        fetchNodes: async (cids) => {
          const ok = await this.fetchNodes(peers, cids, onBlock, signal)
          await puts.drain() // the nodes are read back next
          return ok
        },
        missingChildren: async (cid) => {
          const bytes = await readBlock(bs, cid, { signal, offline: true })
          const out: CID[] = []
          for (const l of childLinks(cid, bytes)) out.push(...await this.missingBlocks(l.cid, { signal }))
          return out
        }
      })
    const queue = new WorkQueue(items, this.init.leavesPerRequest)
    const bad = new Set<string>()
    const worker = async (peer: PeerId): Promise<void> => {
      const id = peer.toString()
      for (;;) {
        if (bad.has(id)) return
        const batch = await queue.take(id, signal)
        if (batch === undefined) return
        const remaining = new Map<string, CID>()
        try {
          await this.runDag(peer, batch.cids, remaining, onBlock, signal)
          queue.done(batch, [], id)
        } catch (err) {
          signal.throwIfAborted()
          if (err instanceof StoreError) throw err
          // a peer that lacks part of the DAG, or refused for a serving limit, keeps its other work
          const lacks = err instanceof PeerLacks || isRefusal(err)
          if (!lacks) bad.add(id)
          result.failures.push(`${id}: ${errorMessage(err)}`)
          this.log.warn(lacks ? 'peer lacks part of the DAG; asking another' : 'dropped a peer for this fetch; its share goes to the others', { peer: id, root: root.toString(), error: errorMessage(err) })
          queue.done(batch, [...remaining.values()], id)
        }
      }
    }
    try {
      await Promise.all(peers.flatMap((p) => Array.from({ length: this.init.streamsPerPeer }, async () => { await worker(p) })))
    } finally {
      await puts.drain()
    }
    result.blocks = progress.blocks
    result.bytes = progress.bytes
    result.leftover = queue.leftover()
    return result
  }

  /** Fetch single blocks (no descent), e.g. the nodes used to split a DAG. */
  private async fetchNodes (peers: PeerId[], cids: CID[], onBlock: OnBlock, signal: AbortSignal): Promise<boolean> {
    for (const peer of peers) {
      const want = new Map(cids.map((c) => [c.toString(), c]))
      try {
        const r = await this.request(peer, { v: WIRE_VERSION, t: 'blocks', roots: cids.map((c) => c.bytes) }, async (cid, bytes) => {
          if (!want.delete(cid.toString())) throw new PeerFault(`unrequested block ${cid.toString()}`)
          if (!blockMatches(cid, bytes)) throw new PeerFault(`block ${cid.toString()} does not match its CID`)
          await onBlock(cid, bytes, peer.toString())
        }, signal)
        if (r.t === 'end' && want.size === 0) return true
        cids = [...want.values()]
      } catch (err) {
        signal.throwIfAborted()
        if (err instanceof StoreError) throw err
        this.log.debug('could not fetch DAG nodes for splitting', { peer: peer.toString(), error: errorMessage(err) })
        cids = [...want.values()]
      }
    }
    return false
  }

  /**
   * One `dag` request. Every block must be one we expect (a requested root,
   * or a child of a block received on this stream) and match its CID.
   * `remaining` holds what is still expected, for requeueing on failure.
   */
  private async runDag (peer: PeerId, roots: CID[], remaining: Map<string, CID>, onBlock: OnBlock, signal: AbortSignal): Promise<void> {
    const id = peer.toString()
    const received = new Set<string>()
    for (const c of roots) remaining.set(c.toString(), c)
    const r = await this.request(peer, { v: WIRE_VERSION, t: 'dag', roots: roots.map((c) => c.bytes) }, async (cid, bytes) => {
      const k = cid.toString()
      if (!remaining.has(k)) throw new PeerFault(`peer sent block ${k}, which is not part of the requested DAG`)
      if (!blockMatches(cid, bytes)) {
        this.log.warn('rejected a block that does not match its CID', { peer: id, cid: k })
        throw new PeerFault(`block ${k} does not match its CID`)
      }
      const links = childLinks(cid, bytes)
      await onBlock(cid, bytes, id)
      remaining.delete(k)
      received.add(k)
      for (const l of links) {
        const lk = l.cid.toString()
        if (!received.has(lk)) remaining.set(lk, l.cid)
      }
    }, signal)
    if (r.t === 'error') {
      if (r.code === 'ERR_NOT_FOUND') throw new PeerLacks(`${r.code}: ${r.message}`)
      throw new PeerFault(`${r.code}: ${r.message}`)
    }
    if (r.t !== 'end') throw new PeerFault(`unexpected answer "${r.t}" to a dag request`)
    if (remaining.size > 0) throw new PeerFault(`stream ended with ${remaining.size} blocks of the DAG missing`)
  }

  /** Send one request; feed block frames to `onBlock`; return the final control reply. */
  private async request (peer: PeerId, req: Request, onBlock: ((cid: CID, bytes: Uint8Array) => Promise<void>) | undefined, signal?: AbortSignal): Promise<Reply> {
    const sig = AbortSignal.any([this.shutdown.signal, ...(signal === undefined ? [] : [signal])])
    const stream = await this.components.libp2p.dialProtocol(peer, this.protocol, { signal: AbortSignal.any([sig, AbortSignal.timeout(this.init.requestTimeoutMs)]) })
    try {
      const reader = new FrameReader(stream)
      await sendFrame(stream, controlFrame(req), sig)
      for (;;) {
        const frame = await reader.next(AbortSignal.any([sig, AbortSignal.timeout(this.init.requestTimeoutMs)]))
        if (frame === undefined) throw new PeerFault('stream ended without an answer')
        if (frame.kind === 'control') {
          const r = parseControl(frame.msg, replySchema)
          await stream.close({ signal: AbortSignal.timeout(2000) }).catch((err: unknown) => { stream.abort(err as Error) })
          const refused = r.t === 'error' ? refusalError(r.code, r.message, peer.toString()) : undefined
          if (refused !== undefined) throw refused
          return r
        }
        if (onBlock === undefined) throw new PeerFault('unexpected block frame')
        this.stats.fetchedBlocks++
        this.stats.fetchedBytes += frame.bytes.byteLength
        await onBlock(frame.cid, frame.bytes)
      }
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }
}
