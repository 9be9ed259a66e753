/**
 * The llava-next runner in-process on demo/llava-next-random (generated
 * into bench/.models on first use): first-token latency and tokens/s for
 * one job alone and for 4 jobs that arrive together (their tiles in one
 * vision-encoder run, then lm's step-level batching), on the test photos.
 * Prints a table; writes bench/results/llava-direct.json.
 * Usage: node bench/llava-direct.ts [--new 64] [--threads 1] [--rounds 7]
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { ExecutionPlan } from '../src/interfaces/index.ts'
import { generateLlavaModel } from '../src/models/generate/index.ts'
import { createLlavaNextSkillset } from '../skillsets/llava-next/index.ts'
import { greyPng, photo } from '../test/helpers/images.ts'
import { median, printTable } from './lib.ts'

const { values } = parseArgs({ options: { new: { type: 'string', default: '64' }, threads: { type: 'string', default: '1' }, rounds: { type: 'string', default: '7' }, help: { type: 'boolean', short: 'h' } } })
if (values.help === true) {
  process.stdout.write('Usage: node bench/llava-direct.ts [--new 64] [--threads 1] [--rounds 7]\n')
  process.exit(0)
}
const NEW = Number(values.new)
const ROUNDS = Number(values.rounds)
const ID = 'demo/llava-next-random'
const root = join(import.meta.dirname, '.models')
const generated = await generateLlavaModel({ size: 'tiny', seed: 42, outDir: join(root, ID) })
const plan: ExecutionPlan = { modelId: ID, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: Number(values.threads), reasons: [], fallbacks: [] }
const llava = createLlavaNextSkillset()
const runner = await llava.loadStreaming({ id: ID, localModelPath: root }, plan)
const images = [photo('chelsea.jpg'), photo('coffee.jpg'), photo('rocket.webp'), greyPng(300, 900, 90)]

async function job (i: number): Promise<{ firstMs: number, ms: number, tokens: number }> {
  const input = llava.parseInput({ image: images[i % images.length], prompt: `Question ${i}: what is shown?`, max_new_tokens: NEW })
  const t0 = performance.now()
  let firstMs = -1
  const out = await runner.start(input, { signal: new AbortController().signal, emit: async () => { if (firstMs < 0) firstMs = performance.now() - t0 } })
  return { firstMs, ms: performance.now() - t0, tokens: out.tokens.length }
}

for (let i = 0; i < 3; i++) await job(i) // warm-up
const alone = { first: [] as number[], rate: [] as number[] }
const four = { first: [] as number[], rate: [] as number[] }
for (let r = 0; r < ROUNDS; r++) {
  const a = await job(r)
  alone.first.push(a.firstMs)
  alone.rate.push(a.tokens / (a.ms / 1000))
  const t0 = performance.now()
  const js = await Promise.all([0, 1, 2, 3].map(async (i) => await job(r + i)))
  four.first.push(median(js.map((j) => j.firstMs)))
  four.rate.push(js.reduce((n, j) => n + j.tokens, 0) / ((performance.now() - t0) / 1000))
}
const rows = [
  { jobs: '1', 'first token ms': median(alone.first).toFixed(1), 'tokens/s': median(alone.rate).toFixed(0) },
  { jobs: '4 together', 'first token ms': median(four.first).toFixed(1), 'tokens/s': median(four.rate).toFixed(0) }
]
printTable(rows)
const result = { model: ID, generateMs: generated.ms, bytes: generated.files.reduce((n, f) => n + f.bytes, 0), newTokens: NEW, threads: plan.intraOpThreads, rounds: ROUNDS, rows, runner: runner.stats, vision: runner.prompts.stats }
await mkdir(join(import.meta.dirname, 'results'), { recursive: true })
await writeFile(join(import.meta.dirname, 'results', 'llava-direct.json'), JSON.stringify(result, null, 2) + '\n')
await runner.dispose()
