/**
 * The shape users run it in: three workers, and 24 separate `submit`
 * processes started at once, each knowing only one node. Nobody waits for
 * the swarm to settle first. Every job is answered, once, and the work
 * spreads over more than one worker.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { CLI, runProc, startWorker, startWorkers, stopProc } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'

let workers: WorkerProc[] = []

before(async () => {
  const a = await startWorker({ dtype: 'fp32' })
  workers = [a] // stopped by the after hook if the others fail to start
  const rest = await startWorkers([0, 1].map(() => ({ dtype: 'fp32', bootstrap: [a.multiaddrs[0]!] })))
  workers = [a, ...rest]
})

after(async () => {
  const codes = await Promise.all(workers.map(async (w) => await stopProc(w.proc)))
  for (const [i, c] of codes.entries()) assert.equal(c, 0, `worker ${i} did not stop cleanly:\n${workers[i]!.stderr().slice(-2000)}`)
})

test('24 submit processes at once, each knowing one node: all answered, spread over workers', async () => {
  const entry = workers[0]!.multiaddrs[0]!
  const runs = await Promise.all(Array.from({ length: 24 }, async (_, i) => await runProc(
    [CLI, 'submit', 'embed', '--text', `burst text ${i}`, '--bootstrap', entry, '--no-mdns', '--json', '--timeout', '90'],
    { timeoutMs: 150_000 }
  )))
  const failed = runs.flatMap((r, i) => r.code === 0 ? [] : [`#${i} exit ${String(r.code)}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`])
  assert.deepEqual(failed, [], 'every submit got its result')
  const outs = runs.map((r) => JSON.parse(r.stdout) as { jobId: string, worker: string, output: { embeddings: number[][], dims: number }, provenance: { worker: string, modelCid: string, provider: string, dtype: string, inputHash: string, signature: string } })
  assert.equal(new Set(outs.map((o) => o.jobId)).size, 24, 'one result per job')
  for (const o of outs) {
    assert.equal(o.output.embeddings.length, 1)
    assert.equal(o.output.embeddings[0]!.length, o.output.dims)
    assert.ok(workers.some((w) => w.peerId === o.worker), 'answered by one of the workers')
    assert.equal(o.provenance.worker, o.worker, 'the result is signed by the worker that answered')
    assert.deepEqual([o.provenance.provider, o.provenance.dtype], ['cpu', 'fp32'])
    assert.match(o.provenance.modelCid, /^bafy/)
    assert.match(o.provenance.inputHash, /^[0-9a-f]{64}$/)
  }
  const used = new Set(outs.map((o) => o.worker))
  assert.ok(used.size >= 2, `jobs ran on ${used.size} worker(s)`)
  // Counted on the workers: 24 results sent in all, none twice.
  const results = await Promise.all(workers.map(async (w) => ((await (await fetch(`${w.httpUrl}/healthz`)).json()) as { jobs: { results: number, executions: number } }).jobs))
  assert.equal(results.reduce((s, j) => s + j.results, 0), 24, `results sent: ${JSON.stringify(results)}`)
  assert.equal(results.reduce((s, j) => s + j.executions, 0), 24, 'each job ran once')
})
