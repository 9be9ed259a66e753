/**
 * Text generation through the swarm against a direct in-process run, on
 * demo/lm-bench-random (75 M parameters): one worker process serves it; one
 * long-lived ClientNode in this process (what a gateway would hold)
 * submits streaming jobs to it; the direct run is the same lm runner on the
 * same model files and threads in this process. 1 and 8 concurrent jobs,
 * seeded sampling, interleaved rounds, medians. Reports tokens/s, the
 * swarm/direct ratio, and first-token latency and its overhead (p50).
 * Prints a table; writes bench/results/lm-swarm.json.
 * Usage: node bench/lm-swarm.ts [--new 32] [--rounds 3]
 */
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadCatalog } from '../src/models/catalog.ts'
import { ensureGeneratedModel } from '../src/models/generate/index.ts'
import type { ExecutionPlan } from '../src/interfaces/index.ts'
import { ClientNode } from '../src/node/client-node.ts'
import { createLmSkillset } from '../skillsets/lm/index.ts'
import type { LmRunner } from '../skillsets/lm/index.ts'
import { startWorker, stopProc, tempDir } from '../test/helpers/procs.ts'
import { benchTexts, median, printTable } from './lib.ts'

const { values } = parseArgs({ options: { new: { type: 'string', default: '32' }, rounds: { type: 'string', default: '3' } } })
const NEW = Number(values.new)
const ROUNDS = Number(values.rounds)
const ID = 'demo/lm-bench-random'
const lm = createLmSkillset()
const prompts = benchTexts(8)
const inputs = prompts.map((prompt, i) => ({ prompt, max_new_tokens: NEW, temperature: 0.8, seed: 100 + i }))

process.stderr.write(`starting a worker serving ${ID} (it generates the model: about 10-20 s)\n`)
const worker = await startWorker({ models: ID, dtype: 'fp32', timeoutMs: 180_000 })
const threads = Number(/demo\/lm-bench-random: runs on cpu \(cpu, fp32, (\d+) threads\)/.exec(worker.stderr())?.[1] ?? '1')
const root = await tempDir('ia-bench-lm-')
await ensureGeneratedModel((await loadCatalog()).get(ID), root)
const plan: ExecutionPlan = { modelId: ID, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: threads, reasons: [], fallbacks: [] }
const runner: LmRunner = await lm.loadStreaming({ id: ID, localModelPath: root }, plan)
const client = new ClientNode({ bootstrap: [worker.multiaddrs[0]!], mdns: false, joinMs: 30_000 })
await client.start()

interface Run { tokens: number, ms: number, firsts: number[] }

async function direct (jobs: typeof inputs): Promise<Run> {
  const t0 = performance.now()
  const firsts: number[] = []
  let tokens = 0
  await Promise.all(jobs.map(async (raw) => {
    let first = true
    const out = await runner.start(lm.parseInput(raw), { signal: new AbortController().signal, emit: async () => { if (first) { first = false; firsts.push(performance.now() - t0) } } })
    tokens += out.tokens.length
  }))
  return { tokens, ms: performance.now() - t0, firsts }
}

async function swarm (jobs: typeof inputs): Promise<Run> {
  const t0 = performance.now()
  const firsts: number[] = []
  let tokens = 0
  await Promise.all(jobs.map(async (raw) => {
    let first = true
    const res = await client.submit({
      skillset: 'lm',
      model: ID,
      input: raw,
      cost: lm.cost(lm.parseInput(raw)),
      timeoutMs: 120_000,
      stream: { onPartial: () => { if (first) { first = false; firsts.push(performance.now() - t0) } } }
    })
    tokens += lm.decodeOutput(res.output).tokens.length
  }))
  return { tokens, ms: performance.now() - t0, firsts }
}

const results: Record<string, Record<string, number>> = {}
try {
  await direct(inputs.slice(0, 1)) // warm-up both paths
  await swarm(inputs.slice(0, 1))
  for (const n of [1, 8]) {
    const d: Run[] = []
    const s: Run[] = []
    for (let r = 0; r < ROUNDS; r++) {
      d.push(await direct(inputs.slice(0, n)))
      s.push(await swarm(inputs.slice(0, n)))
    }
    const tps = (runs: Run[]): number => median(runs.map((x) => x.tokens / x.ms * 1000))
    const first = (runs: Run[]): number => median(runs.map((x) => median(x.firsts)))
    results[`${n} job${n === 1 ? '' : 's'}`] = {
      directTokPerS: tps(d),
      swarmTokPerS: tps(s),
      ratio: tps(s) / tps(d),
      directFirstMsP50: first(d),
      swarmFirstMsP50: first(s),
      firstOverheadMsP50: first(s) - first(d)
    }
  }
} finally {
  await client.stop()
  await runner.dispose()
  await stopProc(worker.proc)
  await rm(root, { recursive: true, force: true })
}

const f = (x: number | undefined, d = 1): string => x === undefined ? '' : x.toFixed(d)
printTable(Object.entries(results).map(([run, r]) => ({
  run,
  'direct tokens/s': f(r.directTokPerS),
  'swarm tokens/s': f(r.swarmTokPerS),
  'swarm/direct': f(r.ratio, 3),
  'first token ms direct (p50)': f(r.directFirstMsP50),
  'first token ms swarm (p50)': f(r.swarmFirstMsP50),
  'overhead ms (p50)': f(r.firstOverheadMsP50)
})))
await mkdir(join(import.meta.dirname, 'results'), { recursive: true })
await writeFile(join(import.meta.dirname, 'results', 'lm-swarm.json'), JSON.stringify({ model: ID, newTokens: NEW, threads, rounds: ROUNDS, date: new Date().toISOString(), results }, null, 2) + '\n')
