/**
 * Benchmark: a fleet on one machine. N real worker nodes (stand-in
 * skillset: jobs run on timers, no CPU work) in a few host processes, and
 * short-lived real clients in other processes, each joining through one
 * random node and submitting a few jobs. Scenarios per N: steady load at
 * 50% and 90% of capacity, a 10x burst, 10% of nodes leaving (half stopped
 * cleanly, half killed) and 10% joining, and one node 10x slower. Every
 * result is checked against its digest. Prints a table; writes JSON under
 * bench/results/. See docs/performance.md for what each figure means.
 *
 *   npm run bench:scale -- --quick        (a couple of minutes)
 *   npm run bench:scale                   (the full run)
 *   node bench/scale.ts --help
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { printTable } from './lib.ts'
import { Fleet } from './scale-fleet.ts'
import type { Knobs } from './scale-proto.ts'
import { runScenario, SCENARIOS } from './scale-run.ts'
import type { RunSettings, ScenarioName, ScenarioResult } from './scale-run.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    nodes: { type: 'string' },
    scenarios: { type: 'string' },
    jobs: { type: 'string' },
    'main-jobs': { type: 'string' },
    rate: { type: 'string' },
    'ms-per-item': { type: 'string' },
    items: { type: 'string', default: '1-8' },
    'jobs-per-client': { type: 'string', default: '5' },
    'long-lived': { type: 'string' },
    procs: { type: 'string', default: '4' },
    'client-procs': { type: 'string', default: '2' },
    'adverts-ms': { type: 'string', default: '5000' },
    'timeout-ms': { type: 'string', default: '60000' },
    'fail-rate': { type: 'string', default: '0' },
    seed: { type: 'string', default: '1' },
    'max-minutes': { type: 'string', default: '30' },
    fanout: { type: 'string' },
    'bid-window-ms': { type: 'string' },
    'max-bid-window-ms': { type: 'string' },
    'round-ms': { type: 'string' },
    'max-round-ms': { type: 'string' },
    'heartbeat-ms': { type: 'string' },
    'min-lease-ms': { type: 'string' },
    label: { type: 'string' },
    dump: { type: 'boolean' },
    variant: { type: 'string' },
    help: { type: 'boolean', short: 'h' }
  }
})

if (opts.help === true) {
  process.stdout.write(`Usage: node bench/scale.ts [--quick] [--nodes 8,32,64] [--scenarios ${SCENARIOS.join(',')}]
  [--jobs N (per scenario)] [--main-jobs N (steady50 at the largest N)] [--rate JOBS/S at 100% load | --ms-per-item MS]
  [--items MIN-MAX] [--jobs-per-client K | --long-lived C (C clients that stay, one job at a time as each falls due)] [--procs P] [--client-procs C] [--adverts-ms MS] [--timeout-ms MS]
  [--fail-rate R] [--seed S] [--max-minutes M] [--label TEXT] [--dump (every job outcome to a .jsonl beside the JSON)]
  [--variant 'roundMs=1000,jobsPerClient=10' (each scenario twice on one fleet: base, then variant, marked *)]
  job-client knobs: [--fanout N] [--bid-window-ms MS] [--max-bid-window-ms MS] [--round-ms MS] [--max-round-ms MS] [--heartbeat-ms MS] [--min-lease-ms MS]
Capacity = N nodes x 1000/msPerItem items/s (one runner per node). With --rate, msPerItem is chosen per N so that
100% load is RATE jobs/s whatever N (the CPU cost of the protocol stays the same; the swarm grows).\n`)
  process.exit(0)
}

const quick = opts.quick === true
const nodesList = (opts.nodes ?? (quick ? '8' : '8,32,64')).split(',').map(Number)
const scenarios = (opts.scenarios ?? SCENARIOS.join(',')).split(',') as ScenarioName[]
for (const s of scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}: one of ${SCENARIOS.join(', ')}`)
const [minItems, maxItems] = opts.items.split('-').map(Number) as [number, number]
const knobs: Knobs = {}
const knobFlags: Array<[keyof Knobs, string | undefined]> = [['fanout', opts.fanout], ['bidWindowMs', opts['bid-window-ms']], ['maxBidWindowMs', opts['max-bid-window-ms']], ['roundMs', opts['round-ms']], ['maxRoundMs', opts['max-round-ms']], ['heartbeatMs', opts['heartbeat-ms']], ['minLeaseMs', opts['min-lease-ms']]]
for (const [k, v] of knobFlags) if (v !== undefined) knobs[k] = Number(v)
// --variant 'roundMs=1000,fanout=2': every scenario runs twice on the same fleet, base then variant, for a before/after
// comparison that shares the machine's conditions (jobsPerClient=K and longLived=C are accepted too).
const longLived = opts['long-lived'] === undefined ? undefined : Number(opts['long-lived'])
if (longLived !== undefined && !(Number.isInteger(longLived) && longLived >= 1 && longLived <= 256)) {
  process.stderr.write(`error ERR_USAGE: --long-lived: a whole number of clients from 1 to 256: ${opts['long-lived']}\n`)
  process.exit(2)
}
const variant: Knobs & { jobsPerClient?: number, longLived?: number } | undefined = opts.variant === undefined
  ? undefined
  : Object.fromEntries(opts.variant.split(',').map((kv) => { const [k, v] = kv.split('='); return [k!.trim(), Number(v)] }))
// Defaults sized for a 2-core machine: a short-lived client costs ~150-250 ms of CPU (dials, handshakes), see docs/performance.md.
const rate = Number(opts.rate ?? '20')
const jobs = Number(opts.jobs ?? (quick ? '150' : '400'))
const mainJobs = Number(opts['main-jobs'] ?? (quick || opts.jobs !== undefined ? String(jobs) : '2000'))
const largest = Math.max(...nodesList)
const t0 = performance.now()
const maxMs = Number(opts['max-minutes']) * 60_000
const log = (s: string): void => { process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}\n`) }

const results: ScenarioResult[] = []
const dumped: Array<Record<string, unknown>> = []
const fleets: Array<{ nodes: number, msPerItem: number, startMs: number, convergedMs: number, converged: boolean }> = []
let fleet: Fleet | undefined
const hardStop = setTimeout(() => {
  log(`--max-minutes ${opts['max-minutes']} passed: killing every process and writing what there is`)
  fleet?.killAll()
  void finish(true).finally(() => { process.exit(3) })
}, maxMs)
hardStop.unref()
process.once('SIGINT', () => { fleet?.killAll(); process.exit(130) })

const baseDir = await mkdtemp(join(tmpdir(), 'ia-scale-'))
try {
  for (const n of nodesList) {
    const meanItems = (minItems + maxItems) / 2
    const msPerItem = opts['ms-per-item'] !== undefined ? Number(opts['ms-per-item']) : Math.round(n * 1000 / (rate * meanItems) * 10) / 10
    const capacityJobs = n * 1000 / msPerItem / meanItems
    const churnLeaves = scenarios.includes('churn') ? Math.max(1, Math.round(n / 10)) : 0
    fleet = new Fleet({ root: ROOT, dir: join(baseDir, `n${n}`), hostProcs: Math.min(Number(opts.procs), n), clientProcs: Number(opts['client-procs']), soloNodes: Math.ceil(churnLeaves / 2), msPerItem, advertsMs: Number(opts['adverts-ms']), failRate: Number(opts['fail-rate']) })
    log(`N=${n}: msPerItem ${msPerItem} ms, capacity ${(n * 1000 / msPerItem).toFixed(0)} items/s = ${capacityJobs.toFixed(1)} jobs/s`)
    let started: Awaited<ReturnType<Fleet['start']>>
    try {
      started = await fleet.start(n, log)
    } catch (err) {
      log(`N=${n}: the fleet did not start (${(err as Error).message.split('\n')[0]}): skipping this N`)
      fleet.killAll()
      fleet = undefined
      continue
    }
    fleets.push({ nodes: n, msPerItem, ...started })
    if (!started.converged) log(`fleet did not converge within 60 s (continuing)`)
    for (const c of fleet.clients) await c.request({ cmd: 'config', knobs, timeoutMs: Number(opts['timeout-ms']) }, 10_000)
    for (const s of scenarios) {
      if (performance.now() - t0 > maxMs - 60_000) { log(`skipping ${s} at N=${n}: out of time`); continue }
      for (const v of variant === undefined ? [undefined] : [undefined, variant]) {
        const { jobsPerClient: vJobsPerClient, longLived: vLongLived, ...vKnobs } = v ?? {}
        for (const c of fleet.clients) await c.request({ cmd: 'config', knobs: { ...knobs, ...vKnobs }, timeoutMs: Number(opts['timeout-ms']) }, 10_000)
        const settings: RunSettings = { n, scenario: s, jobs: s === 'steady50' && n === largest ? mainJobs : jobs, capacityJobs, msPerItem, minItems, maxItems, jobsPerClient: vJobsPerClient ?? Number(opts['jobs-per-client']), ...(vLongLived ?? longLived) === undefined ? {} : { longLived: vLongLived ?? longLived }, timeoutMs: Number(opts['timeout-ms']), seed: Number(opts.seed) }
        const label = v === undefined ? s : `${s}*`
        log(`N=${n} ${label}: ${settings.jobs} jobs${v === undefined ? '' : ` with ${opts.variant}`}`)
        const r = await runScenario(fleet, settings, log, opts.dump === true ? (o) => { dumped.push(...o.map((x) => ({ n, scenario: label, ...x }))) } : undefined)
        results.push(v === undefined ? r : { ...r, variant: opts.variant })
        log(`N=${n} ${label}: ${r.completed}/${r.jobs} done, lost ${r.lost}, timeouts ${r.timeouts}, failed ${r.failed}, dup ${r.duplicated}, bid p99 ${r.bidMs.p99.toFixed(1)} ms, ${r.durationS.toFixed(0)} s`)
      }
    }
    await fleet.close()
    fleet = undefined
  }
} finally {
  fleet?.killAll()
  await rm(baseDir, { recursive: true, force: true }).catch((err: unknown) => { process.stderr.write(`could not remove ${baseDir}: ${(err as Error).message}\n`) })
}
await finish(false)
clearTimeout(hardStop)

async function finish (partial: boolean): Promise<void> {
  const fmt = (x: number, d = 1): string => Number.isFinite(x) ? x.toFixed(d) : '-'
  process.stdout.write(`\nscale: ${nodesList.join(',')} nodes, items ${minItems}-${maxItems}, ${longLived === undefined ? `${opts['jobs-per-client']} jobs/client` : `${longLived} long-lived clients`}, 100% load = ${rate} jobs/s${Object.keys(knobs).length > 0 ? `, knobs ${JSON.stringify(knobs)}` : ''}${partial ? ' (PARTIAL)' : ''}\n`)
  printTable(results.map((r) => ({
    N: String(r.n),
    scenario: r.variant === undefined ? r.scenario : `${r.scenario}*`,
    jobs: String(r.jobs),
    done: String(r.completed),
    lost: String(r.lost),
    tmo: String(r.timeouts),
    failed: String(r.failed),
    dup: String(r.duplicated),
    'exec/job': fmt(r.executionsPerJob, 3),
    'bid p50': fmt(r.bidMs.p50),
    'bid p99': fmt(r.bidMs.p99),
    'total p50': fmt(r.totalMs.p50, 0),
    'total p99': fmt(r.totalMs.p99, 0),
    'fair max/mean': fmt(r.fairness.maxOverMean, 2),
    'slow share': r.fairness.slowShare === undefined ? '-' : fmt(r.fairness.slowShare, 2),
    'gossip/job': fmt(r.gossip.perJob, 0),
    'MB/node': fmt(r.memory.mbPerNode, 0),
    'cpu ms/job': fmt(r.cpu.msPerJob, 1),
    'cpu%/other%': `${fmt(r.cpu.loadPct, 0)}/${r.cpu.otherPct === undefined ? '-' : fmt(r.cpu.otherPct, 0)}`,
    'lag p99 n/c': `${fmt(r.loopLag.nodesP99, 0)}/${fmt(r.loopLag.clientsP99, 0)}`,
    s: fmt(r.durationS, 0)
  })))
  const elapsedS = (performance.now() - t0) / 1000
  if (variant !== undefined) process.stdout.write(`* = variant ${opts.variant}\n`)
  process.stdout.write(`\nrun time ${(elapsedS / 60).toFixed(1)} min\n`)
  const main = results.find((r) => r.n === largest && r.scenario === 'steady50')
  if (main !== undefined) {
    const slow = results.find((r) => r.n === largest && r.scenario === 'slow')
    process.stdout.write(`goal at ${largest} nodes: ${main.jobs} jobs (10000 asked), lost ${main.lost + main.timeouts} (0), dup ${main.duplicated} (0), offer->lease p99 ${fmt(main.bidMs.p99)} ms (<= 50) ${main.bidMs.p99 <= 50 ? 'MET' : 'NOT MET'}${slow?.fairness.slowShare === undefined ? '' : `; slow node share ${fmt(slow.fairness.slowShare, 2)} of the mean (< 1)`}\n`)
  }
  const out = {
    bench: 'scale',
    at: new Date().toISOString(),
    label: opts.label,
    partial,
    runTimeS: elapsedS,
    machine: { cpus: availableParallelism(), model: cpus()[0]?.model, memGiB: totalmem() / 2 ** 30, loadAverage: loadavg(), node: process.version },
    settings: { nodes: nodesList, scenarios, rate, jobs, mainJobs, items: [minItems, maxItems], jobsPerClient: Number(opts['jobs-per-client']), ...(longLived === undefined ? {} : { longLived }), hostProcs: Number(opts.procs), clientProcs: Number(opts['client-procs']), advertsMs: Number(opts['adverts-ms']), timeoutMs: Number(opts['timeout-ms']), seed: Number(opts.seed), knobs },
    fleets,
    results
  }
  const dir = join(ROOT, 'bench', 'results')
  await mkdir(dir, { recursive: true })
  const file = join(dir, `scale-${out.at.replace(/[:.]/g, '-')}.json`)
  await writeFile(file, JSON.stringify(out, null, 2) + '\n')
  process.stdout.write(`wrote ${file}\n`)
  if (dumped.length > 0) {
    const outcomes = file.replace(/\.json$/, '-outcomes.jsonl')
    await writeFile(outcomes, dumped.map((o) => JSON.stringify(o)).join('\n') + '\n')
    process.stdout.write(`wrote ${outcomes}\n`)
  }
}
