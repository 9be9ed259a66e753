/**
 * One scenario of bench/scale.ts on a running fleet: the arrival schedule
 * (open loop: clients start at their times whatever happened before),
 * dispatch to the client processes, the churn and slow-node events, and
 * the figures, from the job outcomes and per-node counter deltas.
 */
import { mulberry32 } from '../src/models/generate/prng.ts'
import { readFileSync } from 'node:fs'
import type { Fleet } from './scale-fleet.ts'
import { percentile } from './lib.ts'
import type { Child, JobOutcome, NodeStats } from './scale-proto.ts'

export const SCENARIOS = ['steady50', 'steady90', 'burst', 'churn', 'slow'] as const
export type ScenarioName = typeof SCENARIOS[number]

export interface RunSettings {
  n: number
  scenario: ScenarioName
  jobs: number
  /** Jobs a second the fleet can run at 100% load. */
  capacityJobs: number
  msPerItem: number
  minItems: number
  maxItems: number
  jobsPerClient: number
  /** Clients that stay: this many ClientNodes, each joined once and kept for the scenario, take the jobs one at a time as they fall due (jobsPerClient is then 1). */
  longLived?: number
  timeoutMs: number
  seed: number
}

interface Pct { p50: number, p99: number, max: number }

export interface ScenarioResult {
  n: number
  /** The --variant knobs this row ran with (absent: the base settings). */
  variant?: string
  scenario: ScenarioName
  jobs: number
  /** Offered load: jobs a second asked for, and what fraction of capacity that is (burst: its base rate). */
  offeredJobsPerS: number
  load: number
  completed: number
  /** Neither a result nor an error by the end. */
  lost: number
  /** ERR_JOB_TIMEOUT: the client gave up after timeoutMs. */
  timeouts: number
  /** Other typed errors, by code in `errors`. */
  failed: number
  errors: Record<string, number>
  /** Results whose digest is wrong. */
  wrongDigest: number
  /** Results for a job (tag or jobId) already answered. */
  duplicated: number
  /** Answers the clients dropped as late or second (protocol-level duplicates, harmless). */
  lateFrames: number
  executionsPerJob: number
  retried: number
  bidMs: Pct
  totalMs: Pct
  rounds: { mean: number, max: number }
  fairness: { nodes: number, maxOverMean: number, minOverMean: number, slowShare?: number, slowExecutions?: number, meanExecutions: number }
  gossip: { perJob: number, wirePerJob: number, offersGossipedPerJob: number, directOffersPerJob: number, nodeAdvertsIn: number, nodeOffersIn: number, clientAdvertsIn: number, nodeWire: number, clientWire: number }
  memory: { mbPerNode: number, totalMB: number, liveNodes: number }
  /** loadPct: our processes' CPU over the scenario as % of ONE core; otherPct: the rest of the machine's busy time (other tenants), same unit. */
  cpu: { msPerJob: number, nodesMs: number, clientsMs: number, loadPct: number, otherPct?: number }
  /** Event-loop delay (ms) over the scenario: worst p99 and max over the node processes and over the client processes. */
  loopLag: { nodesP99: number, nodesMax: number, clientsP99: number, clientsMax: number }
  clients: { count: number, joinFailed: number, maxAlive: number, startLagP99Ms: number, joinP50Ms: number, joinP99Ms: number }
  churn?: { left: string[], killed: string[], joined: string[] }
  throughputJobsPerS: number
  durationS: number
}

function pct (xs: number[]): Pct {
  return { p50: percentile(xs, 0.5), p99: percentile(xs, 0.99), max: xs.length === 0 ? Number.NaN : Math.max(...xs) }
}

interface Arrival { at: number, jobs: Array<{ items: number, tag: string }>, keep?: number }

/** Poisson client arrivals: phases of (jobs, jobs a second). */
function schedule (s: RunSettings, phases: Array<{ jobs: number, rate: number }>, random: () => number): Arrival[] {
  const out: Arrival[] = []
  let t = 0
  let seq = 0
  for (const ph of phases) {
    const perClient = s.longLived === undefined ? s.jobsPerClient : 1
    const clients = Math.ceil(ph.jobs / perClient)
    const clientRate = ph.rate / perClient
    let left = ph.jobs
    for (let c = 0; c < clients; c++) {
      t += -Math.log(1 - random()) / clientRate * 1000
      const k = Math.min(perClient, left)
      left -= k
      out.push({ at: t, jobs: Array.from({ length: k }, () => ({ items: s.minItems + Math.floor(random() * (s.maxItems - s.minItems + 1)), tag: `${s.scenario}-${s.n}-${seq++}` })), ...(s.longLived === undefined ? {} : { keep: out.length % s.longLived }) })
    }
  }
  return out
}

/** CPU ms the whole machine spent busy so far (all processes, ours and others'), from /proc/stat; undefined elsewhere. */
function machineBusyMs (): number | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f
    return (user + nice + system + irq + softirq + steal) * 10 // USER_HZ is 100 on Linux
  } catch (err) {
    void err // not Linux: the foreign-load figure is left out
    return undefined
  }
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

function sumStats (before: ReadonlyMap<string, NodeStats>, after: ReadonlyMap<string, NodeStats>): Map<string, { d: (f: (s: NodeStats) => number) => number, s: NodeStats }> {
  const out = new Map<string, { d: (f: (s: NodeStats) => number) => number, s: NodeStats }>()
  for (const [k, a] of after) {
    const b = before.get(k)
    out.set(k, { s: a, d: (f) => f(a) - (b === undefined ? 0 : f(b)) })
  }
  return out
}

export async function runScenario (fleet: Fleet, s: RunSettings, log: (m: string) => void, dump?: (o: JobOutcome[]) => void): Promise<ScenarioResult> {
  const random = mulberry32(s.seed * 1000 + s.n * 10 + SCENARIOS.indexOf(s.scenario))
  const base = s.scenario === 'steady90' ? 0.9 : 0.5
  const rate = base * s.capacityJobs
  const phases = s.scenario === 'burst'
    ? [{ jobs: Math.round(s.jobs * 0.375), rate }, { jobs: Math.round(s.jobs * 0.25), rate: rate * 10 }, { jobs: s.jobs - Math.round(s.jobs * 0.375) - Math.round(s.jobs * 0.25), rate }]
    : [{ jobs: s.jobs, rate }]
  const arrivals = schedule(s, phases, random)
  const spanMs = arrivals.at(-1)?.at ?? 0

  // Slow: one ordinary node is replaced by one 10x slower, before the clock starts.
  let slowKey: string | undefined
  if (s.scenario === 'slow') {
    const victim = fleet.live().filter((x) => !x.solo && !fleet.seeds.includes(x.addr) && x.slowdown === 1).at(-1)
    if (victim !== undefined) await fleet.leave(victim.key, 5000)
    slowKey = (await fleet.join(10)).key
    await fleet.converge(fleet.live().length - 1, 20_000)
  }
  // Churn: 10% leave (solo nodes killed, others stopped cleanly) in 20-50% of the span; as many join in 35-65%.
  const events: Array<{ at: number, kind: 'kill' | 'leave' | 'join', key?: string }> = []
  const churn = { left: [] as string[], killed: [] as string[], joined: [] as string[] }
  if (s.scenario === 'churn') {
    const leaves = Math.max(1, Math.round(s.n / 10))
    const solos = fleet.live().filter((x) => x.solo)
    const others = fleet.live().filter((x) => !x.solo && !fleet.seeds.includes(x.addr) && x.slowdown === 1)
    const goers = [...solos.map((x) => ({ kind: 'kill' as const, key: x.key })), ...others.slice(-(leaves - solos.length)).map((x) => ({ kind: 'leave' as const, key: x.key }))].slice(0, leaves)
    goers.forEach((g, i) => { events.push({ at: spanMs * (0.2 + 0.3 * (i + 0.5) / goers.length), ...g }) })
    for (let i = 0; i < goers.length; i++) events.push({ at: spanMs * (0.35 + 0.3 * (i + 0.5) / goers.length), kind: 'join' })
    events.sort((a, b) => a.at - b.at)
    for (const g of goers) fleet.nodes.get(g.key)!.leaving = true
  }

  // Counters before; client-process counters reset.
  await fleet.stats(true)
  const before = new Map(fleet.last)
  const cpuBefore = new Map(fleet.cpuSeen)
  const clientCpuBefore = (await Promise.all(fleet.clients.map(async (c) => Number((await c.request({ cmd: 'drain', maxMs: 0 }, 10_000)).cpuMs)))).reduce((a, b) => a + b, 0)
  const machineBefore = machineBusyMs()
  const outcomes: JobOutcome[] = []
  for (const c of fleet.clients) c.onEvent = (msg) => { if (msg.ev === 'jobs') outcomes.push(...(msg.outcomes as JobOutcome[])) }

  // Dispatch: every 100 ms, the clients due in the next 300 ms, each through one random live node.
  const start = Date.now() + 300
  const tStart = performance.now()
  const pending: Array<Promise<unknown>> = []
  let i = 0
  let e = 0
  let rr = 0
  let polling: Promise<unknown> | undefined
  let lastPoll = 0
  while ((i < arrivals.length || e < events.length) && Date.now() - start < spanMs + 120_000) {
    const now = Date.now() - start
    const batches = new Map<Child, Array<{ at: number, via: string, jobs: Arrival['jobs'], keep?: string }>>()
    const targets = fleet.live().filter((x) => !x.leaving)
    while (i < arrivals.length && arrivals[i]!.at <= now + 300) {
      const a = arrivals[i++]!
      const via = targets[Math.floor(random() * targets.length)]!.addr
      // A kept client lives in one client process: its jobs go there (it joins through the node of its first job).
      const host = fleet.clients[a.keep === undefined ? rr++ % fleet.clients.length : a.keep % fleet.clients.length]!
      batches.set(host, [...(batches.get(host) ?? []), { at: start + Math.round(a.at), via, jobs: a.jobs, ...(a.keep === undefined ? {} : { keep: `k${a.keep}` }) }])
    }
    for (const [host, list] of batches) host.send({ cmd: 'clients', list })
    while (e < events.length && events[e]!.at <= now) {
      const ev = events[e++]!
      if (ev.kind === 'kill') { log(`  kill ${ev.key}`); churn.killed.push(ev.key!); fleet.kill(ev.key!) } else if (ev.kind === 'leave') {
        log(`  stop ${ev.key} (clean)`)
        churn.left.push(ev.key!)
        pending.push(fleet.leave(ev.key!).catch((err: unknown) => { log(`  stop ${ev.key} failed: ${(err as Error).message}`) }))
      } else {
        pending.push(fleet.join().then((x) => { churn.joined.push(x.key); log(`  join ${x.key}`) }, (err: unknown) => { log(`  join failed: ${(err as Error).message}`) }))
      }
    }
    // Poll counters now and then, so a killed node's last figures are known.
    if (polling === undefined && now - lastPoll > 2000) {
      lastPoll = now
      polling = fleet.stats().finally(() => { polling = undefined })
    }
    await sleep(100)
  }
  await polling
  await Promise.allSettled(pending)
  const drains = await Promise.all(fleet.clients.map(async (c) => await c.request({ cmd: 'drain', maxMs: s.timeoutMs + 30_000 }, s.timeoutMs + 60_000)))
  const durationS = (performance.now() - tStart) / 1000
  const machineAfter = machineBusyMs()
  // Event-loop lag over the scenario, read before the idle wait dilutes it.
  await fleet.stats()
  const nodeLag = [...fleet.procs.values()].map((p) => p.loopLag)
  const idle = await fleet.idle(30_000)
  if (!idle) log('  the fleet is still busy 30 s after the last client: figures taken anyway')
  await fleet.stats()
  const after = new Map(fleet.last)

  dump?.(outcomes)
  // Outcomes.
  const byTag = new Set<string>()
  const byJobId = new Set<string>()
  let completed = 0; let lost = 0; let timeouts = 0; let failed = 0; let wrongDigest = 0; let duplicated = 0; let retried = 0
  const errors: Record<string, number> = {}
  const bid: number[] = []; const total: number[] = []; const rounds: number[] = []
  for (const o of outcomes) {
    if (o.ok) {
      if (byTag.has(o.tag) || (o.jobId !== undefined && byJobId.has(o.jobId))) { duplicated++; continue }
      byTag.add(o.tag)
      if (o.jobId !== undefined) byJobId.add(o.jobId)
      if (o.digestOk !== true) { wrongDigest++; continue }
      completed++
      bid.push(o.bidMs!); total.push(o.totalMs!); rounds.push(o.rounds!)
      if ((o.attempts ?? 1) > 1) retried++
    } else if (o.code === 'LOST') lost++
    else if (o.code === 'ERR_JOB_TIMEOUT') timeouts++
    else { failed++; errors[o.code ?? '?'] = (errors[o.code ?? '?'] ?? 0) + 1 }
  }
  const reported = new Set(outcomes.map((o) => o.tag)).size
  lost += s.jobs - reported // never reported at all (a client process that died, or still running)

  // Node counters over the scenario.
  const deltas = sumStats(before, after)
  let executions = 0; let nodeAdvertsIn = 0; let nodeOffersIn = 0; let nodeWire = 0
  for (const { d } of deltas.values()) {
    executions += d((x) => x.jobs.executions ?? 0)
    nodeAdvertsIn += d((x) => x.gossipIn.adverts)
    nodeOffersIn += d((x) => x.gossipIn.offers)
    nodeWire += d((x) => x.gossipWire.adverts + x.gossipWire.offers)
  }
  // Fairness over nodes there from start to end, the slow node apart.
  const steady = [...deltas.entries()].filter(([k]) => before.has(k) && fleet.nodes.get(k)?.alive === true && k !== slowKey).map(([, v]) => v.d((x) => x.jobs.executions ?? 0))
  const mean = steady.reduce((a, b) => a + b, 0) / Math.max(1, steady.length)
  const slowExec = slowKey === undefined ? undefined : deltas.get(slowKey)?.d((x) => x.jobs.executions ?? 0)
  const sum = (k: string): number => drains.reduce((a, d) => a + Number((d.clientStats as Record<string, number>)[k] ?? 0), 0)
  const clientGossip = drains.reduce((a, d) => { const g = d.gossipIn as { adverts: number, offers: number }; return a + g.adverts + g.offers }, 0)
  const clientWire = drains.reduce((a, d) => { const g = d.gossipWire as { adverts: number, offers: number }; return a + g.adverts + g.offers }, 0)
  const clientAdvertsIn = drains.reduce((a, d) => a + (d.gossipIn as { adverts: number }).adverts, 0)
  const lags = drains.flatMap((d) => d.startLagMs as number[])
  const joins = drains.flatMap((d) => d.joinMs as number[])
  const procs = [...fleet.procs.values()]
  const liveNodes = fleet.live().length
  const totalMB = procs.reduce((a, p) => a + p.rss, 0) / 2 ** 20
  // Per process, from its figure before to its last (killed processes included: summing only the live ones went
  // negative in churn, when a process killed during the scenario took its CPU out of the total).
  const nodesMs = [...fleet.cpuSeen].reduce((a, [name, ms]) => a + ms - (cpuBefore.get(name) ?? 0), 0)
  const clientsMs = drains.reduce((a, d) => a + Number(d.cpuMs), 0) - clientCpuBefore
  for (const x of fleet.nodes.values()) x.leaving = false
  return {
    n: s.n,
    scenario: s.scenario,
    jobs: s.jobs,
    offeredJobsPerS: rate,
    load: base,
    completed,
    lost,
    timeouts,
    failed,
    errors,
    wrongDigest,
    duplicated,
    lateFrames: sum('lateFrames'),
    executionsPerJob: executions / s.jobs,
    retried,
    bidMs: pct(bid),
    totalMs: pct(total),
    rounds: { mean: rounds.reduce((a, b) => a + b, 0) / Math.max(1, rounds.length), max: rounds.length === 0 ? 0 : Math.max(...rounds) },
    fairness: { nodes: steady.length, maxOverMean: Math.max(...steady) / mean, minOverMean: Math.min(...steady) / mean, meanExecutions: mean, ...(slowExec === undefined ? {} : { slowShare: slowExec / mean, slowExecutions: slowExec }) },
    gossip: {
      perJob: (nodeAdvertsIn + nodeOffersIn + clientGossip) / s.jobs,
      wirePerJob: (nodeWire + clientWire) / s.jobs,
      offersGossipedPerJob: sum('gossipOffers') / s.jobs,
      directOffersPerJob: sum('directOffers') / s.jobs,
      nodeAdvertsIn,
      nodeOffersIn,
      clientAdvertsIn,
      nodeWire,
      clientWire
    },
    memory: { mbPerNode: totalMB / Math.max(1, liveNodes), totalMB, liveNodes },
    cpu: {
      msPerJob: (nodesMs + clientsMs) / s.jobs,
      nodesMs,
      clientsMs,
      loadPct: (nodesMs + clientsMs) / (durationS * 1000) * 100,
      ...(machineBefore === undefined || machineAfter === undefined ? {} : { otherPct: Math.max(0, (machineAfter - machineBefore) - (nodesMs + clientsMs)) / (durationS * 1000) * 100 })
    },
    loopLag: {
      nodesP99: Math.max(...nodeLag.map((l) => l.p99)),
      nodesMax: Math.max(...nodeLag.map((l) => l.max)),
      clientsP99: Math.max(...drains.map((d) => (d.loopLag as { p99: number }).p99)),
      clientsMax: Math.max(...drains.map((d) => (d.loopLag as { max: number }).max))
    },
    clients: { count: drains.reduce((a, d) => a + Number(d.clients), 0), joinFailed: drains.reduce((a, d) => a + Number(d.joinFailed), 0), maxAlive: Math.max(...drains.map((d) => Number(d.maxAlive))), startLagP99Ms: percentile(lags, 0.99), joinP50Ms: percentile(joins, 0.5), joinP99Ms: percentile(joins, 0.99) },
    ...(s.scenario === 'churn' ? { churn } : {}),
    throughputJobsPerS: completed / durationS,
    durationS
  }
}
