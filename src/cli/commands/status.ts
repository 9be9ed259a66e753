import type { Command } from '../command.ts'
import { bool, str } from '../command.ts'
import { defaultDataDir } from '../../config/schema.ts'
import { ConfigError, errorMessage, NotStartedError, ProtocolError, UsageError } from '../../errors.ts'
import { readLiveNodeFile } from '../../node/node-file.ts'
import { statusSchema } from '../../node/status-schema.ts'
import type { StatusDocument } from '../../node/status-schema.ts'
import { table } from './hardware.ts'

const HELP = `Usage: ipfs-accelerate status [options]

Show what a running worker node is doing: its hardware and the plan of
each model it serves (provider, dtype, threads, and why), the workers of
the swarm it sees (their models, hardware and queues), and its queue and
recent jobs. The same as the node's status page (open its HTTP address in
a browser) in a terminal; it reads the node's /status.json.

Options:
  --data-dir DIR   the node's data dir (default ~/.ipfs-accelerate, or
                   IPFS_ACCELERATE_DATA_DIR): its node.json names the
                   node's HTTP address
  --url URL        the node's HTTP address (e.g. http://127.0.0.1:8080),
                   instead of reading node.json
  --json           print the status document as one JSON object
  -h, --help       show this help

Exit status: 0 when the node answered, 1 when no node runs there or it
does not answer, 2 on bad arguments.

Examples:
  ipfs-accelerate status
  ipfs-accelerate status --json | jq '.swarm.peers[].peerId'
`

const TIMEOUT_MS = 5000

/** The node's HTTP address: --url, or the httpUrl in the data dir's node.json. */
async function nodeUrl (url: string | undefined, dataDir: string): Promise<string> {
  if (url !== undefined) {
    if (!/^https?:\/\/[^/]+\/?$/.test(url)) throw new UsageError(`--url must be a node's HTTP address such as http://127.0.0.1:8080, got ${JSON.stringify(url)}`)
    return url.replace(/\/$/, '')
  }
  const node = await readLiveNodeFile(dataDir)
  if (node === undefined) throw new NotStartedError(`no node runs on ${dataDir}: start one with \`ipfs-accelerate start\`, or pass --data-dir of a running node, or --url`)
  if (node.httpUrl === null) throw new ConfigError(`the node on ${dataDir} (pid ${node.pid}) runs without HTTP: restart it with --http HOST:PORT to see its status`)
  return node.httpUrl
}

async function fetchStatus (url: string): Promise<StatusDocument> {
  let res: Response
  try {
    res = await fetch(`${url}/status.json`, { signal: AbortSignal.timeout(TIMEOUT_MS) })
  } catch (err) {
    throw new NotStartedError(`no node answers at ${url} (${errorMessage((err as Error & { cause?: unknown }).cause ?? err)}): is it running? start one with \`ipfs-accelerate start\``, { cause: err })
  }
  if (!res.ok) throw new ProtocolError(`${url}/status.json answered ${res.status}: is this an ipfs-accelerate worker of this version?`)
  const parsed = statusSchema.safeParse(await res.json().catch((err: unknown) => { throw new ProtocolError(`${url}/status.json is not JSON: is this an ipfs-accelerate worker?`, { cause: err }) }))
  if (!parsed.success) throw new ProtocolError(`${url}/status.json is not a status this version reads (${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}): use the CLI of the node's version`)
  return parsed.data
}

type Hardware = NonNullable<StatusDocument['node']['hardware']>
function hardwareLine (h: Hardware | null): string {
  if (h === null) return 'not probed yet'
  const gpus = h.gpus.length === 0 ? 'no GPU' : h.gpus.map((g) => `${g.name} (${g.memoryTotalMB} MB)`).join(', ')
  return `${h.cpu.model}, ${h.cpu.physicalCores}/${h.cpu.logicalCores} cores, ${h.memoryTotalMB} MB; ${gpus}; providers ${h.providers.join(', ')}`
}

export function formatStatus (s: StatusDocument, url: string): string {
  const out: string[] = []
  out.push(`Node      ${s.node.peerId} (${s.status}, up ${s.node.uptimeS} s) at ${url}`)
  out.push(`Hardware  ${hardwareLine(s.node.hardware)}`)
  out.push(`Requested device ${s.node.requested.device}, dtype ${s.node.requested.dtype}`)
  out.push('', `Models (${s.node.models.length})`)
  out.push(table([['MODEL', 'SKILLSET', 'LOADED', 'DEVICE', 'PROVIDER', 'DTYPE', 'THREADS', 'LOAD MS', 'QUEUE', 'THROUGHPUT'], ...s.node.models.map((m) => [
    m.id + (m.randomWeights ? ' (random weights)' : ''), m.skillset, m.loaded ? 'yes' : 'no', m.plan.device, m.plan.provider, m.plan.dtype, String(m.plan.threads), String(m.loadMs), String(m.queue.depth), m.queue.throughput === null ? '-' : `${m.queue.throughput} ${m.queue.unit}`
  ])]))
  for (const m of s.node.models) {
    out.push('', `  ${m.id}  ${m.cid}`)
    for (const r of m.plan.reasons) out.push(`    - ${r}`)
    for (const f of m.plan.fallbacks) out.push(`    - not ${f.provider}: ${f.reason}`)
  }
  out.push('', `Swarm: ${s.swarm.connectedPeers} connected peers, ${s.swarm.peers.length} workers advertised`)
  if (s.swarm.peers.length > 0) {
    out.push(table([['PEER', 'CONNECTED', 'QUEUE', 'MODELS'], ...s.swarm.peers.map((p) => [
      p.peerId, p.connected ? 'yes' : 'no', String(p.queueDepth), p.models.map((m) => `${m.id} (${m.skillset}, ${m.provider}/${m.dtype}${m.loaded ? '' : ', not loaded'})`).join(', ')
    ])]))
    for (const p of s.swarm.peers) out.push(`  ${p.peerId.slice(-8)}: ${hardwareLine(p.hardware)}`)
  }
  const totals = Object.entries(s.jobs.totals).map(([k, v]) => `${k} ${v}`).join(', ')
  out.push('', `Jobs: ${s.jobs.inHand} in hand, ${s.jobs.queueDepth} queued or running; ended: ${totals === '' ? 'none yet' : totals}`)
  if (s.jobs.recent.length > 0) {
    out.push(table([['JOB', 'SKILLSET', 'MODEL', 'OUTCOME', 'MS', 'ENDED'], ...s.jobs.recent.map((j) => [j.id, j.skillset, j.model, j.outcome, String(j.ms), j.at])]))
  }
  return out.join('\n') + '\n'
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'show a running node: hardware and plans, swarm peers, queue and recent jobs',
  help: HELP,
  options: {
    'data-dir': { type: 'string' },
    url: { type: 'string' },
    json: { type: 'boolean' }
  },
  async run (args) {
    const url = await nodeUrl(str(args, 'url'), str(args, 'data-dir') ?? process.env.IPFS_ACCELERATE_DATA_DIR ?? defaultDataDir())
    const status = await fetchStatus(url)
    process.stdout.write(bool(args, 'json') === true ? JSON.stringify(status) + '\n' : formatStatus(status, url))
    return 0
  }
}
