/**
 * The fleet of bench/scale.ts: N real worker nodes spread over a few host
 * processes (scale-host.ts), plus one process per node that the churn
 * scenario will kill (SIGKILL kills exactly that node), and the client host
 * processes (scale-clients.ts). Nodes bootstrap to two seed nodes; the rest
 * of the mesh forms by itself (adverts + auto-dial).
 */
import { join } from 'node:path'
import { Child } from './scale-proto.ts'
import type { HostStats, Json, NodeStats } from './scale-proto.ts'

export interface FleetInit {
  root: string
  dir: string
  hostProcs: number
  clientProcs: number
  soloNodes: number
  msPerItem: number
  advertsMs: number
  failRate: number
}

export interface FleetNode {
  key: string
  host: Child
  solo: boolean
  peerId: string
  addr: string
  slowdown: number
  alive: boolean
  /** Leaves during the running scenario: clients do not join through it. */
  leaving: boolean
}

const ENV = { ...process.env, IPFS_ACCELERATE_LOG_LEVEL: process.env.IPFS_ACCELERATE_LOG_LEVEL ?? 'warn' }

async function ready (c: Child, timeoutMs: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${c.name} not ready within ${timeoutMs} ms:\n${c.stderr}`)) }, timeoutMs)
    c.onEvent = (msg) => { if (msg.ready === true) { clearTimeout(timer); resolve() } }
    c.proc.once('exit', () => { clearTimeout(timer); reject(new Error(`${c.name} exited before ready:\n${c.stderr}`)) })
  })
}

export class Fleet {
  readonly init: FleetInit
  readonly hosts: Child[] = []
  readonly solos: Child[] = []
  readonly clients: Child[] = []
  readonly nodes = new Map<string, FleetNode>()
  seeds: string[] = []
  /** The latest stats seen of every node, alive or gone. */
  readonly last = new Map<string, NodeStats>()
  /** RSS and CPU of every host process, by name, as last seen. */
  readonly procs = new Map<string, { rss: number, cpuMs: number, nodes: number, loopLag: HostStats['loopLag'] }>()
  /** The CPU ms of every host process as last seen, kept after it exits (a killed node's work still counts). */
  readonly cpuSeen = new Map<string, number>()
  private nextJoin = 0

  constructor (init: FleetInit) {
    this.init = init
  }

  private spawnHost (name: string): Child {
    return new Child(name, join(this.init.root, 'bench', 'scale-host.ts'), ['--dir', join(this.init.dir, name)], ENV, this.init.root)
  }

  /** Start the processes, the seeds, then every other node; wait until each node knows (nearly) every worker. */
  async start (n: number, log: (s: string) => void): Promise<{ startMs: number, convergedMs: number, converged: boolean }> {
    const t0 = performance.now()
    for (let i = 0; i < this.init.hostProcs; i++) this.hosts.push(this.spawnHost(`host${i}`))
    for (let i = 0; i < this.init.soloNodes; i++) this.solos.push(this.spawnHost(`solo${i}`))
    for (let i = 0; i < this.init.clientProcs; i++) {
      this.clients.push(new Child(`clients${i}`, join(this.init.root, 'bench', 'scale-clients.ts'), [], ENV, this.init.root))
    }
    await Promise.all([...this.hosts, ...this.solos, ...this.clients].map(async (c) => { await ready(c, 60_000) }))
    // Seeds: the first node of the first two hosts (one when there is one host).
    const plan: Array<{ key: string, host: Child, solo: boolean }> = []
    for (let i = 0; i < n - this.solos.length; i++) plan.push({ key: `n${i}`, host: this.hosts[i % this.hosts.length]!, solo: false })
    for (const [i, s] of this.solos.entries()) plan.push({ key: `k${i}`, host: s, solo: true })
    const seedCount = Math.min(2, this.hosts.length, plan.length)
    for (const p of plan.slice(0, seedCount)) await this.addNode(p.key, p.host, p.solo, 1, [])
    this.seeds = [...this.nodes.values()].map((s) => s.addr)
    // The rest: hosts in parallel, nodes one after another within a host.
    const byHost = new Map<Child, typeof plan>()
    for (const p of plan.slice(seedCount)) byHost.set(p.host, [...(byHost.get(p.host) ?? []), p])
    let up = seedCount
    await Promise.all([...byHost.values()].map(async (list) => {
      for (const p of list) {
        await this.addNode(p.key, p.host, p.solo, 1, this.seeds)
        if (++up % 8 === 0) log(`fleet: ${up}/${n} nodes up`)
      }
    }))
    const startMs = performance.now() - t0
    log(`fleet: ${n} nodes up in ${(startMs / 1000).toFixed(1)} s; waiting for adverts to reach everyone`)
    const conv = await this.converge(n - 1, 60_000)
    return { startMs, convergedMs: conv.ms, converged: conv.ok }
  }

  /** Wait (bounded) until every live node has live adverts from at least `want` workers. */
  async converge (want: number, maxMs: number): Promise<{ ok: boolean, ms: number, minKnown: number }> {
    const t0 = performance.now()
    let minKnown = 0
    while (performance.now() - t0 < maxMs) {
      const stats = await this.stats()
      const live = stats.flatMap((h) => h.nodes)
      minKnown = Math.min(...live.map((s) => s.knownWorkers))
      if (minKnown >= want) return { ok: true, ms: performance.now() - t0, minKnown }
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
    return { ok: false, ms: performance.now() - t0, minKnown }
  }

  async addNode (key: string, host: Child, solo: boolean, slowdown: number, bootstrap: string[]): Promise<FleetNode> {
    // A node starts in ~0.6 s on an idle machine; on a loaded 2-core one it has taken over a minute.
    const r = await host.request({ cmd: 'start', key, bootstrap, slowdown, msPerItem: this.init.msPerItem, advertsMs: this.init.advertsMs, failRate: this.init.failRate }, 180_000)
    const node: FleetNode = { key, host, solo, peerId: String(r.peerId), addr: String(r.addr), slowdown, alive: true, leaving: false }
    this.nodes.set(key, node)
    return node
  }

  /** A new node joins through the seeds, on the host with the fewest nodes. */
  async join (slowdown = 1): Promise<FleetNode> {
    const count = (h: Child): number => [...this.nodes.values()].filter((n) => n.alive && n.host === h).length
    const host = [...this.hosts].sort((a, b) => count(a) - count(b))[0]!
    return await this.addNode(`${slowdown === 1 ? 'j' : 's'}${this.nextJoin++}`, host, false, slowdown, this.seeds)
  }

  /** Stop a node cleanly (leaving advert, drain); its final stats are kept. */
  async leave (key: string, graceMs = 10_000): Promise<void> {
    const node = this.nodes.get(key)!
    node.alive = false
    const r = await node.host.request({ cmd: 'stop', key, graceMs }, graceMs + 30_000)
    this.last.set(key, r.last as NodeStats)
  }

  /** SIGKILL the process of a solo node: that node vanishes mid-job. */
  kill (key: string): void {
    const node = this.nodes.get(key)!
    if (!node.solo) throw new Error(`${key} shares its process: only solo nodes can be killed`)
    node.alive = false
    node.host.kill()
  }

  live (): FleetNode[] {
    return [...this.nodes.values()].filter((n) => n.alive)
  }

  /** Stats of every live host process (updates `last` and `procs`). */
  async stats (resetLag = false): Promise<HostStats[]> {
    const hosts = [...this.hosts, ...this.solos].filter((h) => !h.exited)
    const out = await Promise.all(hosts.map(async (h) => {
      try {
        const r = await h.request({ cmd: 'stats', resetLag }, 10_000)
        return { h, s: r.stats as HostStats }
      } catch (err) {
        process.stderr.write(`stats: ${(err as Error).message.split('\n')[0]}\n`)
        return undefined
      }
    }))
    const res: HostStats[] = []
    for (const o of out) {
      if (o === undefined) continue
      res.push(o.s)
      this.procs.set(o.h.name, { rss: o.s.rss, cpuMs: o.s.cpuMs, nodes: o.s.nodes.length, loopLag: o.s.loopLag })
      this.cpuSeen.set(o.h.name, o.s.cpuMs)
      for (const n of o.s.nodes) this.last.set(n.key, n)
    }
    for (const h of [...this.hosts, ...this.solos]) if (h.exited) this.procs.delete(h.name)
    return res
  }

  /** Wait (bounded) until no node holds or queues a job. */
  async idle (maxMs: number): Promise<boolean> {
    const t0 = performance.now()
    while (performance.now() - t0 < maxMs) {
      const s = (await this.stats()).flatMap((h) => h.nodes)
      if (s.every((n) => n.depth === 0 && n.held === 0)) return true
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    return false
  }

  async request (c: Child, msg: Json, timeoutMs: number): Promise<Json> {
    return await c.request(msg, timeoutMs)
  }

  /** Everything down, bounded: exit requests, then SIGKILL. */
  async close (): Promise<void> {
    await Promise.allSettled([...this.clients, ...this.hosts, ...this.solos].map(async (c) => { await c.close(40_000) }))
  }

  killAll (): void {
    for (const c of [...this.clients, ...this.hosts, ...this.solos]) c.kill()
  }
}
