/**
 * Reproducibility of embed vectors, per weight format, on this CPU.
 *
 * For the generated `tiny` and `minilm` models and each candidate dtype
 * (fp32; q8: dynamic int8 quantization, scales from the whole batch; int8:
 * static int8 quantization, fixed scales), through the real embed runner:
 * - batch: max |difference| between a text's vector alone and the same text
 *   inside a batch of 64 varied-length batch-mates (16 target texts);
 * - pad: alone vs next to one long text (padded to 40..400 words);
 * - threads: alone with 1 vs 2 intra-op threads;
 * - vs fp32: max |difference| from the fp32 vector (the cost of 8 bits);
 * - throughput (items/s) at batch 1, 32 and 64, single-threaded (steady
 *   here; 2-thread figures swing ±50 %), interleaved rounds, medians, and as
 *   a ratio to fp32.
 *
 *   node bench/repro.ts [--sizes tiny,minilm] [--rounds 3]
 *
 * Prints a table and writes bench/results/repro-<timestamp>.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir, cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { generateBertModel } from '../src/models/generate/index.ts'
import type { BertSize } from '../src/models/generate/index.ts'
import { embedSkillset } from '../skillsets/embed/index.ts'
import type { EmbedInput, EmbedOutput } from '../skillsets/embed/index.ts'
import type { Dtype, ExecutionPlan, SkillsetRunner } from '../src/interfaces/index.ts'
import { benchTexts, median, printTable } from './lib.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const DTYPES: readonly Dtype[] = ['fp32', 'q8', 'int8']
const TARGETS = 16
const BATCH = 64
const PAD_WORDS = [40, 120, 400]

const { values: args } = parseArgs({ options: { sizes: { type: 'string', default: 'tiny,minilm' }, rounds: { type: 'string', default: '3' }, help: { type: 'boolean' } } })
if (args.help === true) {
  process.stdout.write('node bench/repro.ts [--sizes tiny,minilm] [--rounds 3]\n  per dtype (fp32, q8 dynamic, int8 static): alone vs batch-of-64 differences, padding, threads, items/s at batch 1/32/64\n')
  process.exit(0)
}
const sizes = (args.sizes ?? '').split(',') as BertSize[]
const rounds = Math.max(1, Number(args.rounds))

type Runner = SkillsetRunner<EmbedInput, EmbedOutput>

const plan = (id: string, dtype: Dtype, threads: number): ExecutionPlan => ({ modelId: id, device: 'cpu', provider: 'cpu', dtype, intraOpThreads: threads, reasons: [], fallbacks: [] })

async function embed (r: Runner, texts: string[]): Promise<EmbedOutput> {
  const [out] = await r.run([embedSkillset.parseInput({ texts })])
  return out as EmbedOutput
}

function row (out: EmbedOutput, i: number): Float32Array {
  return out.embeddings.subarray(i * out.dims, (i + 1) * out.dims)
}

function maxDiff (a: Float32Array, b: Float32Array): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)))
  return m
}

interface Figures {
  model: BertSize
  dtype: Dtype
  /** max |alone − in a batch of 64|, and how many of the targets differed at all. */
  batchMaxDiff: number
  batchDiffering: number
  padMaxDiff: number
  threadsMaxDiff: number
  vsFp32MaxDiff: number
  itemsPerSecond: Record<string, number>
  ratioToFp32: Record<string, number>
}

async function measure (size: BertSize, root: string): Promise<Figures[]> {
  const id = `bench/${size}`
  await generateBertModel({ size, seed: 42, outDir: join(root, id) })
  const location = { id, localModelPath: root }
  const mates = benchTexts(BATCH)
  const targets = Array.from({ length: TARGETS }, (_, k) => k * (BATCH / TARGETS))
  const long = benchTexts(64).join(' ').split(' ')
  const runners = new Map<Dtype, Runner>()
  for (const d of DTYPES) runners.set(d, await embedSkillset.load(location, plan(id, d, 1)) as Runner)
  const alone = new Map<Dtype, Float32Array[]>()
  const figures: Figures[] = []
  try {
    for (const d of DTYPES) {
      const r = runners.get(d) as Runner
      const solo = await Promise.all(targets.map(async (t) => row(await embed(r, [mates[t] as string]), 0)))
      alone.set(d, solo)
      const batch = await embed(r, mates)
      const diffs = targets.map((t, k) => maxDiff(solo[k] as Float32Array, row(batch, t)))
      let pad = 0
      for (const [k, t] of targets.slice(0, 4).entries()) {
        for (const words of PAD_WORDS) {
          const out = await embed(r, [mates[t] as string, long.slice(0, words).join(' ')])
          pad = Math.max(pad, maxDiff(solo[k] as Float32Array, row(out, 0)))
        }
      }
      const two = await embedSkillset.load(location, plan(id, d, 2)) as Runner
      let threads = 0
      try {
        for (const [k, t] of targets.entries()) threads = Math.max(threads, maxDiff(solo[k] as Float32Array, row(await embed(two, [mates[t] as string]), 0)))
        threads = Math.max(threads, maxDiff(row(batch, 0), row(await embed(two, mates), 0)))
      } finally {
        await two.dispose()
      }
      const fp32 = alone.get('fp32') as Float32Array[]
      figures.push({
        model: size,
        dtype: d,
        batchMaxDiff: Math.max(...diffs),
        batchDiffering: diffs.filter((x) => x > 0).length,
        padMaxDiff: pad,
        threadsMaxDiff: threads,
        vsFp32MaxDiff: Math.max(...solo.map((v, k) => maxDiff(v, fp32[k] as Float32Array))),
        itemsPerSecond: {},
        ratioToFp32: {}
      })
    }
    // Throughput: interleaved rounds over the dtypes, medians.
    const times = new Map<string, number[]>()
    for (let round = 0; round < rounds; round++) {
      for (const b of [1, 32, 64]) {
        for (const d of DTYPES) {
          const r = runners.get(d) as Runner
          const n = b === 1 ? 16 : b
          const t0 = performance.now()
          if (b === 1) { for (let i = 0; i < n; i++) await embed(r, [mates[i] as string]) } else await embed(r, mates.slice(0, b))
          const key = `${d}:${b}`
          times.set(key, [...(times.get(key) ?? []), n / ((performance.now() - t0) / 1000)])
        }
      }
    }
    for (const f of figures) {
      for (const b of [1, 32, 64]) {
        f.itemsPerSecond[`b${b}`] = median(times.get(`${f.dtype}:${b}`) ?? [])
        f.ratioToFp32[`b${b}`] = f.itemsPerSecond[`b${b}`] as number / median(times.get(`fp32:${b}`) ?? [])
      }
    }
  } finally {
    for (const r of runners.values()) await r.dispose()
  }
  return figures
}

const root = await mkdtemp(join(tmpdir(), 'ia-bench-repro-'))
const all: Figures[] = []
try {
  for (const size of sizes) all.push(...await measure(size, root))
} finally {
  await rm(root, { recursive: true, force: true })
}

const e = (x: number): string => x === 0 ? '0' : x.toExponential(1)
printTable(all.map((f) => ({
  model: f.model,
  dtype: f.dtype,
  'alone vs batch64': `${e(f.batchMaxDiff)} (${f.batchDiffering}/${TARGETS})`,
  'vs padded': e(f.padMaxDiff),
  '1 vs 2 threads': e(f.threadsMaxDiff),
  'vs fp32': e(f.vsFp32MaxDiff),
  'items/s b1/b32/b64': ['b1', 'b32', 'b64'].map((k) => (f.itemsPerSecond[k] as number).toFixed(0)).join(' / '),
  '× fp32 b1/b32/b64': ['b1', 'b32', 'b64'].map((k) => (f.ratioToFp32[k] as number).toFixed(2)).join(' / ')
})))

const outDir = join(HERE, 'results')
await mkdir(outDir, { recursive: true })
const file = join(outDir, `repro-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
await writeFile(file, JSON.stringify({ cpu: cpus()[0]?.model, threads: 1, rounds, figures: all }, null, 2) + '\n')
process.stdout.write(`\nwritten ${file}\n`)
