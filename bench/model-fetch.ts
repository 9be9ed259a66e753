/**
 * Benchmark: fetching a model of at least 200 MB from a peer on loopback,
 * in one run, three ways, each into a fresh store or folder of this process
 * while another process serves:
 *   http     plain HTTP GET of each file (node:http server → node:http → file)
 *   exchange our block exchange (/ipfs-accelerate/blocks/1.0.0): the DAG
 *            streamed, each block verified against its CID and written
 *   bitswap  Helia 7 bitswap with its defaults (the fallback path)
 * MB/s are file bytes over the fetch time (for the store: finding sources,
 * transfer, verification, writes; pinning and hashing for the record are
 * shown apart as "pull s"). Prints a table; writes JSON under
 * bench/results/. Target: exchange >= 0.5 × http.
 *
 *   node bench/model-fetch.ts [--mb 210] [--rounds 1] [--peers 1] [--no-bitswap]
 */
import { execSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { get } from 'node:http'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { setLogLevel } from '../src/logger.ts'
import { libp2pOptions } from '../src/p2p/swarm/libp2p.ts'
import { createContentStore } from '../src/store/content-store.ts'
import { median, printTable } from './lib.ts'

const { values: opts } = parseArgs({
  options: {
    mb: { type: 'string', default: '210' },
    rounds: { type: 'string', default: '1' },
    peers: { type: 'string', default: '1' },
    bitswap: { type: 'boolean', default: true },
    help: { type: 'boolean', short: 'h' }
  },
  allowNegative: true
})
if (opts.help === true) {
  process.stdout.write('Usage: node bench/model-fetch.ts [--mb 210] [--rounds 1] [--peers 1] [--no-bitswap]\n')
  process.exit(0)
}
setLogLevel('warn')
const HERE = dirname(fileURLToPath(import.meta.url))
const MB = 1e6
const totalMiB = Math.max(1, Number(opts.mb))
const rounds = Math.max(1, Number(opts.rounds))
const peerCount = Math.max(1, Number(opts.peers))

const work = await mkdtemp(join(tmpdir(), 'ia-bench-fetch-'))
const modelDir = join(work, 'model')

/** A Hugging Face-shaped folder of random files, `totalMiB` MiB in all. */
async function generateModel (): Promise<void> {
  const big = Math.round(totalMiB * 0.75)
  const q = totalMiB - big - 4
  const files: Array<[string, number]> = [
    ['config.json', 700], ['tokenizer_config.json', 1200], ['tokenizer.json', 4 * 1024 * 1024 - 7],
    ['onnx/model.onnx', big * 1024 * 1024 + 12345], ['onnx/model_quantized.onnx', Math.max(1, q) * 1024 * 1024 - 999]
  ]
  for (const [path, size] of files) {
    const file = join(modelDir, path)
    await mkdir(dirname(file), { recursive: true })
    const out = createWriteStream(file)
    for (let left = size; left > 0; left -= 8 * 1024 * 1024) {
      if (!out.write(randomBytes(Math.min(left, 8 * 1024 * 1024)))) await new Promise<void>((ok) => { out.once('drain', () => { ok() }) })
    }
    await new Promise<void>((ok, fail) => { out.end(() => { ok() }); out.once('error', fail) })
  }
}

interface Peer { proc: ChildProcess, addr: string, cid: string, http: string, files: Array<{ path: string, size: number }> }

async function startPeer (i: number): Promise<Peer> {
  const proc = spawn(process.execPath, [join(HERE, 'model-fetch-peer.ts'), '--data-dir', join(work, `peer-${i}`), '--model-dir', modelDir], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, IPFS_ACCELERATE_LOG_LEVEL: 'warn' } })
  return await new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('peer not ready in 120 s')) }, 120_000)
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined) { clearTimeout(timer); resolve({ proc, ...JSON.parse(line) }) }
    })
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`peer exited with ${code}`)) })
  })
}

async function stopPeer (p: Peer): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => { p.proc.kill('SIGKILL') }, 10_000)
    p.proc.once('exit', () => { clearTimeout(timer); resolve() })
    p.proc.stdin?.end()
  })
}

/** Let the page cache write back what the last step wrote, so each run starts from the same state. */
function settle (): void {
  try {
    execSync('sync')
  } catch (err) {
    process.stderr.write(`(sync failed: ${(err as Error).message}; runs may interfere)\n`)
  }
}

async function runHttp (peer: Peer): Promise<{ s: number }> {
  const dir = await mkdtemp(join(work, 'http-'))
  settle()
  const t0 = performance.now()
  for (const f of peer.files) {
    const file = join(dir, f.path)
    await mkdir(dirname(file), { recursive: true })
    await new Promise<void>((resolve, reject) => {
      get(`${peer.http}/${f.path}`, (res) => {
        if (res.statusCode !== 200) { reject(new Error(`HTTP ${res.statusCode ?? '?'} for ${f.path}`)); return }
        pipeline(res, createWriteStream(file)).then(resolve, reject)
      }).on('error', reject)
    })
  }
  const s = (performance.now() - t0) / 1000
  await rm(dir, { recursive: true, force: true })
  return { s }
}

async function runStore (peers: Peer[], bitswapOnly: boolean): Promise<{ s: number, pullS: number, via: string, peakRssMB: number }> {
  const dataDir = await mkdtemp(join(work, bitswapOnly ? 'bitswap-' : 'exchange-'))
  const store = await createContentStore({ dataDir, libp2p: libp2pOptions({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false }) })
  await store.start()
  settle()
  const rss0 = process.memoryUsage().rss
  let peak = rss0
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 50)
  try {
    const first = peers[0] as Peer
    const r = await store.models.pull(first.cid, { peers: peers.map((p) => p.addr), bitswapOnly, signal: AbortSignal.timeout(600_000) })
    return { s: r.fetched.ms / 1000, pullS: r.fetched.totalMs / 1000, via: r.fetched.via, peakRssMB: (peak - rss0) / MB }
  } finally {
    clearInterval(sampler)
    await store.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

await generateModel()
const peers: Peer[] = []
try {
  for (let i = 0; i < peerCount; i++) peers.push(await startPeer(i))
  const first = peers[0] as Peer
  const bytes = first.files.reduce((s, f) => s + f.size, 0)
  const runs: Record<string, Array<{ s: number, pullS?: number, via?: string, peakRssMB?: number }>> = { http: [], exchange: [], ...(opts.bitswap ? { bitswap: [] } : {}) }
  for (let r = 0; r < rounds; r++) {
    runs.http?.push(await runHttp(first))
    runs.exchange?.push(await runStore(peers, false))
    if (opts.bitswap) runs.bitswap?.push(await runStore(peers, true))
  }
  const rate = (name: string): number => bytes / MB / median((runs[name] ?? []).map((x) => x.s))
  const http = rate('http')
  const rows = Object.entries(runs).map(([name, xs]) => ({
    method: name,
    'MB/s': rate(name).toFixed(1),
    'fetch s': median(xs.map((x) => x.s)).toFixed(2),
    'pull s': xs[0]?.pullS === undefined ? '' : median(xs.map((x) => x.pullS ?? 0)).toFixed(2),
    'vs http': (rate(name) / http).toFixed(2),
    via: xs[0]?.via ?? 'http',
    'peak RSS +MB': xs[0]?.peakRssMB === undefined ? '' : Math.max(...xs.map((x) => x.peakRssMB ?? 0)).toFixed(0)
  }))
  process.stdout.write(`model: ${(bytes / MB).toFixed(1)} MB in ${first.files.length} files; ${peerCount} serving process(es); ${rounds} round(s), medians; ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}\n`)
  printTable(rows)
  const ratio = rate('exchange') / http
  process.stdout.write(`exchange / http = ${ratio.toFixed(2)} (target >= 0.5: ${ratio >= 0.5 ? 'met' : 'NOT met'})\n`)
  const result = {
    bench: 'model-fetch',
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    loadAverage: loadavg(),
    modelBytes: bytes,
    files: first.files.length,
    peers: peerCount,
    rounds,
    mbPerSecond: Object.fromEntries(Object.keys(runs).map((k) => [k, Number(rate(k).toFixed(2))])),
    ratioExchangeToHttp: Number(ratio.toFixed(3)),
    ...(opts.bitswap ? { ratioBitswapToHttp: Number((rate('bitswap') / http).toFixed(3)) } : {}),
    runs
  }
  const outDir = join(HERE, 'results')
  await mkdir(outDir, { recursive: true })
  const file = join(outDir, `model-fetch-${result.date.replace(/[:.]/g, '-')}.json`)
  await writeFile(file, JSON.stringify(result, null, 2) + '\n')
  process.stdout.write(`wrote ${file}\n`)
} finally {
  for (const p of peers) await stopPeer(p)
  await rm(work, { recursive: true, force: true })
}
