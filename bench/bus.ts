/**
 * Benchmark: what the job bus costs when inference is nearly free. The
 * `stand-in` skillset at GPU speed (msPerItem 0.05, on a timer), one
 * long-lived client in this process and one worker process; one-item jobs
 * at each concurrency, and the same jobs through a local ModelQueue and
 * runner (the worker's own scheduling path, no bus) as the baseline, in the
 * same run. With `--idle-nodes N`, N real nodes (scale-host processes) that
 * get no jobs, measured over `--idle-seconds` once every node knows every
 * other worker. Prints a table; writes bench/results/bus-<timestamp>.json.
 *
 * Targets (issue "fast bus"): one-job overhead p50 <= 1 ms over the local
 * runner; client + worker CPU per job <= 0.5 ms at 256 in flight; an idle
 * node <= 1 ms of CPU a second with 64 nodes.
 *
 *   npm run bench:bus -- [--concurrency 1,32,256] [--jobs N] [--idle-nodes 64]
 */
import { readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { configSchema } from '../src/config/schema.ts'
import type { ExecutionPlan } from '../src/interfaces/index.ts'
import { ClientNode } from '../src/node/client-node.ts'
import { LocalRunner } from '../src/scheduler/local-runner.ts'
import { ModelQueue } from '../src/scheduler/model-queue.ts'
import { createStandInSkillset } from '../skillsets/stand-in/index.ts'
import { startWorker, stopProc, tempDir } from '../test/helpers/procs.ts'
import { silentLog } from '../test/helpers/p2p-nodes.ts'
import { median, percentile, printTable } from './lib.ts'
import { Fleet } from './scale-fleet.ts'

const { values: opts } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '1,32,256' },
    jobs: { type: 'string', default: '3000' },
    'one-jobs': { type: 'string', default: '300' },
    'ms-per-item': { type: 'string', default: '0.05' },
    'idle-nodes': { type: 'string', default: '0' },
    'idle-seconds': { type: 'string', default: '60' },
    'idle-procs': { type: 'string', default: '4' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  }
})
if (opts.help === true) {
  process.stdout.write(`Usage: node bench/bus.ts [--concurrency 1,32,256] [--jobs N] [--one-jobs N] [--ms-per-item MS] [--idle-nodes N] [--idle-seconds S] [--idle-procs P] [--json]
One-item stand-in jobs through one worker over the swarm and through a local queue and runner, in one run:
one-job overhead (p50, p99), jobs/s and CPU per job (client + worker) at each concurrency.
--idle-nodes N also starts N nodes in P processes and measures their CPU and memory over S seconds with no jobs.
Writes bench/results/bus-<timestamp>.json (--json: prints it too).\n`)
  process.exit(0)
}
const positive = (name: string, v: string): number => {
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) { process.stderr.write(`error ERR_USAGE: --${name}: not a number >= 0: ${v}\n`); process.exit(2) }
  return n
}
const levels = opts.concurrency.split(',').map((c) => positive('concurrency', c))
const jobs = positive('jobs', opts.jobs)
const oneJobs = positive('one-jobs', opts['one-jobs'])
const msPerItem = positive('ms-per-item', opts['ms-per-item'])
const idleNodes = positive('idle-nodes', opts['idle-nodes'])
const idleSeconds = positive('idle-seconds', opts['idle-seconds'])
const log = (s: string): void => { process.stderr.write(`${s}\n`) }

/** CPU ms (user + system) of another process, from /proc (clock ticks). */
const TICK_MS = 10
function procCpuMs (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) * TICK_MS
}
const selfCpuMs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }

// The baseline: the worker's scheduling path in this process, no bus.
const standIn = createStandInSkillset()
const scheduler = configSchema.parse({}).scheduler
const plan: ExecutionPlan = { modelId: 'demo/stand-in', device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] }
const runner = new LocalRunner({ skillset: standIn, model: { id: 'demo/stand-in', localModelPath: '/nonexistent' }, plan, loadOptions: { nodeConfig: { standIn: { msPerItem } } }, log: silentLog })
await runner.start()
const queue = new ModelQueue({ modelId: 'demo/stand-in', skillset: standIn, runners: [runner], maxBatchCost: scheduler.maxBatchCost, maxQueuedJobs: scheduler.maxQueuedJobs, maxQueuedCost: scheduler.maxQueuedCost, log: silentLog })
const local = async (i: number): Promise<void> => { await queue.submit(standIn.parseInput({ items: 1, tag: `l${i}` }), { deadline: performance.now() + 60_000 }) }

log(`starting a stand-in worker (msPerItem ${msPerItem})...`)
const worker = await startWorker({ models: 'demo/stand-in', config: { standIn: { msPerItem } }, env: { IPFS_ACCELERATE_LOG_LEVEL: 'warn' } })
const workerPid = worker.proc.pid!
const client = new ClientNode({ bootstrap: [worker.multiaddrs[0]!], mdns: false })
await client.start()
const swarm = async (i: number): Promise<void> => {
  await client.submit({ skillset: 'stand-in', input: { items: 1, tag: `s${i}` }, cost: 1, timeoutMs: 60_000 })
}

async function run (fn: (i: number) => Promise<void>, n: number, concurrency: number): Promise<{ ms: number, latencies: number[] }> {
  let next = 0
  const latencies: number[] = []
  const t0 = performance.now()
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n) {
      const i = next++
      const s = performance.now()
      await fn(i)
      latencies.push(performance.now() - s)
    }
  }))
  return { ms: performance.now() - t0, latencies }
}

// Warm both paths (connections, JIT).
await run(local, 200, 32)
await run(swarm, 500, 32)

// One job at a time, interleaved.
const oneLocal: number[] = []
const oneSwarm: number[] = []
for (let i = 0; i < oneJobs; i++) {
  oneLocal.push((await run(local, 1, 1)).latencies[0]!)
  oneSwarm.push((await run(swarm, 1, 1)).latencies[0]!)
}

interface Level { roundsPerJob: number, directOffersPerJob: number, gossipOffersPerJob: number, concurrency: number, jobsPerSecond: number, localJobsPerSecond: number, ratio: number, cpuMsPerJob: number, clientCpuMsPerJob: number, workerCpuMsPerJob: number, p50Ms: number, p99Ms: number }
const throughput: Level[] = []
for (const c of levels) {
  const n = c === 1 ? Math.min(jobs, 1000) : jobs
  const l = await run(local, n, c)
  const cpu0 = { client: selfCpuMs(), worker: procCpuMs(workerPid) }
  const st0 = { ...client.stats! }
  const s = await run(swarm, n, c)
  const st = client.stats!
  const clientMs = selfCpuMs() - cpu0.client
  const workerMs = procCpuMs(workerPid) - cpu0.worker
  const rate = n / (s.ms / 1000)
  const localRate = n / (l.ms / 1000)
  throughput.push({ roundsPerJob: (st.rounds - st0.rounds) / n, directOffersPerJob: (st.directOffers - st0.directOffers) / n, gossipOffersPerJob: (st.gossipOffers - st0.gossipOffers) / n, concurrency: c, jobsPerSecond: rate, localJobsPerSecond: localRate, ratio: rate / localRate, cpuMsPerJob: (clientMs + workerMs) / n, clientCpuMsPerJob: clientMs / n, workerCpuMsPerJob: workerMs / n, p50Ms: median(s.latencies), p99Ms: percentile(s.latencies, 0.99) })
}

const workerJobs = ((await (await fetch(`${worker.httpUrl}/healthz`)).json()) as { jobs: Record<string, number> }).jobs
log(`worker counters: ${JSON.stringify(workerJobs)}`)
log(`client counters: ${JSON.stringify(client.stats)}`)
await client.stop()
await stopProc(worker.proc)
await queue.drain(1000)
await runner.stop()

let idle: { nodes: number, seconds: number, cpuMsPerSecondPerNode: number, rssMbPerNode: number, startMs: number, convergedMs: number, converged: boolean } | undefined
if (idleNodes > 0) {
  const dir = await tempDir('ia-bench-bus-')
  const fleet = new Fleet({ root: join(import.meta.dirname, '..'), dir, hostProcs: Math.max(1, Math.min(Number(opts['idle-procs']), idleNodes)), clientProcs: 0, soloNodes: 0, msPerItem, advertsMs: Number.NaN, failRate: 0 })
  try {
    const started = await fleet.start(idleNodes, log)
    log(`idle: ${idleNodes} nodes up in ${(started.startMs / 1000).toFixed(1)} s, ${started.converged ? 'converged' : 'NOT converged'} in ${(started.convergedMs / 1000).toFixed(1)} s; measuring ${idleSeconds} s with no jobs`)
    const before = await fleet.stats()
    const t0 = performance.now()
    await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000))
    const after = await fleet.stats()
    const seconds = (performance.now() - t0) / 1000
    const cpu = (hs: typeof before): number => hs.reduce((s, h) => s + h.cpuMs, 0)
    const nodes = after.reduce((s, h) => s + h.nodes.length, 0)
    idle = { nodes, seconds, cpuMsPerSecondPerNode: (cpu(after) - cpu(before)) / seconds / nodes, rssMbPerNode: after.reduce((s, h) => s + h.rss, 0) / 1024 / 1024 / nodes, startMs: started.startMs, convergedMs: started.convergedMs, converged: started.converged }
  } finally {
    await fleet.close()
  }
}

const overheadP50 = median(oneSwarm) - median(oneLocal)
const overheadP99 = percentile(oneSwarm, 0.99) - percentile(oneLocal, 0.99)
process.stdout.write(`\nbus: stand-in at msPerItem ${msPerItem}, one worker process, one long-lived client; ${jobs} one-item jobs per level (1000 at concurrency 1)\n`)
printTable([
  { path: 'one job, local', 'p50 ms': median(oneLocal).toFixed(2), 'p99 ms': percentile(oneLocal, 0.99).toFixed(2) },
  { path: 'one job, swarm', 'p50 ms': median(oneSwarm).toFixed(2), 'p99 ms': percentile(oneSwarm, 0.99).toFixed(2) },
  { path: 'overhead', 'p50 ms': overheadP50.toFixed(2), 'p99 ms': overheadP99.toFixed(2) }
])
process.stdout.write('\n')
printTable(throughput.map((t) => ({
  concurrency: String(t.concurrency),
  'jobs/s swarm': t.jobsPerSecond.toFixed(0),
  'jobs/s local': t.localJobsPerSecond.toFixed(0),
  'swarm/local': t.ratio.toFixed(2),
  'cpu ms/job': t.cpuMsPerJob.toFixed(3),
  client: t.clientCpuMsPerJob.toFixed(3),
  worker: t.workerCpuMsPerJob.toFixed(3),
  'p99 ms': t.p99Ms.toFixed(1),
  'rounds/job': t.roundsPerJob.toFixed(2),
  'offers/job': `${t.directOffersPerJob.toFixed(2)}+${t.gossipOffersPerJob.toFixed(2)}g`
})))
if (idle !== undefined) process.stdout.write(`\nidle: ${idle.nodes} nodes over ${idle.seconds.toFixed(0)} s: ${idle.cpuMsPerSecondPerNode.toFixed(2)} ms of CPU a second and ${idle.rssMbPerNode.toFixed(0)} MB RSS per node (fleet up in ${(idle.startMs / 1000).toFixed(1)} s)\n`)
const at256 = throughput.find((t) => t.concurrency === 256)
const verdict = (v: number | undefined, goal: number): string => v === undefined ? 'not measured' : `${v.toFixed(2)} ${v <= goal ? 'MET' : 'NOT MET'}`
process.stdout.write(`targets: overhead p50 <= 1 ms: ${verdict(overheadP50, 1)}; cpu/job <= 0.5 ms at 256: ${verdict(at256?.cpuMsPerJob, 0.5)}; idle <= 1 ms/s per node at 64: ${verdict(idle?.cpuMsPerSecondPerNode, 1)}\n`)

const result = {
  bench: 'bus',
  at: new Date().toISOString(),
  msPerItem,
  machine: { cpus: availableParallelism(), loadAverage: loadavg() },
  oneJob: { jobs: oneJobs, localP50Ms: median(oneLocal), localP99Ms: percentile(oneLocal, 0.99), swarmP50Ms: median(oneSwarm), swarmP99Ms: percentile(oneSwarm, 0.99), overheadP50Ms: overheadP50, overheadP99Ms: overheadP99 },
  throughput,
  ...(idle === undefined ? {} : { idle })
}
const outDir = join(import.meta.dirname, 'results')
await mkdir(outDir, { recursive: true })
const file = join(outDir, `bus-${result.at.replace(/[:.]/g, '-')}.json`)
await writeFile(file, JSON.stringify(result, null, 2) + '\n')
if (opts.json === true) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
process.stdout.write(`wrote ${file}\n`)
