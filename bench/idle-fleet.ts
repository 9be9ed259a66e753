/**
 * Benchmark: an idle fleet over minutes. N real worker nodes in P
 * processes (bench/scale-fleet.ts), no jobs; every `--window` seconds, per
 * node: CPU, adverts taken in (first copies) and copies on the wire, peers,
 * and how many loaded workers its table knows (every node should know all
 * N-1). bench/bus.ts measures one 60 s window right after the start; this
 * follows the refresh waves, the settle repeats and the pings that come
 * later, and whether what nodes know stays right. The summary splits the
 * CPU into a baseline (windows with no adverts) and a cost per advert taken
 * in (a least-squares line through all windows).
 *
 *   node bench/idle-fleet.ts [--nodes 64] [--seconds 300] [--window 10] [--procs 4] [--json]
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { tempDir } from '../test/helpers/procs.ts'
import { printTable } from './lib.ts'
import { Fleet } from './scale-fleet.ts'
import type { HostStats } from './scale-proto.ts'

const { values: opts } = parseArgs({
  options: {
    nodes: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '300' },
    window: { type: 'string', default: '10' },
    procs: { type: 'string', default: '4' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  }
})
if (opts.help === true) {
  process.stdout.write(`Usage: node bench/idle-fleet.ts [--nodes N] [--seconds S] [--window W] [--procs P] [--json]
N idle worker nodes in P processes, watched for S seconds in windows of W seconds: CPU per node, adverts taken in,
wire copies, peers, and the loaded workers each node knows. Writes bench/results/idle-fleet-<timestamp>.json
(--json: prints it too).\n`)
  process.exit(0)
}
const whole = (name: string, v: string, min: number): number => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < min) { process.stderr.write(`error ERR_USAGE: --${name}: not a whole number >= ${min}: ${v}\n`); process.exit(2) }
  return n
}
const nodes = whole('nodes', opts.nodes, 2)
const seconds = whole('seconds', opts.seconds, 1)
const windowS = whole('window', opts.window, 1)
const procs = Math.min(whole('procs', opts.procs, 1), nodes)
const t0 = performance.now()
const log = (s: string): void => { process.stderr.write(`${((performance.now() - t0) / 1000).toFixed(1)} s: ${s}\n`) }

interface Window { endS: number, cpuMsPerSecondPerNode: number, advertsInPerSecondPerNode: number, wireCopiesPerSecondPerNode: number, peers: number, knownMin: number, nodesMissingSome: number, pairsMissing: number }
const windows: Window[] = []
const dir = await tempDir('ia-bench-idle-fleet-')
const fleet = new Fleet({ root: join(import.meta.dirname, '..'), dir, hostProcs: procs, clientProcs: 0, soloNodes: 0, msPerItem: 0.05, advertsMs: Number.NaN, failRate: 0 })
let started: Awaited<ReturnType<Fleet['start']>>
let rss = 0
try {
  started = await fleet.start(nodes, log)
  log(`${started.converged ? 'converged' : 'NOT converged'} ${(started.convergedMs / 1000).toFixed(1)} s after the fleet was up; watching ${seconds} s`)
  let prev = await fleet.stats()
  let prevAt = performance.now()
  const cpu = (hs: HostStats[]): number => hs.reduce((s, h) => s + h.cpuMs, 0)
  for (let w = 0; w < Math.ceil(seconds / windowS); w++) {
    await new Promise((resolve) => setTimeout(resolve, windowS * 1000))
    const now = performance.now()
    const stats = await fleet.stats()
    const live = stats.flatMap((h) => h.nodes)
    const before = new Map(prev.flatMap((h) => h.nodes).map((x) => [x.key, x]))
    const dt = (now - prevAt) / 1000
    let inA = 0
    let wire = 0
    for (const x of live) {
      const p = before.get(x.key)
      if (p === undefined) continue
      inA += x.gossipIn.adverts - p.gossipIn.adverts
      wire += x.gossipWire.adverts - p.gossipWire.adverts
    }
    const known = live.map((x) => x.knownWorkers)
    windows.push({
      endS: (now - t0) / 1000,
      cpuMsPerSecondPerNode: (cpu(stats) - cpu(prev)) / dt / live.length,
      advertsInPerSecondPerNode: inA / dt / live.length,
      wireCopiesPerSecondPerNode: wire / dt / live.length,
      peers: live.reduce((s, x) => s + x.peers, 0) / live.length,
      knownMin: Math.min(...known),
      nodesMissingSome: known.filter((k) => k < nodes - 1).length,
      pairsMissing: known.reduce((s, k) => s + Math.max(0, nodes - 1 - k), 0)
    })
    rss = stats.reduce((s, h) => s + h.rss, 0) / 1024 / 1024 / live.length
    prev = stats
    prevAt = now
  }
} finally {
  await fleet.close()
}

const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length)
const quiet = windows.filter((w) => w.advertsInPerSecondPerNode === 0)
// CPU = baseline + perAdvert x adverts taken in, fitted over every window.
const mx = mean(windows.map((w) => w.advertsInPerSecondPerNode))
const my = mean(windows.map((w) => w.cpuMsPerSecondPerNode))
const sxx = windows.reduce((s, w) => s + (w.advertsInPerSecondPerNode - mx) ** 2, 0)
const sxy = windows.reduce((s, w) => s + (w.advertsInPerSecondPerNode - mx) * (w.cpuMsPerSecondPerNode - my), 0)
const perAdvertMs = sxx === 0 ? Number.NaN : sxy / sxx
const summary = {
  cpuMsPerSecondPerNode: my,
  quietWindows: quiet.length,
  quietCpuMsPerSecondPerNode: quiet.length === 0 ? Number.NaN : mean(quiet.map((w) => w.cpuMsPerSecondPerNode)),
  advertsInPerSecondPerNode: mx,
  cpuMsPerAdvertTakenIn: perAdvertMs,
  rssMbPerNode: rss,
  windowsWithSomeoneMissing: windows.filter((w) => w.pairsMissing > 0).length,
  worstPairsMissing: Math.max(0, ...windows.map((w) => w.pairsMissing))
}
printTable(windows.map((w) => ({
  's': w.endS.toFixed(0),
  'cpu ms/s/node': w.cpuMsPerSecondPerNode.toFixed(2),
  'adverts in/s/node': w.advertsInPerSecondPerNode.toFixed(2),
  'wire copies/s/node': w.wireCopiesPerSecondPerNode.toFixed(2),
  peers: w.peers.toFixed(1),
  'known min': String(w.knownMin),
  'nodes missing some': String(w.nodesMissingSome),
  'pairs missing': String(w.pairsMissing)
})))
process.stdout.write(`\n${nodes} idle nodes, fleet up in ${(started.startMs / 1000).toFixed(1)} s, ${started.converged ? 'converged' : 'NOT converged'} ${(started.convergedMs / 1000).toFixed(1)} s later; over ${windows.length} windows of ${windowS} s: ` +
  `${summary.cpuMsPerSecondPerNode.toFixed(2)} ms of CPU a second per node (${summary.quietCpuMsPerSecondPerNode.toFixed(2)} in the ${quiet.length} windows with no advert), ` +
  `${summary.advertsInPerSecondPerNode.toFixed(3)} adverts taken in a second, ~${summary.cpuMsPerAdvertTakenIn.toFixed(1)} ms of CPU each; ${summary.rssMbPerNode.toFixed(0)} MB RSS per node; ` +
  `windows where some node missed a worker: ${summary.windowsWithSomeoneMissing} (worst ${summary.worstPairsMissing} pairs)\n`)
const result = { bench: 'idle-fleet', at: new Date().toISOString(), machine: { cpus: availableParallelism(), loadAverage: loadavg() }, nodes, procs, windowSeconds: windowS, start: started, summary, windows }
const outDir = join(import.meta.dirname, 'results')
await mkdir(outDir, { recursive: true })
const file = join(outDir, `idle-fleet-${result.at.replace(/[:.]/g, '-')}.json`)
await writeFile(file, JSON.stringify(result, null, 2) + '\n')
if (opts.json === true) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
process.stdout.write(`wrote ${file}\n`)
