/**
 * The fuzz run against one real worker process (stand-in model, a small
 * model imported through its API so it has blocks to serve): every surface
 * in turn, and after each the proof that the node keeps serving — the
 * process is alive, an honest peer's job gets the right result, a valid
 * `dag` request streams every block, the API answers its owner — with the
 * worker's resident memory before and after. Shared by
 * test/integration/fuzz.test.ts and bench/fuzz.ts.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createLibp2p } from 'libp2p'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { ClientNode } from '../../../src/node/client-node.ts'
import { libp2pOptions } from '../../../src/p2p/swarm/libp2p.ts'
import { standInDigest } from '../../../skillsets/stand-in/index.ts'
import { parsePrometheusText, samples } from '../prom-text.ts'
import { writeModelDir, smallModelFiles } from '../store-fixtures.ts'
import { dagRequest, fuzzBlocks } from './blocks.ts'
import type { BlocksReport } from './blocks.ts'
import { fuzzGossip } from './gossip.ts'
import type { GossipReport } from './gossip.ts'
import { fuzzHttp } from './http.ts'
import type { HttpReport } from './http.ts'
import { fuzzLinks } from './links.ts'
import type { LinkReport } from './links.ts'

export interface FuzzTarget { pid: number, httpUrl: string, addr: string, peerId: string, dataDir: string, sandbox: string }

export interface Serving { alive: boolean, jobOk: boolean, jobMs: number, blocks: number, apiStatus: number, rssMB: number }

/**
 * What a surface's inputs made the worker do: how much each of its own
 * counters (/healthz: job worker, adverts, store exchange) moved while the
 * surface ran, read before the honest check that follows; and how many
 * workers its advert table holds after it (an accepted fuzz advert would be one).
 */
export interface Moved { jobs: Record<string, number>, adverts: Record<string, number>, exchange: Record<string, number>, workersKnown: number }

export interface FuzzReport {
  seed: number
  count: number
  rssBeforeMB: number
  gossip?: GossipReport & { after: Serving, moved: Moved }
  links?: LinkReport & { after: Serving, moved: Moved }
  blocks?: BlocksReport & { after: Serving, moved: Moved }
  http?: HttpReport & { after: Serving, moved: Moved }
}

export type Surface = 'gossip' | 'links' | 'blocks' | 'http'
export const SURFACES: readonly Surface[] = ['gossip', 'links', 'blocks', 'http']

export async function rssMB (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1]
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`)
  return Math.round(Number(kb) / 1024)
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    void err // ESRCH: the process is gone, which is what this reports
    return false
  }
}

async function api (t: FuzzTarget, token: string, method: string, path: string, body?: unknown): Promise<{ status: number, text: string }> {
  const res = await fetch(`${t.httpUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000)
  })
  return { status: res.status, text: await res.text() }
}

/** Import a small model through the API (so the worker holds blocks); its root CID. */
export async function importModel (t: FuzzTarget, token: string): Promise<CID> {
  const dir = join(t.sandbox, 'model')
  await writeModelDir(dir, smallModelFiles())
  const res = await api(t, token, 'POST', '/api/v1/models/import', { dir, id: 'fuzz/model' })
  const last = JSON.parse(res.text.trim().split('\n').at(-1) ?? '{}') as { type?: string, result?: { cid: string } }
  if (res.status !== 200 || last.type !== 'result' || last.result === undefined) throw new Error(`import failed: ${res.status} ${res.text.slice(0, 500)}`)
  return CID.parse(last.result.cid)
}

let honest = 0

/** The proof that the node serves: process, a job from a fresh honest peer, blocks, the API. */
export async function serving (t: FuzzTarget, token: string, fetcher: Awaited<ReturnType<typeof createLibp2p>>, root: CID): Promise<Serving> {
  const out: Serving = { alive: alive(t.pid), jobOk: false, jobMs: 0, blocks: 0, apiStatus: 0, rssMB: 0 }
  if (!out.alive) return out
  const client = new ClientNode({ bootstrap: [t.addr], mdns: false })
  try {
    const input = { items: 1, tag: `honest-${++honest}` }
    const t0 = performance.now()
    const res = await client.submit({ skillset: 'stand-in', model: 'demo/stand-in', input, cost: 1, timeoutMs: 20_000 })
    out.jobMs = Math.round(performance.now() - t0)
    out.jobOk = res.worker === t.peerId && Buffer.from(res.output.digest as Uint8Array).equals(standInDigest(input))
  } finally {
    await client.stop()
  }
  out.blocks = await dagRequest(fetcher, peerIdFromString(t.peerId), root)
  const list = await api(t, token, 'GET', '/api/v1/models')
  out.apiStatus = list.status === 200 && list.text.includes(root.toString()) ? 200 : list.status
  out.rssMB = await rssMB(t.pid)
  return out
}

/** Run the chosen surfaces with `count` malformed inputs each; `log` hears one line per surface. */
export async function runFuzz (t: FuzzTarget, opts: { count: number, seed: number, surfaces?: readonly Surface[], log?: (line: string) => void }): Promise<FuzzReport> {
  const token = (await readFile(join(t.dataDir, 'api.token'), 'utf8')).trim()
  const root = await importModel(t, token)
  const report: FuzzReport = { seed: opts.seed, count: opts.count, rssBeforeMB: await rssMB(t.pid) }
  const fetcher = await createLibp2p(libp2pOptions({ listen: [], bootstrap: [], mdns: false }))
  const fuzzer = await createLibp2p(libp2pOptions({ listen: [], bootstrap: [], mdns: false }))
  const peer = peerIdFromString(t.peerId)
  const surfaces = opts.surfaces ?? SURFACES
  try {
    await fetcher.dial(multiaddr(t.addr), { signal: AbortSignal.timeout(5000) })
    await fuzzer.dial(multiaddr(t.addr), { signal: AbortSignal.timeout(5000) })
    const check = async (): Promise<Serving> => await serving(t, token, fetcher, root)
    let before = await counters(t)
    const diff = (a: Record<string, number>, b: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, v - (a[k] ?? 0)]))
    const checked = async (): Promise<{ moved: Moved, after: Serving }> => {
      const now = await counters(t)
      const moved = { jobs: diff(before.jobs, now.jobs), adverts: diff(before.adverts, now.adverts), exchange: diff(before.exchange, now.exchange), workersKnown: await workersKnown(t) }
      const after = await check()
      before = await counters(t) // the honest check moves counters too: the next surface starts from here
      return { moved, after }
    }
    if (surfaces.includes('gossip')) {
      const r = await fuzzGossip({ addr: t.addr, dropped: async () => await dropped(t) }, { count: opts.count, seed: opts.seed })
      report.gossip = { ...r, ...await checked() }
      opts.log?.(`gossip: ${r.offers.sent} offers + ${r.adverts.sent} adverts from ${r.identities} peers, ${r.rejected} rejected by the validators, ${r.notSent} refused by our own node; ${r.ms} ms; after: ${JSON.stringify(report.gossip.after)}`)
    }
    if (surfaces.includes('links')) {
      const r = await fuzzLinks(fuzzer, peer, { count: opts.count, seed: opts.seed + 1 })
      report.links = { ...r, ...await checked() }
      opts.log?.(`job link: ${r.body.sent} bad bodies on one link (answers ${JSON.stringify(r.answers)}, link survived: ${r.linkSurvived}), ${r.header.sent} bad headers (${r.header.resets} resets, ${r.header.timeouts} timeouts); directory: ${r.directory.sent} (${r.directory.resets} resets, ${r.directory.answered} answered); ${r.ms} ms; after: ${JSON.stringify(report.links.after)}`)
    }
    if (surfaces.includes('blocks')) {
      const r = await fuzzBlocks(fuzzer, peer, root, { count: opts.count, seed: opts.seed + 2 })
      report.blocks = { ...r, ...await checked() }
      opts.log?.(`blocks: ${r.tally.sent} requests (${r.tally.resets} resets, ${r.errorReplies} error replies, ${r.tally.timeouts} timeouts); ${r.ms} ms; after: ${JSON.stringify(report.blocks.after)}`)
    }
    if (surfaces.includes('http')) {
      const r = await fuzzHttp({ url: t.httpUrl, token, sandbox: t.sandbox, modelRef: root.toString() }, { count: opts.count, seed: opts.seed + 3 })
      report.http = { ...r, ...await checked() }
      opts.log?.(`http: ${r.tally.sent} requests, statuses ${JSON.stringify(r.statuses)}, codes ${JSON.stringify(r.codes)}, ${r.unclear.length} unclear ${JSON.stringify(r.unclear)}, ${r.tally.resets} resets, ${r.tally.timeouts} unanswered ${JSON.stringify(r.hung)}; ${r.ms} ms; after: ${JSON.stringify(report.http.after)}`)
    }
  } finally {
    await Promise.allSettled([fetcher.stop(), fuzzer.stop()])
  }
  return report
}

async function counters (t: FuzzTarget): Promise<{ jobs: Record<string, number>, adverts: Record<string, number>, exchange: Record<string, number> }> {
  const h = await (await fetch(`${t.httpUrl}/healthz`, { signal: AbortSignal.timeout(5000) })).json() as { jobs: Record<string, number>, adverts: Record<string, number> }
  const m = parsePrometheusText(await (await fetch(`${t.httpUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text())
  // the exchange's counters are in /metrics only (dropped_messages_total, source="store")
  const exchange = Object.fromEntries(samples(m, 'ipfs_accelerate_dropped_messages_total', 'ipfs_accelerate_dropped_messages_total', { source: 'store' }).map((x) => [x.labels.reason ?? '', x.value]))
  const jobsRun = samples(m, 'ipfs_accelerate_jobs_total', 'ipfs_accelerate_jobs_total').reduce((n, x) => n + x.value, 0)
  return { jobs: { ...h.jobs, jobsRun }, adverts: h.adverts, exchange }
}

async function workersKnown (t: FuzzTarget): Promise<number> {
  const s = await (await fetch(`${t.httpUrl}/status.json`, { signal: AbortSignal.timeout(5000) })).json() as { swarm: { peers: unknown[] } }
  return s.swarm.peers.length
}

async function dropped (t: FuzzTarget): Promise<{ offers: number, adverts: number }> {
  const h = await (await fetch(`${t.httpUrl}/healthz`, { signal: AbortSignal.timeout(5000) })).json() as { jobs: { dropped: number }, adverts: { dropped: number } }
  return { offers: h.jobs.dropped, adverts: h.adverts.dropped }
}
