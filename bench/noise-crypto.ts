/**
 * Raw libp2p stream throughput, TCP + noise + yamux on 127.0.0.1, with
 * noise's default crypto vs src/p2p/swarm/noise-crypto.ts (both ends use the same
 * one). Two processes: this one sends `--mb` MB of random bytes over one
 * stream in 1 MiB sends; a child process (this file with --serve) receives
 * and counts them, and answers with its byte count and CPU time once the
 * sender closes its end. Time: first send to that answer. Variants run
 * interleaved, `--rounds` each; medians. Prints a table and writes JSON to
 * bench/results/.
 *
 *   node bench/noise-crypto.ts [--mb 256] [--rounds 3] [--variants default,native]
 */
import { spawn } from 'node:child_process'
import type { ChildProcessByStdio } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Libp2p, Stream } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { median, printTable } from './lib.ts'
import { nativeNoiseCrypto } from '../src/p2p/swarm/noise-crypto.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const MB = 1e6
const PROTOCOL = '/ipfs-accelerate/bench/noise-sink/1.0.0'
const VARIANTS: Record<string, ICryptoInterface | undefined> = { default: undefined, native: nativeNoiseCrypto }

const { values } = parseArgs({
  options: {
    serve: { type: 'boolean', default: false },
    crypto: { type: 'string', default: 'default' },
    mb: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
    variants: { type: 'string', default: 'default,native' },
    'timeout-s': { type: 'string', default: '180' },
    help: { type: 'boolean', short: 'h' }
  }
})
if (values.help === true) {
  process.stdout.write('Usage: node bench/noise-crypto.ts [--mb 256] [--rounds 3] [--variants default,native] [--timeout-s 180]\nStreams MB megabytes over one libp2p stream between two processes on 127.0.0.1 with each noise crypto; prints MB/s and the ratio, writes JSON to bench/results/.\n')
  process.exit(0)
}

async function startNode (variant: string): Promise<Libp2p> {
  if (!(variant in VARIANTS)) throw new Error(`unknown crypto variant ${variant}`)
  const crypto = VARIANTS[variant]
  return await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise(crypto === undefined ? {} : { crypto })],
    streamMuxers: [yamux()]
  })
}

/** Child: count what arrives on each stream; answer { bytes, cpuMs } when the sender closes. */
async function serve (variant: string): Promise<void> {
  const node = await startNode(variant)
  await node.handle(PROTOCOL, (stream: Stream) => {
    let bytes = 0
    let cpu: NodeJS.CpuUsage | undefined
    stream.addEventListener('message', (evt) => {
      cpu ??= process.cpuUsage()
      bytes += evt.data.byteLength
    })
    stream.addEventListener('remoteCloseWrite', () => {
      const used = process.cpuUsage(cpu)
      stream.send(new TextEncoder().encode(JSON.stringify({ bytes, cpuMs: (used.user + used.system) / 1000 })))
      void stream.close().catch((err: unknown) => { stream.abort(err as Error) })
    })
  }, { maxInboundStreams: 4 })
  process.stdout.write(JSON.stringify({ addr: node.getMultiaddrs()[0]?.toString() }) + '\n')
  const stop = async (): Promise<void> => { await node.stop(); process.exit(0) }
  process.on('SIGTERM', () => { void stop() })
  process.stdin.on('end', () => { void stop() })
  process.stdin.resume()
}

interface Run { variant: string, round: number, bytes: number, s: number, mbps: number, senderCpuMs: number, receiverCpuMs: number }

type Child = ChildProcessByStdio<Writable, Readable, null>

async function spawnReceiver (variant: string, signal: AbortSignal): Promise<{ proc: Child, addr: string }> {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', '--crypto', variant], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: proc.stdout })
  const addr = await new Promise<string>((resolve, reject) => {
    lines.once('line', (line) => {
      const a = (JSON.parse(line) as { addr?: string }).addr
      if (a === undefined) reject(new Error('the receiver has no address')); else resolve(a)
    })
    proc.once('exit', (code) => { reject(new Error(`the receiver exited (${code})`)) })
    signal.addEventListener('abort', () => { reject(signal.reason) })
  })
  return { proc, addr }
}

async function stopReceiver (proc: Child): Promise<void> {
  if (proc.exitCode !== null) return
  const exited = new Promise<void>((resolve) => { proc.once('exit', () => { resolve() }) })
  proc.stdin.end()
  const t = setTimeout(() => { proc.kill('SIGKILL') }, 5000)
  await exited
  clearTimeout(t)
}

async function once (variant: string, round: number, total: number, chunk: Uint8Array, timeoutS: number): Promise<Run> {
  const signal = AbortSignal.timeout(timeoutS * 1000)
  const { proc, addr } = await spawnReceiver(variant, signal)
  const node = await startNode(variant)
  try {
    const stream = await node.dialProtocol(multiaddr(addr), PROTOCOL, { signal })
    const answer = new Promise<{ bytes: number, cpuMs: number }>((resolve, reject) => {
      const parts: Uint8Array[] = []
      stream.addEventListener('message', (evt) => { parts.push(evt.data.subarray()) })
      stream.addEventListener('remoteCloseWrite', () => {
        try { resolve(JSON.parse(Buffer.concat(parts).toString('utf8')) as { bytes: number, cpuMs: number }) } catch (err) { reject(err as Error) }
      })
      stream.addEventListener('close', (evt) => { if (evt.error !== undefined) reject(evt.error) })
      signal.addEventListener('abort', () => { reject(signal.reason) })
    })
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    for (let sent = 0; sent < total; sent += chunk.byteLength) {
      const piece = total - sent >= chunk.byteLength ? chunk : chunk.subarray(0, total - sent)
      if (!stream.send(piece)) await stream.onDrain({ signal })
    }
    await stream.close({ signal })
    const got = await answer
    const s = (performance.now() - t0) / 1000
    const used = process.cpuUsage(cpu0)
    if (got.bytes !== total) throw new Error(`${variant}: the receiver got ${got.bytes} of ${total} bytes`)
    return { variant, round, bytes: total, s, mbps: total / MB / s, senderCpuMs: (used.user + used.system) / 1000, receiverCpuMs: got.cpuMs }
  } finally {
    await node.stop()
    await stopReceiver(proc)
  }
}

async function main (): Promise<void> {
  const total = Math.round(Number(values.mb) * MB)
  const rounds = Number(values.rounds)
  const variants = values.variants.split(',').map((v) => v.trim()).filter((v) => v !== '')
  for (const v of variants) if (!(v in VARIANTS)) throw new Error(`unknown variant ${v} (have ${Object.keys(VARIANTS).join(', ')})`)
  const chunk = randomBytes(1024 * 1024)
  const loadBefore = loadavg()
  const runs: Run[] = []
  for (let r = 0; r < rounds; r++) {
    // interleaved, and the order flips each round so drift in the machine's load hits both alike
    const order = r % 2 === 0 ? variants : [...variants].reverse()
    for (const v of order) {
      const run = await once(v, r, total, chunk, Number(values['timeout-s']))
      runs.push(run)
      process.stderr.write(`round ${r + 1} ${v}: ${run.mbps.toFixed(1)} MB/s (${run.s.toFixed(2)} s; cpu sender ${(run.senderCpuMs / 1000).toFixed(2)} s, receiver ${(run.receiverCpuMs / 1000).toFixed(2)} s)\n`)
    }
  }
  const loadAfter = loadavg()
  const of = (v: string): Run[] => runs.filter((x) => x.variant === v)
  const mbps = (v: string): number => median(of(v).map((x) => x.mbps))
  const base = variants.includes('default') ? mbps('default') : Number.NaN
  const rows = variants.map((v) => ({
    crypto: v,
    'MB/s': mbps(v).toFixed(1),
    'runs MB/s': of(v).map((x) => x.mbps.toFixed(0)).join(' '),
    's': median(of(v).map((x) => x.s)).toFixed(2),
    'sender cpu s': (median(of(v).map((x) => x.senderCpuMs)) / 1000).toFixed(2),
    'receiver cpu s': (median(of(v).map((x) => x.receiverCpuMs)) / 1000).toFixed(2),
    'vs default': (mbps(v) / base).toFixed(2)
  }))
  process.stdout.write(`${(total / MB).toFixed(0)} MB over one stream, 2 processes, TCP+noise+yamux on 127.0.0.1; ${rounds} round(s) interleaved, medians; ${cpus().length} CPUs, load average before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${loadAfter.map((x) => x.toFixed(2)).join(' ')}\n`)
  printTable(rows)
  const result = {
    bench: 'noise-crypto',
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    loadAverageBefore: loadBefore,
    loadAverageAfter: loadAfter,
    bytes: total,
    rounds,
    processes: 2,
    mbPerSecond: Object.fromEntries(variants.map((v) => [v, Number(mbps(v).toFixed(2))])),
    ...(variants.includes('native') && variants.includes('default') ? { ratioNativeToDefault: Number((mbps('native') / base).toFixed(3)) } : {}),
    runs
  }
  const outDir = join(HERE, 'results')
  await mkdir(outDir, { recursive: true })
  const file = join(outDir, `noise-crypto-${result.date.replace(/[:.]/g, '-')}.json`)
  await writeFile(file, JSON.stringify(result, null, 2) + '\n')
  process.stdout.write(`wrote ${file}\n`)
}

if (values.serve) await serve(values.crypto)
else await main()
