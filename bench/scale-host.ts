/**
 * A child of bench/scale.ts that hosts several real worker nodes
 * (`WorkerNode`, stand-in skillset) in one process and answers requests on
 * stdin/stdout (bench/scale-proto.ts): start a node, stop one (cleanly),
 * report stats, exit. Every node listens on 127.0.0.1 only, with mDNS and
 * HTTP off. When stdin closes (the benchmark died), it stops its nodes and
 * exits on its own, within a bounded time.
 *
 *   node bench/scale-host.ts --dir /tmp/some-dir
 */
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import type { PeerId } from '@libp2p/interface'
import { configSchema } from '../src/config/schema.ts'
import { WorkerNode } from '../src/node/worker-node.ts'
import type { Adverts } from '../src/p2p/swarm/adverts.ts'
import type { JobWorker } from '../src/p2p/jobs/worker.ts'
import { ADVERTS_TOPIC } from '../src/p2p/wire/protocol.ts'
import { emit, serve } from './scale-proto.ts'
import type { HostStats, Json, NodeStats } from './scale-proto.ts'

const { values: opts } = parseArgs({ options: { dir: { type: 'string' } } })
if (opts.dir === undefined) throw new Error('usage: node bench/scale-host.ts --dir DIR')
const baseDir = opts.dir

interface Hosted {
  key: string
  node: WorkerNode
  slowdown: number
  gossipIn: { adverts: number, offers: number }
  gossipWire: { adverts: number, offers: number }
}

const hosted = new Map<string, Hosted>()
// How late this process's timers run: every node here shares the one event loop.
const lag = monitorEventLoopDelay({ resolution: 10 })
lag.enable()

/** Count gossip per node: delivered messages (first valid copies) and every copy received on the wire. */
function countGossip (h: Hosted): void {
  const pubsub = h.node.libp2p.services.pubsub
  pubsub.addEventListener('message', (evt) => {
    if (evt.detail.topic === ADVERTS_TOPIC) h.gossipIn.adverts++
    else h.gossipIn.offers++
  })
  // Wire copies: wrap the instance's RPC handler (a benchmark-only peek; duplicates never reach 'message').
  const target = pubsub as unknown as { handleReceivedRpc: (from: PeerId, rpc: { messages?: Array<{ topic?: string }> }) => Promise<void> }
  const original = target.handleReceivedRpc.bind(pubsub)
  target.handleReceivedRpc = async (from, rpc) => {
    for (const m of rpc.messages ?? []) {
      if (m.topic === ADVERTS_TOPIC) h.gossipWire.adverts++
      else h.gossipWire.offers++
    }
    await original(from, rpc)
  }
}

async function start (msg: Json): Promise<Json> {
  const key = String(msg.key)
  if (hosted.has(key)) throw new Error(`node ${key} runs already`)
  const slowdown = Number(msg.slowdown ?? 1)
  const dataDir = join(baseDir, key)
  const config = configSchema.parse({
    dataDir,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: msg.bootstrap ?? [],
    mdns: false,
    http: false,
    models: ['demo/stand-in'],
    // No advertsMs (null, or NaN sent as JSON): the node's own default.
    ...(typeof msg.advertsMs === 'number' ? { adverts: { intervalMs: msg.advertsMs } } : {}),
    standIn: { msPerItem: Number(msg.msPerItem), slowdown, failRate: Number(msg.failRate ?? 0) },
    logLevel: 'warn'
  })
  const t0 = performance.now()
  const node = new WorkerNode(config)
  const info = await node.start()
  const h: Hosted = { key, node, slowdown, gossipIn: { adverts: 0, offers: 0 }, gossipWire: { adverts: 0, offers: 0 } }
  countGossip(h)
  hosted.set(key, h)
  const addr = info.multiaddrs.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/')) ?? info.multiaddrs[0]
  return { key, peerId: info.peerId, addr, ms: Math.round(performance.now() - t0) }
}

function statsOf (h: Hosted): NodeStats {
  // Benchmark-only reads of the node's private parts (element access): the figures the issue asks for.
  const worker = h.node['jobWorker'] as JobWorker | undefined
  const adverts = h.node['adverts'] as Adverts | undefined
  let peers = 0
  try {
    peers = h.node.libp2p.getPeers().length
  } catch (err) {
    void err // stopped: no peers
  }
  return {
    key: h.key,
    peerId: h.node.info().peerId,
    slowdown: h.slowdown,
    jobs: { ...(worker?.stats ?? {}) },
    depth: h.node['queueDepth'](),
    held: worker?.held ?? 0,
    knownWorkers: adverts?.serving('stand-in', 'demo/stand-in').length ?? 0,
    peers,
    gossipIn: { ...h.gossipIn },
    gossipWire: { ...h.gossipWire }
  }
}

function hostStats (resetLag: boolean): HostStats {
  const mem = process.memoryUsage()
  const cpu = process.cpuUsage()
  const loopLag = { p50: lag.percentile(50) / 1e6, p99: lag.percentile(99) / 1e6, max: lag.max / 1e6 }
  if (resetLag) lag.reset()
  return { pid: process.pid, rss: mem.rss, heapUsed: mem.heapUsed, cpuMs: (cpu.user + cpu.system) / 1000, loopLag, nodes: [...hosted.values()].map(statsOf) }
}

async function stop (key: string, graceMs: number): Promise<Json> {
  const h = hosted.get(key)
  if (h === undefined) throw new Error(`no node ${key} here`)
  const last = statsOf(h)
  await h.node.stop(graceMs)
  hosted.delete(key)
  return { key, last: { ...statsOf(h), knownWorkers: last.knownWorkers, peers: last.peers } }
}

let exiting: Promise<void> | undefined
async function stopAll (): Promise<void> {
  exiting ??= (async () => {
    // Never hang: whatever has not stopped in 30 s is cut off by the exit.
    const hard = setTimeout(() => { process.exit(2) }, 30_000)
    hard.unref()
    await Promise.allSettled([...hosted.values()].map(async (h) => { await h.node.stop(2000) }))
    hosted.clear()
    await rm(baseDir, { recursive: true, force: true }).catch((err: unknown) => { process.stderr.write(`could not remove ${baseDir}: ${(err as Error).message}\n`) })
  })()
  await exiting
}

serve(async (msg) => {
  switch (msg.cmd) {
    case 'start': return await start(msg)
    case 'stop': return await stop(String(msg.key), Number(msg.graceMs ?? 10_000))
    case 'stats': return { stats: hostStats(msg.resetLag === true) }
    case 'exit':
      await stopAll()
      setImmediate(() => { process.exit(0) })
      return {}
    default: throw new Error(`unknown command ${String(msg.cmd)}`)
  }
}, () => { void stopAll().finally(() => { process.exit(0) }) })
emit({ ready: true, pid: process.pid })
