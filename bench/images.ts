/**
 * Image skillsets through the swarm against a direct in-process run: one
 * worker process serves a detr and a llava-next model; one long-lived
 * ClientNode in this process (what a gateway would hold) submits jobs to
 * it; the direct run is the same runners on the same model files and
 * thread count in this process.
 * - detr: images/s for 1 and 8 concurrent single-image jobs (direct: the
 *   runner gets the 8 as one batch, the best a caller can do), swarm/direct.
 * - llava-next: first-token latency for 1 and 4 concurrent jobs, and its
 *   overhead through the swarm.
 * Real photographs (test/fixtures/images), interleaved rounds, medians.
 * Prints a table; writes bench/results/images.json.
 * Usage: node bench/images.ts [--rounds 5] [--detr ID] [--llava ID] [--new 8]
 */
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadCatalog } from '../src/models/catalog.ts'
import { ensureGeneratedModel } from '../src/models/generate/index.ts'
import type { ExecutionPlan } from '../src/interfaces/index.ts'
import { ClientNode } from '../src/node/client-node.ts'
import { getBatchSkillset, getStreamingSkillset } from '../skillsets/index.ts'
import { DEFAULT_IMAGE_LIMITS } from '../skillsets/image/index.ts'
import { startWorker, stopProc, tempDir } from '../test/helpers/procs.ts'
import { photo } from '../test/helpers/images.ts'
import { median, printTable } from './lib.ts'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, detr: { type: 'string', default: 'demo/detr-bench-random' }, llava: { type: 'string', default: 'demo/llava-next-random' }, new: { type: 'string', default: '8' }, help: { type: 'boolean', short: 'h' } } })
if (values.help === true) {
  process.stdout.write('Usage: node bench/images.ts [--rounds N (5)] [--detr ID (demo/detr-bench-random)] [--llava ID (demo/llava-next-random)] [--new TOKENS (8)]\n')
  process.exit(0)
}
const ROUNDS = Number(values.rounds)
const NEW = Number(values.new)
const DETR = values.detr
const LLAVA = values.llava
const detr = getBatchSkillset('detr')
const llava = getStreamingSkillset('llava-next')
const photos = [photo('chelsea.jpg'), photo('coffee.jpg'), photo('rocket.webp')]
const detrInputs = Array.from({ length: 8 }, (_, i) => ({ image: photos[i % photos.length]!, threshold: 0.01, top_k: 20 }))
const llavaInputs = Array.from({ length: 4 }, (_, i) => ({ image: photos[i % photos.length]!, prompt: `Describe the <image> (${i}).`, max_new_tokens: NEW }))

process.stderr.write(`starting a worker serving ${DETR} and ${LLAVA}\n`)
const worker = await startWorker({ models: `${DETR},${LLAVA}`, dtype: 'fp32', timeoutMs: 180_000 })
const threadsOf = (id: string): number => Number(new RegExp(`${id.replace('/', '\\/')}: runs on cpu \\(cpu, fp32, (\\d+) threads\\)`).exec(worker.stderr())?.[1] ?? '1')
const root = await tempDir('ia-bench-images-')
const catalog = await loadCatalog()
for (const id of [DETR, LLAVA]) await ensureGeneratedModel(catalog.get(id), root)
const plan = (id: string): ExecutionPlan => ({ modelId: id, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: threadsOf(id), reasons: [], fallbacks: [] })
const detrRunner = await detr.load({ id: DETR, localModelPath: root }, plan(DETR), { images: DEFAULT_IMAGE_LIMITS })
const llavaRunner = await llava.loadStreaming({ id: LLAVA, localModelPath: root }, plan(LLAVA), { images: DEFAULT_IMAGE_LIMITS })
const client = new ClientNode({ bootstrap: [worker.multiaddrs[0]!], mdns: false, joinMs: 30_000 })
await client.start()

async function detrDirect (n: number): Promise<number> {
  const t0 = performance.now()
  const outs = await detrRunner.run(detrInputs.slice(0, n).map((raw) => detr.parseInput(raw)))
  for (const o of outs) if (o instanceof Error) throw o
  return n / (performance.now() - t0) * 1000
}

async function detrSwarm (n: number): Promise<number> {
  const t0 = performance.now()
  await Promise.all(detrInputs.slice(0, n).map(async (input) => await client.submit({ skillset: 'detr', model: DETR, input, cost: 1, timeoutMs: 120_000 })))
  return n / (performance.now() - t0) * 1000
}

async function llavaDirect (n: number): Promise<number[]> {
  const t0 = performance.now()
  const firsts: number[] = []
  await Promise.all(llavaInputs.slice(0, n).map(async (raw) => {
    let first = true
    await llavaRunner.start(llava.parseInput(raw), { signal: new AbortController().signal, emit: async () => { if (first) { first = false; firsts.push(performance.now() - t0) } } })
  }))
  return firsts
}

async function llavaSwarm (n: number): Promise<number[]> {
  const t0 = performance.now()
  const firsts: number[] = []
  await Promise.all(llavaInputs.slice(0, n).map(async (raw) => {
    let first = true
    await client.submit({ skillset: 'llava-next', model: LLAVA, input: raw, cost: llava.cost(llava.parseInput(raw)), timeoutMs: 120_000, stream: { onPartial: () => { if (first) { first = false; firsts.push(performance.now() - t0) } } } })
  }))
  return firsts
}

const rows: Array<Record<string, string>> = []
const results: Record<string, Record<string, number>> = {}
const f = (x: number, d = 1): string => x.toFixed(d)
try {
  // Warm both paths up.
  await detrDirect(1); await detrSwarm(1); await llavaDirect(1); await llavaSwarm(1)
  for (const n of [1, 8]) {
    const d: number[] = []; const s: number[] = []
    for (let r = 0; r < ROUNDS; r++) { d.push(await detrDirect(n)); s.push(await detrSwarm(n)) }
    const key = `detr, ${n} job${n === 1 ? '' : 's'}`
    results[key] = { directImagesPerS: median(d), swarmImagesPerS: median(s), ratio: median(s) / median(d) }
    rows.push({ run: key, direct: `${f(median(d))} images/s`, swarm: `${f(median(s))} images/s`, 'swarm/direct': f(median(s) / median(d), 3) })
  }
  for (const n of [1, 4]) {
    const d: number[] = []; const s: number[] = []
    for (let r = 0; r < ROUNDS; r++) { d.push(median(await llavaDirect(n))); s.push(median(await llavaSwarm(n))) }
    const key = `llava-next first token, ${n} job${n === 1 ? '' : 's'}`
    results[key] = { directFirstMsP50: median(d), swarmFirstMsP50: median(s), overheadMsP50: median(s) - median(d) }
    rows.push({ run: key, direct: `${f(median(d))} ms`, swarm: `${f(median(s))} ms`, 'swarm/direct': `+${f(median(s) - median(d))} ms` })
  }
} finally {
  await client.stop()
  await detrRunner.dispose()
  await llavaRunner.dispose()
  await stopProc(worker.proc)
  await rm(root, { recursive: true, force: true })
}

printTable(rows)
await mkdir(join(import.meta.dirname, 'results'), { recursive: true })
await writeFile(join(import.meta.dirname, 'results', 'images.json'), JSON.stringify({ detr: DETR, llava: LLAVA, threads: { detr: threadsOf(DETR), llava: threadsOf(LLAVA) }, rounds: ROUNDS, newTokens: NEW, date: new Date().toISOString(), results }, null, 2) + '\n')
