/**
 * Benchmark: the same 256 texts embedded with the `minilm`-shaped model
 * directly in-process, and through one worker process over the swarm (real
 * libp2p on 127.0.0.1), in one run. Prints a table; writes JSON under
 * bench/results/. Targets: swarm/direct >= 0.9 at 32 concurrent jobs and
 * >= 0.95 at 256, and a p50 overhead of a one-text job <= 3 ms.
 *
 *   npm run bench            (or: node bench/embed-swarm.ts --help)
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { getBatchSkillset as getSkillset } from '../skillsets/index.ts'
import type { ExecutionPlan, SkillsetRunner } from '../src/interfaces/index.ts'
import { ClientNode } from '../src/node/client-node.ts'
import { CLI, ROOT, runProc, startWorker, stopProc, tempDir } from '../test/helpers/procs.ts'
import { benchTexts, median, percentile, printTable } from './lib.ts'

const { values: opts } = parseArgs({
  options: {
    model: { type: 'string', default: 'demo/minilm-random' },
    dtype: { type: 'string', default: 'fp32' },
    texts: { type: 'string', default: '256' },
    concurrency: { type: 'string', default: '1,8,32,64,256' },
    rounds: { type: 'string', default: '3' },
    'max-batch': { type: 'string', default: '64' },
    'threads-per-model': { type: 'string', default: '1' },
    'data-dir': { type: 'string' },
    help: { type: 'boolean', short: 'h' }
  }
})
if (opts.help === true) {
  process.stdout.write(`Usage: node bench/embed-swarm.ts [--model ID] [--dtype fp32|q8] [--texts N] [--concurrency 1,8,32,64,256] [--rounds N] [--max-batch N] [--threads-per-model N] [--data-dir DIR]
Embeds N texts directly and through one worker over the swarm; prints texts/s, the ratio swarm/direct, and the one-text overhead.\n`)
  process.exit(0)
}

const N = Number(opts.texts)
const levels = opts.concurrency.split(',').map(Number)
const rounds = Number(opts.rounds)
const texts = benchTexts(N)
const dataDir = opts['data-dir'] ?? await tempDir('ia-bench-')

// One worker process: it generates the model (if missing) and serves it.
process.stderr.write(`starting a worker (${opts.model}, ${opts.dtype}) in ${dataDir}...\n`)
const scheduler = { maxBatchCost: Number(opts['max-batch']), threadsPerModel: Number(opts['threads-per-model']) }
const worker = await startWorker({ dataDir, models: opts.model, dtype: opts.dtype, config: { scheduler, store: { embeddingCache: false } }, timeoutMs: 300_000, env: { IPFS_ACCELERATE_LOG_LEVEL: 'warn' } })
const health = await (await fetch(`${worker.httpUrl}/healthz`)).json() as { models: Array<{ id: string, dtype: string, provider: string }> }
const served = health.models[0]!

// The direct path: the same skillset runner, same dtype and thread count, in this process.
const skillset = getSkillset('embed')
const plan: ExecutionPlan = { modelId: opts.model, device: 'cpu', provider: 'cpu', dtype: served.dtype as ExecutionPlan['dtype'], intraOpThreads: (await import('node:os')).availableParallelism(), reasons: [], fallbacks: [] }
// The same weights the worker serves, exported from its store through the running node.
const exported = join(dataDir, 'exported')
const exp = await runProc([CLI, 'models', 'export', opts.model, join(exported, opts.model), '--data-dir', dataDir, '--quiet'], { timeoutMs: 120_000 })
if (exp.code !== 0) throw new Error(`models export failed: ${exp.stderr}`)
const runner = await skillset.load({ id: opts.model, localModelPath: exported }, plan) as SkillsetRunner
const input = (t: string[]): unknown => skillset.parseInput({ texts: t })

async function direct (batch: number): Promise<number> {
  const t0 = performance.now()
  for (let i = 0; i < N; i += batch) await runner.run([input(texts.slice(i, i + batch))])
  return N / ((performance.now() - t0) / 1000)
}

const client = new ClientNode({ bootstrap: [worker.multiaddrs[0]!], mdns: false })
await client.start()

async function swarm (concurrency: number): Promise<{ rate: number, latencies: number[] }> {
  let next = 0
  const latencies: number[] = []
  const t0 = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < N) {
      const i = next++
      const s = performance.now()
      await client.submit({ skillset: 'embed', model: opts.model, input: { texts: [texts[i]!] }, cost: 1, timeoutMs: 120_000 })
      latencies.push(performance.now() - s)
    }
  }))
  return { rate: N / ((performance.now() - t0) / 1000), latencies }
}

// Warm both paths.
await direct(32)
await swarm(8)

// One-text latency, interleaved: direct run of one text vs a one-text swarm job.
const oneDirect: number[] = []
const oneSwarm: number[] = []
for (let i = 0; i < 60; i++) {
  const t = [texts[i % N]!]
  let s = performance.now()
  await runner.run([input(t)])
  oneDirect.push(performance.now() - s)
  s = performance.now()
  await client.submit({ skillset: 'embed', model: opts.model, input: { texts: t }, cost: 1, timeoutMs: 60_000 })
  oneSwarm.push(performance.now() - s)
}

// Throughput, interleaved rounds; medians reported.
const directRates: number[] = []
const swarmRates = new Map<number, number[]>(levels.map((c) => [c, []]))
for (let r = 0; r < rounds; r++) {
  directRates.push(await direct(32))
  for (const c of levels) swarmRates.get(c)!.push((await swarm(c)).rate)
}

await client.stop()
await runner.dispose()
await stopProc(worker.proc)

const directRate = median(directRates)
const rows = [
  { path: 'direct, batches of 32', concurrency: '-', 'texts/s': directRate.toFixed(1), 'swarm/direct': '1.00' },
  ...levels.map((c) => {
    const rate = median(swarmRates.get(c)!)
    return { path: 'swarm, 1 text per job', concurrency: String(c), 'texts/s': rate.toFixed(1), 'swarm/direct': (rate / directRate).toFixed(2) }
  })
]
const overheadP50 = median(oneSwarm) - median(oneDirect)
process.stdout.write(`\nembed: ${N} texts, model ${opts.model} (${served.dtype}, ${served.provider}), worker batches up to ${scheduler.maxBatchCost} texts on ${scheduler.threadsPerModel} thread(s), ${rounds} interleaved rounds, medians\n`)
printTable(rows)
process.stdout.write(`\none-text job: direct p50 ${median(oneDirect).toFixed(2)} ms, swarm p50 ${median(oneSwarm).toFixed(2)} ms (p90 ${percentile(oneSwarm, 0.9).toFixed(2)} ms): overhead p50 ${overheadP50.toFixed(2)} ms\n`)
const ratioAt = (c: number): number | undefined => swarmRates.has(c) ? median(swarmRates.get(c)!) / directRate : undefined
const verdict = (v: number | undefined, goal: number): string => v === undefined ? 'not measured' : `${v.toFixed(2)} ${v >= goal ? 'MET' : 'NOT MET'}`
process.stdout.write(`targets: ratio >= 0.9 at 32 jobs: ${verdict(ratioAt(32), 0.9)}; >= 0.95 at 256: ${verdict(ratioAt(256), 0.95)}; one-text overhead p50 <= 3 ms: ${overheadP50.toFixed(2)} ${overheadP50 <= 3 ? 'MET' : 'NOT MET'}\n`)

const result = {
  bench: 'embed-swarm',
  at: new Date().toISOString(),
  model: opts.model,
  dtype: served.dtype,
  texts: N,
  rounds,
  scheduler,
  machine: { cpus: (await import('node:os')).availableParallelism(), loadAverage: (await import('node:os')).loadavg() },
  direct: { textsPerSecond: directRate, rounds: directRates },
  swarm: levels.map((c) => ({ concurrency: c, textsPerSecond: median(swarmRates.get(c)!), ratio: median(swarmRates.get(c)!) / directRate, rounds: swarmRates.get(c) })),
  oneText: { directP50Ms: median(oneDirect), swarmP50Ms: median(oneSwarm), swarmP90Ms: percentile(oneSwarm, 0.9), overheadP50Ms: overheadP50 }
}
const outDir = join(ROOT, 'bench', 'results')
await mkdir(outDir, { recursive: true })
const file = join(outDir, `embed-swarm-${result.at.replace(/[:.]/g, '-')}.json`)
await writeFile(file, JSON.stringify(result, null, 2) + '\n')
process.stdout.write(`wrote ${file}\n`)
