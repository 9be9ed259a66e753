/**
 * A child of bench/scale.ts that runs short-lived clients: each a real
 * `ClientNode` (listening nowhere, mDNS off) that joins through ONE node,
 * submits its few stand-in jobs at once, checks every digest, and stops.
 * bench/scale.ts sends the clients as they fall due (`clients`, each with
 * its start time), so many are alive at once; outcomes go back in batches
 * (`jobs` events). `drain` answers once every client sent so far is done.
 *
 * Every wait is bounded: a job that has neither a result nor an error
 * `timeoutMs + 15 s` after its client started is reported as lost and
 * left behind.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { PeerId } from '@libp2p/interface'
import { standInDigest } from '../skillsets/stand-in/index.ts'
import { errorCode, errorMessage } from '../src/errors.ts'
import { ClientNode } from '../src/node/client-node.ts'
import type { Libp2p } from '@libp2p/interface'
import type { NodeServices } from '../src/p2p/swarm/libp2p.ts'
import { ADVERTS_TOPIC } from '../src/p2p/wire/protocol.ts'
import { emit, serve } from './scale-proto.ts'
import type { JobOutcome, Json, Knobs } from './scale-proto.ts'

/** `keep`: a client that stays (bench/scale.ts --long-lived): joined once, kept until the scenario's drain. */
interface ClientSpec { at: number, via: string, jobs: Array<{ items: number, tag: string }>, keep?: string }

const LOST_GRACE_MS = 15_000

let knobs: Knobs = {}
let timeoutMs = 60_000
const running = new Set<Promise<void>>()
let outbox: JobOutcome[] = []
const sums: Record<string, number> = {}
const summary = { clients: 0, joinFailed: 0, maxAlive: 0, startLagMs: [] as number[], joinMs: [] as number[], gossipIn: { adverts: 0, offers: 0 }, gossipWire: { adverts: 0, offers: 0 } }
let alive = 0
// How late this process's timers run (every client here shares the event loop, and its timings with it).
const lag = monitorEventLoopDelay({ resolution: 10 })
lag.enable()

const flusher = setInterval(flush, 250)
flusher.unref()
function flush (): void {
  if (outbox.length === 0) return
  emit({ ev: 'jobs', outcomes: outbox })
  outbox = []
}

function countGossip (libp2p: Libp2p<NodeServices>): void {
  const pubsub = libp2p.services.pubsub
  pubsub.addEventListener('message', (evt) => {
    if (evt.detail.topic === ADVERTS_TOPIC) summary.gossipIn.adverts++
    else summary.gossipIn.offers++
  })
  const target = pubsub as unknown as { handleReceivedRpc: (from: PeerId, rpc: { messages?: Array<{ topic?: string }> }) => Promise<void> }
  const original = target.handleReceivedRpc.bind(pubsub)
  target.handleReceivedRpc = async (from, rpc) => {
    for (const m of rpc.messages ?? []) {
      if (m.topic === ADVERTS_TOPIC) summary.gossipWire.adverts++
      else summary.gossipWire.offers++
    }
    await original(from, rpc)
  }
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
}

async function runJob (client: ClientNode, j: { items: number, tag: string }): Promise<JobOutcome> {
  const input = { items: j.items, tag: j.tag }
  try {
    const r = await client.submit({ skillset: 'stand-in', model: 'demo/stand-in', input, cost: j.items, timeoutMs })
    const got = r.output.digest
    const want = standInDigest(input)
    const digestOk = got instanceof Uint8Array && Buffer.from(got).equals(Buffer.from(want))
    return { tag: j.tag, items: j.items, ok: true, jobId: r.jobId, worker: r.worker, digestOk, bidMs: r.timings.bidMs, totalMs: r.timings.totalMs, rounds: r.timings.rounds, attempts: r.timings.attempts }
  } catch (err) {
    return { tag: j.tag, items: j.items, ok: false, code: errorCode(err), message: errorMessage(err).slice(0, 300) }
  }
}

/** Clients that stay, by key: joined on first use, stopped at the scenario's drain. */
const kept = new Map<string, Promise<ClientNode>>()

async function join (c: ClientSpec): Promise<ClientNode> {
  const client = new ClientNode({ bootstrap: [c.via], mdns: false, jobs: knobs })
  const t0 = performance.now()
  try {
    await client.start()
    summary.joinMs.push(performance.now() - t0)
    countGossip(client['libp2p'] as Libp2p<NodeServices>)
  } catch (err) {
    summary.joinFailed++
    process.stderr.write(`client could not join through ${c.via}: ${errorMessage(err)}\n`)
  }
  return client
}

async function stopClient (client: ClientNode): Promise<void> {
  for (const [k, v] of Object.entries(client.stats ?? {})) sums[k] = (sums[k] ?? 0) + v
  let timer: NodeJS.Timeout | undefined
  await Promise.race([client.stop(), new Promise((resolve) => { timer = setTimeout(resolve, 10_000) })]).catch((err: unknown) => {
    process.stderr.write(`client stop failed: ${errorMessage(err)}\n`)
  })
  clearTimeout(timer)
}

async function runKept (c: ClientSpec, key: string): Promise<void> {
  let client = kept.get(key)
  if (client === undefined) {
    summary.clients++
    client = join(c)
    kept.set(key, client)
  }
  const node = await client
  // Awaited first, pushed after: `outbox.push(await ...)` would push into the array flush() already sent and replaced.
  await Promise.all(c.jobs.map(async (j) => { const o = await bounded(node, j); outbox.push(o) }))
}

/** A job's outcome, or LOST when neither a result nor an error came in time. */
async function bounded (client: ClientNode, j: { items: number, tag: string }): Promise<JobOutcome> {
  let timer: NodeJS.Timeout | undefined
  const lost = new Promise<JobOutcome>((resolve) => {
    timer = setTimeout(() => { resolve({ tag: j.tag, items: j.items, ok: false, code: 'LOST', message: 'neither a result nor an error in time' }) }, timeoutMs + LOST_GRACE_MS)
  })
  const o = await Promise.race([runJob(client, j), lost])
  clearTimeout(timer)
  return o
}

async function runClient (c: ClientSpec): Promise<void> {
  await sleep(c.at - Date.now())
  summary.startLagMs.push(Date.now() - c.at)
  if (c.keep !== undefined) { await runKept(c, c.keep); return }
  summary.clients++
  alive++
  summary.maxAlive = Math.max(summary.maxAlive, alive)
  const client = await join(c)
  try {
    await Promise.all(c.jobs.map(async (j) => { const o = await bounded(client, j); outbox.push(o) }))
  } finally {
    alive--
    await stopClient(client)
  }
}

async function drain (maxMs: number): Promise<Json> {
  const until = performance.now() + maxMs
  while (running.size > 0 && performance.now() < until) {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.allSettled([...running]), new Promise((resolve) => { timer = setTimeout(resolve, Math.max(0, until - performance.now())) })])
    clearTimeout(timer)
  }
  // The scenario is over: clients that stayed leave now (their stats counted).
  const stay = [...kept.values()]
  kept.clear()
  for (const c of stay) await stopClient(await c)
  flush()
  const cpu = process.cpuUsage()
  const loopLag = { p50: lag.percentile(50) / 1e6, p99: lag.percentile(99) / 1e6, max: lag.max / 1e6 }
  lag.reset()
  const out = { left: running.size, cpuMs: (cpu.user + cpu.system) / 1000, rss: process.memoryUsage().rss, loopLag, clientStats: { ...sums }, ...summary, startLagMs: [...summary.startLagMs], joinMs: [...summary.joinMs] }
  // Counters start again for the next scenario.
  for (const k of Object.keys(sums)) delete sums[k]
  Object.assign(summary, { clients: 0, joinFailed: 0, maxAlive: 0, startLagMs: [], joinMs: [], gossipIn: { adverts: 0, offers: 0 }, gossipWire: { adverts: 0, offers: 0 } })
  return out
}

serve(async (msg) => {
  switch (msg.cmd) {
    case 'config':
      knobs = (msg.knobs ?? {}) as Knobs
      timeoutMs = Number(msg.timeoutMs ?? 60_000)
      return {}
    case 'clients':
      for (const c of msg.list as ClientSpec[]) {
        const p: Promise<void> = runClient(c).catch((err: unknown) => { process.stderr.write(`client failed: ${errorMessage(err)}\n`) }).finally(() => { running.delete(p) })
        running.add(p)
      }
      return undefined
    case 'drain': return await drain(Number(msg.maxMs ?? 120_000))
    case 'exit':
      await drain(5000)
      setImmediate(() => { process.exit(0) })
      return {}
    default: throw new Error(`unknown command ${String(msg.cmd)}`)
  }
}, () => { setTimeout(() => { process.exit(0) }, 100) })
emit({ ready: true, pid: process.pid })
