/**
 * Real libp2p nodes on 127.0.0.1 for the job-bus unit tests (mDNS and
 * bootstrap off), and the small tools those tests share: a bounded wait, a
 * silent logger, a seeded random, hand-made frames and a LinkHandler that
 * records what arrives.
 */
import { createLibp2p } from 'libp2p'
import type { PrivateKey } from '@libp2p/interface'
import type { Libp2p } from '@libp2p/interface'
import { encode } from 'cborg'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Logger } from '../../src/logger.ts'
import { libp2pOptions } from '../../src/p2p/swarm/libp2p.ts'
import type { NodeServices } from '../../src/p2p/swarm/libp2p.ts'
import type { JobLink, LinkHandler } from '../../src/p2p/jobs/link.ts'
import type { AdvertModel, LinkFrame } from '../../src/p2p/wire/messages.ts'
import type { AdvertBody } from '../../src/p2p/swarm/adverts.ts'
import { MAX_CONTROL_FRAME_BYTES } from '../../src/p2p/wire/protocol.ts'

export type Node = Libp2p<NodeServices>

const keys = new WeakMap<Node, PrivateKey>()

/** A started node; `listen: false` makes it listen nowhere (as a ClientNode does). Its key is `keyOf(node)`. */
export async function startNode (opts: { listen?: boolean } = {}): Promise<Node> {
  const privateKey = await generateKeyPair('Ed25519')
  const node = await createLibp2p(libp2pOptions({ privateKey, listen: opts.listen === false ? [] : ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false }))
  keys.set(node, privateKey)
  return node
}

/** The private key of a node made by startNode (to sign results as a worker does). */
export function keyOf (node: Node): PrivateKey {
  const k = keys.get(node)
  if (k === undefined) throw new Error('not a node made by startNode')
  return k
}

/** Connect `from` to `to` (which must listen). */
export async function connect (from: Node, to: Node): Promise<void> {
  const addr = to.getMultiaddrs()[0]
  if (addr === undefined) throw new Error('the node dialled listens nowhere')
  await from.dial(addr, { signal: AbortSignal.timeout(5000) })
}

/** Stop every node, whatever happens to the others. */
export async function stopAll (...nodes: Array<{ stop: () => void | Promise<void> } | undefined>): Promise<void> {
  await Promise.allSettled(nodes.map(async (n) => { await n?.stop() }))
}

export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Poll `fn` every 10 ms until it returns something other than undefined/false; throws after `timeoutMs`. */
export async function waitFor<T> (what: string, fn: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const until = performance.now() + timeoutMs
  for (let i = 0; ; i++) {
    const v = fn()
    if (v !== undefined && v !== false) return v
    if (performance.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(10)
  }
}

/** A logger that drops everything (set KEEP_P2P_LOGS=1 to see it on stderr). */
export const silentLog: Logger = {
  error: (m, f) => { if (process.env.KEEP_P2P_LOGS === '1') console.error('error', m, f) },
  warn: (m, f) => { if (process.env.KEEP_P2P_LOGS === '1') console.error('warn', m, f) },
  info: (m, f) => { if (process.env.KEEP_P2P_LOGS === '1') console.error('info', m, f) },
  debug: (m, f) => { if (process.env.KEEP_P2P_LOGS === '1') console.error('debug', m, f) },
  child: () => silentLog
}

/** A seeded PRNG (mulberry32): reproducible "random" numbers in [0, 1); the model generator's. */
export { mulberry32 } from '../../src/models/generate/prng.ts'

function varint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  out.push(n)
  return out
}

/** A frame built by hand: header for `jobId`, then `body` as given (need not be CBOR). */
export function rawFrame (jobId: string, body: Uint8Array): Uint8Array {
  const id = new TextEncoder().encode(jobId)
  const head = Uint8Array.from([...varint(id.byteLength), ...id, ...varint(body.byteLength)])
  const out = new Uint8Array(head.byteLength + body.byteLength)
  out.set(head)
  out.set(body, head.byteLength)
  return out
}

/** A CBOR body of any shape (to send what the schema refuses). */
export function cbor (value: unknown): Uint8Array {
  return encode(value)
}

/** A fresh peer id string (no node behind it). */
export async function newPeerId (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

/** Job ids of the shape the protocol allows. */
let jobCounter = 0
export function jobId (tag = 'job'): string {
  return `${tag}-${process.pid}-${++jobCounter}-${Math.random().toString(36).slice(2, 10)}`.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64)
}

export interface Received { link: JobLink, frame: LinkFrame }
export interface BadFrame { link: JobLink, jobId: string, err: Error }

/** A LinkHandler that keeps every frame and bad frame, with bounded waits on them. */
export class FrameLog implements LinkHandler {
  readonly frames: Received[] = []
  readonly bad: BadFrame[] = []
  /** Body limit by job id (default: control frames only). */
  limit: (jobId: string) => number = () => MAX_CONTROL_FRAME_BYTES
  /** Called for each frame after it is recorded (a fake peer's behaviour). */
  onFrame: ((link: JobLink, f: LinkFrame) => void) | undefined

  limitFor (_link: JobLink, jobId: string): number { return this.limit(jobId) }
  frame (link: JobLink, frame: LinkFrame): void {
    this.frames.push({ link, frame })
    this.onFrame?.(link, frame)
  }

  badFrame (link: JobLink, jobId: string, err: Error): void { this.bad.push({ link, jobId, err }) }

  of<T extends LinkFrame['t']> (t: T, jobId?: string): Array<Extract<LinkFrame, { t: T }>> {
    return this.frames.map((r) => r.frame).filter((f): f is Extract<LinkFrame, { t: T }> => f.t === t && (jobId === undefined || f.jobId === jobId))
  }

  async next<T extends LinkFrame['t']> (t: T, jobId?: string, timeoutMs = 5000): Promise<Extract<LinkFrame, { t: T }>> {
    return await waitFor(`a \`${t}\` frame${jobId === undefined ? '' : ` for ${jobId}`}`, () => this.of(t, jobId)[0], timeoutMs)
  }
}

export function standInModel (id: string, extra: Partial<AdvertModel> = {}): AdvertModel {
  return { id, skillset: 'stand-in', provider: 'cpu', dtype: 'fp32', device: 'cpu', loaded: true, throughput: 10, queuedCost: 0, ...extra }
}

/** An advert body for `node` serving `models` (its own addresses, so they pass the /p2p/ check). */
export function advertBody (node: Node, models: AdvertModel[]): AdvertBody {
  return {
    hardware: { cpu: { model: 'test cpu', physicalCores: 1, logicalCores: 1, flags: [] }, memoryTotalMB: 1024, gpus: [], providers: ['cpu'] },
    models,
    held: [],
    queueDepth: 0,
    addrs: node.getMultiaddrs().map(String)
  }
}
