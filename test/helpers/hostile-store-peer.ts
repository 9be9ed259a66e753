/**
 * A hostile peer for the content store's tests: a real libp2p node on
 * 127.0.0.1 (mDNS off) that speaks `/ipfs-accelerate/blocks/1.0.0` with the
 * answers a test scripts: manifests that name another root or take over an
 * id, `has` that claims everything, blocks whose bytes fail their CID,
 * cache answers with poisoned or wrong-shape vectors. It records what it
 * was asked.
 */
import type { Stream } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import { BLOCKS_PROTOCOL, FrameReader, blockFrame, controlFrame, parseControl, requestSchema, sendFrame, WIRE_VERSION } from '../../src/store/exchange/wire.ts'
import type { Request } from '../../src/store/exchange/wire.ts'
import { startNode } from './p2p-nodes.ts'
import type { Node } from './p2p-nodes.ts'

export interface Block { cid: CID, bytes: Uint8Array }

export interface HostileScript {
  /** The record to answer a manifest request with (undefined: `none`). */
  manifest?: (ref: string) => unknown
  /** Default: claims to hold every root. */
  has?: (roots: CID[]) => boolean[]
  /** The blocks to stream for a `dag` or `blocks` request (default: none, then `end`). */
  blocks?: (roots: CID[]) => Block[]
  /** The blocks to answer a cache lookup with. */
  cache?: (keys: string[]) => Block[]
}

export interface HostilePeer {
  node: Node
  addr: string
  peerId: string
  /** Request kinds received, in order. */
  asked: Array<Request['t']>
  stop: () => Promise<void>
}

export async function startHostilePeer (script: HostileScript): Promise<HostilePeer> {
  const node = await startNode()
  const asked: Array<Request['t']> = []
  await node.handle(BLOCKS_PROTOCOL, (stream: Stream) => {
    void answer(stream, script, asked).catch((err: unknown) => { stream.abort(err as Error) })
  })
  const addr = node.getMultiaddrs()[0]?.toString()
  if (addr === undefined) throw new Error('the hostile peer listens nowhere')
  return { node, addr, peerId: node.peerId.toString(), asked, stop: async () => { await node.stop() } }
}

async function answer (stream: Stream, script: HostileScript, asked: Array<Request['t']>): Promise<void> {
  const signal = AbortSignal.timeout(10_000)
  const frame = await new FrameReader(stream).next(signal)
  if (frame?.kind !== 'control') throw new Error('expected a request')
  const req = parseControl(frame.msg, requestSchema)
  asked.push(req.t)
  const end = async (blocks: Block[]): Promise<void> => {
    for (const b of blocks) await sendFrame(stream, blockFrame(b.cid, b.bytes), signal)
    await sendFrame(stream, controlFrame({ v: WIRE_VERSION, t: 'end', blocks: blocks.length }), signal)
  }
  if (req.t === 'manifest') {
    const record = script.manifest?.(req.ref)
    await sendFrame(stream, controlFrame(record === undefined ? { v: WIRE_VERSION, t: 'none' } : { v: WIRE_VERSION, t: 'manifest', record }), signal)
  } else if (req.t === 'has') {
    const roots = req.roots.map((b) => CID.decode(b))
    await sendFrame(stream, controlFrame({ v: WIRE_VERSION, t: 'has', have: script.has?.(roots) ?? roots.map(() => true) }), signal)
  } else if (req.t === 'cache') {
    await end(script.cache?.(req.keys) ?? [])
  } else {
    await end(script.blocks?.(req.roots.map((b) => CID.decode(b))) ?? [])
  }
  await stream.close({ signal })
}
