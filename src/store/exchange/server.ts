/**
 * Server side of `/ipfs-accelerate/blocks/1.0.0`: answers one request per
 * stream from the local blockstore only (never from the network). A `dag`
 * request streams each subtree breadth-first with a few block reads ahead
 * of the socket, each distinct block once, parents before children.
 * Every request is admitted by the serving limits (limits.ts) first and
 * runs under a deadline; a refusal is an `error` frame with its code.
 */
import type { Connection, Stream } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'
import { CID } from 'multiformats/cid'
import { errorCode, errorMessage as baseMessage, ProtocolError, RequestDeadlineError } from '../../errors.ts'
import type { Logger } from '../../logger.ts'
import { blockMatches, readBlock } from '../blocks/cid.ts'
import { childLinks } from '../blocks/dag.ts'
import { FrameReader, blockFrame, controlFrame, parseControl, requestSchema, sendFrame, WIRE_VERSION } from './wire.ts'
import type { Reply, Request } from './wire.ts'
import type { ServeLimits } from './limits.ts'

/** What the server answers besides blocks; the model store and the embedding cache fill these in. */
export interface ExchangeHandlers {
  /** Whether this node holds each root's whole DAG. */
  has?: (roots: CID[], signal: AbortSignal) => Promise<boolean[]>
  /** The record of a model by id or root CID, for peers that pull by id. */
  manifest?: (ref: string, signal: AbortSignal) => Promise<unknown>
  /** The cached embedding blocks held here for these keys, for `peer` (which may be refused: ForbiddenError). */
  cacheBlocks?: (keys: string[], peer: string, signal: AbortSignal) => Promise<Array<{ cid: CID, bytes: Uint8Array }>>
}

export interface ServerOptions {
  blockstore: Pick<Blockstore, 'get' | 'has'>
  handlers: () => ExchangeHandlers
  log: Logger
  readAhead: number
  requestTimeoutMs: number
  verifyOnSend: boolean
  signal: AbortSignal
  limits: ServeLimits
  /** Takes each block's bytes from the requesting peer's budget (set per request by serveStream). */
  spend?: (bytes: number, signal: AbortSignal) => Promise<void>
  /** Counters the server adds to (the block exchange's, for /metrics). */
  stats?: ExchangeStats
}

/** What the block exchange moved and refused since it started. */
export interface ExchangeStats {
  servedBlocks: number
  servedBytes: number
  fetchedBlocks: number
  fetchedBytes: number
  /** Requests refused by a serving limit (busy, rate-limited, deadline, too many roots). */
  refusedRequests: number
  /** Requests that were not a valid request frame. */
  malformedRequests: number
}

export function emptyExchangeStats (): ExchangeStats {
  return { servedBlocks: 0, servedBytes: 0, fetchedBlocks: 0, fetchedBytes: 0, refusedRequests: 0, malformedRequests: 0 }
}

/** Send one block and count it. */
async function sendBlock (stream: Stream, cid: CID, bytes: Uint8Array, opts: ServerOptions, signal: AbortSignal): Promise<void> {
  await opts.spend?.(bytes.byteLength, signal)
  await sendFrame(stream, blockFrame(cid, bytes), signal)
  if (opts.stats !== undefined) { opts.stats.servedBlocks++; opts.stats.servedBytes += bytes.byteLength }
}

/** Streams sometimes fail with a bare Event; say what it was. */
export function errorMessage (err: unknown): string {
  if (typeof Event !== 'undefined' && err instanceof Event) return `stream ${err.type}`
  return baseMessage(err)
}

class NotFound extends Error {
  readonly cid: CID
  constructor (cid: CID) { super(`block ${cid.toString()} is not held here`); this.cid = cid }
}

class Corrupt extends Error {
  readonly cid: CID
  constructor (cid: CID) { super(`block ${cid.toString()} on disk does not match its CID`); this.cid = cid }
}

type Serve = (req: Request, stream: Stream, opts: ServerOptions, signal: AbortSignal, peer: string) => Promise<void>

const serveTable: Readonly<Record<Request['t'], Serve>> = Object.freeze({
  dag: async (req, stream, opts, signal) => { await streamBlocks(rootsOf(req), true, stream, opts, signal) },
  blocks: async (req, stream, opts, signal) => { await streamBlocks(rootsOf(req), false, stream, opts, signal) },
  has: async (req, stream, opts, signal) => {
    const roots = rootsOf(req)
    opts.limits.checkHasRoots(roots.length)
    const h = opts.handlers().has
    const have = h === undefined ? await Promise.all(roots.map(async (c) => await opts.blockstore.has(c))) : await h(roots, signal)
    await reply(stream, { v: WIRE_VERSION, t: 'has', have }, signal)
  },
  manifest: async (req, stream, opts, signal) => {
    if (req.t !== 'manifest') return
    const record = await opts.handlers().manifest?.(req.ref, signal)
    await reply(stream, record === undefined ? { v: WIRE_VERSION, t: 'none' } : { v: WIRE_VERSION, t: 'manifest', record }, signal)
  },
  cache: async (req, stream, opts, signal, peer) => {
    if (req.t !== 'cache') return
    const handler = opts.handlers().cacheBlocks
    const hits = handler === undefined ? [] : await handler(req.keys, peer, signal)
    for (const hit of hits) await sendBlock(stream, hit.cid, hit.bytes, opts, signal)
    await reply(stream, { v: WIRE_VERSION, t: 'end', blocks: hits.length }, signal)
  }
})

function rootsOf (req: Request): CID[] {
  if (req.t !== 'dag' && req.t !== 'blocks' && req.t !== 'has') return []
  return req.roots.map((b) => {
    try {
      return CID.decode(b)
    } catch (err) {
      throw new ProtocolError(`bad CID in request: ${(err as Error).message}`, { cause: err })
    }
  })
}

async function reply (stream: Stream, msg: Reply, signal: AbortSignal): Promise<void> {
  await sendFrame(stream, controlFrame(msg), signal)
}

async function streamBlocks (roots: CID[], descend: boolean, stream: Stream, opts: ServerOptions, signal: AbortSignal): Promise<void> {
  const queue: CID[] = []
  const queued = new Set<string>()
  for (const r of roots) {
    const k = r.toString()
    if (!queued.has(k)) { queued.add(k); queue.push(r) }
  }
  const read = async (cid: CID): Promise<{ cid: CID, bytes: Uint8Array }> => {
    let bytes: Uint8Array
    try {
      bytes = await readBlock(opts.blockstore, cid, { signal, offline: true })
    } catch (err) {
      signal.throwIfAborted()
      if ((err as Error).name === 'NotFoundError' || (err as Error).name === 'BlockNotFoundWhileOfflineError') throw new NotFound(cid)
      throw err
    }
    if (opts.verifyOnSend && !blockMatches(cid, bytes)) throw new Corrupt(cid)
    return { cid, bytes }
  }
  const inflight: Array<Promise<{ cid: CID, bytes: Uint8Array }>> = []
  let sent = 0
  let head = 0
  while (head < queue.length || inflight.length > 0) {
    while (inflight.length < opts.readAhead && head < queue.length) {
      const cid = queue[head++] as CID
      const p = read(cid)
      p.catch(() => undefined) // awaited below in order; this only marks it handled meanwhile
      inflight.push(p)
    }
    const next = inflight.shift()
    if (next === undefined) break
    const { cid, bytes } = await next
    if (descend) {
      for (const link of childLinks(cid, bytes)) {
        const k = link.cid.toString()
        if (!queued.has(k)) { queued.add(k); queue.push(link.cid) }
      }
    }
    await sendBlock(stream, cid, bytes, opts, signal)
    sent++
    if (head > 4096) { queue.splice(0, head); head = 0 }
  }
  await reply(stream, { v: WIRE_VERSION, t: 'end', blocks: sent }, signal)
}

/** Handle one inbound stream: read the request, answer it, close. */
export async function serveStream (stream: Stream, connection: Connection, opts: ServerOptions): Promise<void> {
  const peer = connection.remotePeer.toString()
  const reader = new FrameReader(stream, { highWater: 64 * 1024 })
  let req: Request
  try {
    const frame = await reader.next(AbortSignal.any([opts.signal, AbortSignal.timeout(opts.requestTimeoutMs)]))
    if (frame?.kind !== 'control') throw new ProtocolError('expected a request frame')
    req = parseControl(frame.msg, requestSchema)
  } catch (err) {
    if (opts.stats !== undefined) opts.stats.malformedRequests++
    opts.log.debug('dropped a malformed block request', { peer, error: errorMessage(err) })
    stream.abort(err as Error)
    return
  }
  const started = Date.now()
  const deadline = AbortSignal.timeout(opts.limits.init.requestDeadlineMs)
  let admission: ReturnType<ServeLimits['admit']> | undefined
  try {
    admission = opts.limits.admit(peer)
    const signal = AbortSignal.any([opts.signal, deadline])
    await serveTable[req.t](req, stream, { ...opts, spend: admission.spend }, signal, peer)
    // close waits until the peer has taken what is still buffered
    await stream.close({ signal: AbortSignal.any([signal, AbortSignal.timeout(opts.requestTimeoutMs)]) })
    opts.log.debug('served a block request', { peer, t: req.t, ms: Date.now() - started })
  } catch (caught) {
    const err = deadline.aborted && !opts.signal.aborted
      ? new RequestDeadlineError(`the request ran past this node's deadline of ${opts.limits.init.requestDeadlineMs} ms: ask for fewer blocks at once, or ask another peer`, { cause: caught })
      : caught
    if (admission === undefined) {
      if (opts.stats !== undefined) opts.stats.refusedRequests++
      opts.log.debug('refused a block request', { peer, t: req.t, code: errorCode(err) })
    }
    const known = err instanceof NotFound || err instanceof Corrupt
    if (err instanceof Corrupt) opts.log.error('a stored block does not match its CID: run `models verify` and re-pull the model', { cid: err.cid.toString() })
    else if (!known && admission !== undefined) opts.log.warn('block request failed', { peer, t: req.t, error: errorMessage(err) })
    try {
      const code = err instanceof NotFound ? 'ERR_NOT_FOUND' : err instanceof Corrupt ? 'ERR_BLOCK_CORRUPT' : errorCode(err)
      await reply(stream, {
        v: WIRE_VERSION,
        t: 'error',
        code: /^ERR_[A-Z0-9_]{1,60}$/.test(code) ? code : 'ERR_INTERNAL',
        message: errorMessage(err).slice(0, 2000),
        ...(known ? { cid: err.cid.toString() } : {})
      }, AbortSignal.timeout(5000))
      await stream.close({ signal: AbortSignal.timeout(5000) })
    } catch (closeErr) {
      stream.abort(closeErr as Error)
    }
  } finally {
    admission?.release()
  }
}
