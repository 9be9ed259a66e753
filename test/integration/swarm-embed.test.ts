/**
 * The whole slice on loopback: three worker processes and one client process
 * with real libp2p (mDNS off), 30 embed jobs. Every result arrives once,
 * equals a direct in-process computation, and the jobs spread over workers.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { getBatchSkillset as getSkillset } from '../../skillsets/index.ts'
import type { ExecutionPlan, SkillsetRunner } from '../../src/interfaces/index.ts'
import { CLI, ROOT, runProc, startWorker, startWorkers, stopProc, tempDir } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'

const MODEL = 'demo/tiny-random'
let workers: WorkerProc[] = []

before(async () => {
  // The first worker generates the model; the others join through it and
  // advertise quickly, so the client learns them from adverts alone.
  // fp32: dynamic int8 quantization scales activations over the whole batch,
  // so a q8 job's numbers depend on what it was batched with.
  const config = { adverts: { intervalMs: 500 } }
  const first = await startWorker({ config, dtype: 'fp32' })
  workers = [first] // stopped by the after hook if the others fail to start
  const rest = await startWorkers([0, 1].map(() => ({ config, dtype: 'fp32', bootstrap: [first.multiaddrs[0]!] })))
  workers = [first, ...rest]
  // This test is about spreading jobs over a fleet that is up: the client asks
  // the first worker for its directory, so wait (bounded) until that worker has
  // heard the others' adverts. Joining while workers still arrive is
  // submit-burst.test.ts's subject.
  const until = performance.now() + 20_000
  for (;;) {
    const status = (await (await fetch(`${first.httpUrl}/status.json`)).json()) as { swarm: { peers: Array<{ peerId: string }> } }
    const known = new Set(status.swarm.peers.map((p) => p.peerId))
    if (rest.every((w) => known.has(w.peerId))) break
    if (performance.now() > until) throw new Error(`the first worker heard of ${known.size} of the other 2 workers within 20 s`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
})

after(async () => {
  const codes = await Promise.all(workers.map(async (w) => await stopProc(w.proc)))
  for (const [i, c] of codes.entries()) assert.equal(c, 0, `worker ${i} did not stop cleanly:\n${workers[i]!.stderr().slice(-2000)}`)
})

function texts (i: number): string[] {
  const words = ['swarm', 'vector', 'peer', 'gossip', 'tensor', 'block', 'lease', 'bid', 'hello', 'world']
  return Array.from({ length: 1 + (i % 3) }, (_, k) => `job ${i} text ${k}: ${words.slice(0, 1 + ((i + k) % words.length)).join(' ')}`)
}

test('30 jobs through the swarm: each once, correct, spread over workers', async () => {
  const jobs = Array.from({ length: 30 }, (_, i) => ({ texts: texts(i) }))
  const run = await runProc([join(ROOT, 'test/helpers/swarm-client.ts')], {
    input: JSON.stringify({ bootstrap: [workers[0]!.multiaddrs[0]], jobs, model: MODEL, timeoutMs: 60_000 }),
    timeoutMs: 120_000
  })
  assert.equal(run.code, 0, run.stderr)
  const out = JSON.parse(run.stdout) as { results: Array<{ ok: boolean, jobId: string, worker: string, dims: number, embeddings: number[], message?: string }> }
  const failed = out.results.filter((r) => !r.ok)
  assert.deepEqual(failed, [], 'every job succeeded')
  assert.equal(new Set(out.results.map((r) => r.jobId)).size, 30, 'one result per job')

  // Exactly once, seen from the workers: 30 leases, 30 results in total.
  const stats = await Promise.all(workers.map(async (w) => ((await (await fetch(`${w.httpUrl}/healthz`)).json()) as { jobs: { leases: number, results: number } }).jobs))
  assert.equal(stats.reduce((s, j) => s + j.results, 0), 30, `results sent by workers: ${JSON.stringify(stats)}`)
  assert.equal(stats.reduce((s, j) => s + j.leases, 0), 30, 'each job leased once')

  const used = new Set(out.results.map((r) => r.worker))
  assert.ok(used.size >= 2, `jobs ran on ${used.size} worker(s)`)
  for (const r of out.results) assert.ok(workers.some((w) => w.peerId === r.worker))

  // The same texts computed directly, in this process, with the worker's plan.
  const health = (await (await fetch(`${workers[0]!.httpUrl}/healthz`)).json()) as { models: Array<{ id: string, dtype: string }> }
  const dtype = health.models.find((m) => m.id === MODEL)!.dtype
  const plan: ExecutionPlan = { modelId: MODEL, device: 'cpu', provider: 'cpu', dtype: dtype as ExecutionPlan['dtype'], intraOpThreads: 1, reasons: [], fallbacks: [] }
  // The weights the worker serves, exported from its store by the CLI (through the running node).
  const exported = await tempDir('ia-export-')
  const exp = await runProc([CLI, 'models', 'export', MODEL, join(exported, MODEL), '--data-dir', workers[0]!.dataDir, '--quiet'], { timeoutMs: 60_000 })
  assert.equal(exp.code, 0, exp.stderr)
  const skillset = getSkillset('embed')
  const runner = await skillset.load({ id: MODEL, localModelPath: exported }, plan) as SkillsetRunner
  try {
    let maxDiff = 0
    for (const [i, r] of out.results.entries()) {
      const [direct] = await runner.run([skillset.parseInput({ texts: jobs[i]!.texts })]) as Array<{ embeddings: Float32Array, count: number, dims: number }>
      assert.equal(r.dims, direct!.dims)
      assert.equal(r.embeddings.length, direct!.embeddings.length)
      for (let k = 0; k < r.embeddings.length; k++) maxDiff = Math.max(maxDiff, Math.abs(r.embeddings[k]! - direct!.embeddings[k]!))
      for (let row = 0; row < direct!.count; row++) {
        const v = r.embeddings.slice(row * r.dims, (row + 1) * r.dims)
        assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-4, 'vectors are L2-normalised')
      }
    }
    assert.ok(maxDiff <= 1e-5, `swarm vs direct max abs difference ${maxDiff}`)
  } finally {
    await runner.dispose()
  }
})
