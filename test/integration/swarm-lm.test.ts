/**
 * Text generation through the swarm equals a direct run: two worker
 * processes serve demo/lm-tiny-random, each a swarm of its own; separate
 * `submit lm` processes ask them for greedy and seeded-sampling jobs, and
 * the tokens equal an in-process run of the same model (generated from the
 * same catalog entry) on the lm runner. Streamed text joins into the final
 * text.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { loadCatalog } from '../../src/models/catalog.ts'
import { ensureGeneratedModel } from '../../src/models/generate/index.ts'
import type { ExecutionPlan } from '../../src/interfaces/index.ts'
import { createLmSkillset } from '../../skillsets/lm/index.ts'
import type { LmOutput, LmRunner } from '../../skillsets/lm/index.ts'
import { CLI, runProc, startWorker, stopProc, tempDir } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'

const ID = 'demo/lm-tiny-random'
const lm = createLmSkillset()
const workers: WorkerProc[] = []
let runner: LmRunner
let root: string

before(async () => {
  // Two workers that do not know each other: a job sent to each runs on that one.
  for (let i = 0; i < 2; i++) workers.push(await startWorker({ models: ID }))
  root = await tempDir('ia-lm-direct-')
  await ensureGeneratedModel((await loadCatalog()).get(ID), root)
  const plan: ExecutionPlan = { modelId: ID, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] }
  runner = await lm.loadStreaming({ id: ID, localModelPath: root }, plan)
})

after(async () => {
  await runner?.dispose()
  await Promise.all(workers.map(async (w) => await stopProc(w.proc)))
  await rm(root, { recursive: true, force: true })
})

async function direct (raw: Record<string, unknown>): Promise<LmOutput> {
  return await runner.start(lm.parseInput(raw), { signal: new AbortController().signal, emit: async () => {} })
}

async function viaSwarm (w: WorkerProc, flags: string[]): Promise<{ worker: string, output: LmOutput, partials: number, timings: Record<string, number>, streamed: string }> {
  const r = await runProc([CLI, 'submit', 'lm', ...flags, '--stream', '--json', '--bootstrap', w.multiaddrs[0]!, '--no-mdns', '--timeout', '60'], { timeoutMs: 90_000 })
  assert.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  const result = lines.at(-1) as { worker: string, output: LmOutput, partials: number, timings: Record<string, number> }
  const parts = lines.slice(0, -1) as Array<{ seq: number, partial: { text: string } }>
  assert.deepEqual(parts.map((p) => p.seq), parts.map((_, i) => i), 'partials arrive in order')
  return { ...result, streamed: parts.map((p) => p.partial.text).join('') }
}

test('greedy and seeded generation through the swarm give the direct run\'s tokens, on either worker, streamed in order', async () => {
  const cases: Array<{ raw: Record<string, unknown>, flags: string[] }> = [
    { raw: { prompt: 'The swarm', max_new_tokens: 24 }, flags: ['--prompt', 'The swarm', '--max-tokens', '24'] },
    { raw: { prompt: 'Once upon a time', max_new_tokens: 24, temperature: 0.9, top_k: 50, top_p: 0.95, seed: 1234 }, flags: ['--prompt', 'Once upon a time', '--max-tokens', '24', '--temperature', '0.9', '--top-k', '50', '--top-p', '0.95', '--seed', '1234'] }
  ]
  for (const c of cases) {
    const want = await direct(c.raw)
    for (const w of workers) {
      const got = await viaSwarm(w, c.flags)
      assert.equal(got.worker, w.peerId)
      assert.deepEqual(got.output.tokens, want.tokens, `${c.flags.join(' ')} on ${w.peerId}`)
      assert.equal(got.output.text, want.text)
      assert.equal(got.output.finishReason, want.finishReason)
      assert.equal(got.streamed, got.output.text, 'the streamed text joins into the final text')
      assert.ok(got.partials >= 1 && got.timings.firstTokenMs! > 0 && got.timings.tokensPerSecond! >= 0)
    }
  }
})

test('a stop sequence ends the job with finishReason "stop" through the swarm as directly', async () => {
  const free = await direct({ prompt: 'Stop here', max_new_tokens: 24 })
  const stop = free.text.slice(4, 7)
  assert.ok(stop.length > 0)
  const want = await direct({ prompt: 'Stop here', max_new_tokens: 24, stop: [stop] })
  assert.equal(want.finishReason, 'stop')
  const got = await viaSwarm(workers[0]!, ['--prompt', 'Stop here', '--max-tokens', '24', '--stop', stop])
  assert.equal(got.output.finishReason, 'stop')
  assert.equal(got.output.text, want.text)
  assert.ok(!got.output.text.includes(stop), 'the stop text is left out')
})
