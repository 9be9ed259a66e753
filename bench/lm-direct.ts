/**
 * The lm runner in-process on demo/lm-bench-random (75 M parameters,
 * generated into bench/.models on first use): tokens/s and first-token
 * latency for 1 and 8 concurrent jobs under each batching policy, exact
 * (canonical padding, the default) or not, and the
 * runner's decode loop against a bare onnxruntime-node loop over the same
 * session. Prints a table; writes bench/results/lm-direct.json.
 * Usage: node bench/lm-direct.ts [--new 32] [--threads 2] [--rounds 3]
 */
import { access, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generateLmModel } from '../src/models/generate/index.ts'
import type { ExecutionPlan, ModelLocation } from '../src/interfaces/index.ts'
import { createLmSkillset, LmRunner } from '../skillsets/lm/index.ts'
import type { BatchPolicy } from '../skillsets/lm/index.ts'
import { loadLm } from '../skillsets/lm/model.ts'
import type { LoadedLm } from '../skillsets/lm/model.ts'
import { argmax } from '../skillsets/lm/sampling.ts'
import { benchTexts, median, printTable } from './lib.ts'

const { values } = parseArgs({ options: { new: { type: 'string', default: '32' }, threads: { type: 'string', default: '2' }, rounds: { type: 'string', default: '3' }, model: { type: 'string', default: 'demo/lm-bench-random' } } })
const NEW = Number(values.new)
const ROUNDS = Number(values.rounds)
const ID = values.model
const root = join(import.meta.dirname, '.models')
const dir = join(root, ID)
await access(join(dir, 'onnx', 'model.onnx')).catch(async () => {
  process.stderr.write(`generating ${ID} into ${dir} (about 20 s)\n`)
  await generateLmModel({ size: ID === 'demo/lm-random' ? 'small' : 'bench', seed: 42, outDir: dir })
})
const plan: ExecutionPlan = { modelId: ID, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: Number(values.threads), reasons: [], fallbacks: [] }
const model: ModelLocation = { id: ID, localModelPath: root }
const lm = createLmSkillset()
const loaded: LoadedLm = await loadLm(model, plan)

/** Prompts of 8-40 words (different lengths), or all the same length. */
const mixed = benchTexts(8)
const same = Array.from({ length: 8 }, (_, i) => `${mixed[0]} ${i}`)

async function runJobs (policy: BatchPolicy, exact: boolean, prompts: string[]): Promise<Record<string, number>> {
  const runner = new LmRunner(loaded, { policy, exact })
  const t0 = performance.now()
  const firsts: number[] = []
  let tokens = 0
  await Promise.all(prompts.map(async (prompt, i) => {
    let first = true
    const out = await runner.start(lm.parseInput({ prompt, max_new_tokens: NEW, temperature: 0.8, seed: i, stop: [] }), {
      signal: new AbortController().signal,
      emit: async () => { if (first) { first = false; firsts.push(performance.now() - t0) } }
    })
    tokens += out.tokens.length
  }))
  const ms = performance.now() - t0
  return { tokens, ms, tokPerS: tokens / ms * 1000, firstMsMedian: median(firsts), firstMsMax: Math.max(...firsts), rowsPerRun: runner.stats.rows / runner.stats.runs }
}

/** A bare onnxruntime-node greedy loop over the same session: prefill, then feed present as past. */
async function bareLoop (prompt: string): Promise<{ tokens: number, ms: number }> {
  const t0 = performance.now()
  const ids = loaded.encode({ prompt })
  let { logits, kv } = await loaded.prefill(ids)
  let n = ids.length
  let count = 0
  for (let i = 0; i < NEW; i++) {
    const id = argmax(logits)
    count++
    if (i === NEW - 1) break
    const [r] = await loaded.decode1([{ kv, n, token: id }])
    logits = r!.logits; kv = r!.kv; n++
  }
  return { tokens: count, ms: performance.now() - t0 }
}

async function loopRatio (): Promise<Record<string, number>> {
  const runner = new LmRunner(loaded, { policy: 'serial' })
  const padless = new LmRunner(loaded, { policy: 'serial', exact: false })
  const ours: number[] = []; const loose: number[] = []; const bare: number[] = []
  const timed = async (r: LmRunner): Promise<number> => {
    const t0 = performance.now()
    // Greedy, no stop, eos never ends it early here: max_new_tokens tokens like the bare loop.
    const out = await r.start(lm.parseInput({ prompt: mixed[1]!, max_new_tokens: NEW }), { signal: new AbortController().signal, emit: async () => {} })
    return out.tokens.length / (performance.now() - t0) * 1000
  }
  for (let round = 0; round < 5; round++) {
    const b = await bareLoop(mixed[1]!)
    bare.push(b.tokens / b.ms * 1000)
    ours.push(await timed(runner))
    loose.push(await timed(padless))
  }
  return { runnerTokPerS: median(ours), notExactTokPerS: median(loose), bareTokPerS: median(bare), ratio: median(ours) / median(bare), notExactRatio: median(loose) / median(bare) }
}

await runJobs('serial', true, [mixed[0]!]) // warm-up
const runs: Array<[string, BatchPolicy, boolean, string[]]> = [
  ['1 job (exact: canonical padding)', 'continuous', true, [mixed[0]!]], ['1 job (not exact: no padding)', 'continuous', false, [mixed[0]!]],
  ['8 jobs, one at a time', 'serial', true, mixed], ['8 jobs, static batch (padded)', 'static', false, mixed],
  ['8 jobs, continuous (padded)', 'continuous', false, mixed], ['8 jobs, continuous (exact: canonical padding)', 'continuous', true, mixed],
  ['8 jobs same length, continuous (exact)', 'continuous', true, same], ['8 jobs same length, static (exact)', 'static', true, same]
]
// Rounds interleave the runs, so load that comes and goes on shared cores spreads over all of them; each figure is the median.
const rounds: Array<Record<string, Record<string, number>>> = []
for (let round = 0; round < ROUNDS; round++) {
  const r: Record<string, Record<string, number>> = {}
  for (const [name, policy, exact, prompts] of runs) r[name] = await runJobs(policy, exact, prompts)
  rounds.push(r)
}
const results: Record<string, Record<string, number>> = {}
for (const [name] of runs) {
  const first = rounds[0]![name]!
  results[name] = Object.fromEntries(Object.keys(first).map((k) => [k, median(rounds.map((r) => r[name]![k]!))]))
}
const loop = await loopRatio()
await loaded.dispose()

const f = (x: number | undefined, d = 1): string => x === undefined ? '' : x.toFixed(d)
printTable(Object.entries(results).map(([name, r]) => ({ run: name, 'tokens/s': f(r.tokPerS), 'first token ms (median)': f(r.firstMsMedian, 0), 'first token ms (max)': f(r.firstMsMax, 0), 'rows/run': f(r.rowsPerRun, 2) })))
process.stdout.write(`\ndecode loop: runner ${f(loop.runnerTokPerS)} tokens/s (exact; not exact ${f(loop.notExactTokPerS)}), bare onnxruntime-node loop ${f(loop.bareTokPerS)} tokens/s, ratio ${f(loop.ratio, 3)} (not exact ${f(loop.notExactRatio, 3)})\n`)
await mkdir(join(import.meta.dirname, 'results'), { recursive: true })
await writeFile(join(import.meta.dirname, 'results', 'lm-direct.json'), JSON.stringify({ model: ID, newTokens: NEW, threads: plan.intraOpThreads, rounds: ROUNDS, date: new Date().toISOString(), results, loop }, null, 2) + '\n')
