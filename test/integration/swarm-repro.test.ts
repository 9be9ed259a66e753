/**
 * Reproducible by default, across two nodes: two real worker processes
 * (127.0.0.1, mDNS off, default --dtype auto, embedding cache off so every
 * vector is computed) each embed a text alone and the same text inside a
 * batch of 64; all four vectors are bit-identical.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { ROOT, runProc, startWorkers, stopProc } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'

const MODEL = 'demo/tiny-random'
const WORDS = 'peers share vectors through content addressed blocks while each worker runs batches on its fastest device'.split(' ')
let workers: WorkerProc[] = []

before(async () => {
  // Two separate one-worker swarms, so each client's jobs run on the worker it names.
  const config = { store: { embeddingCache: false } }
  workers = await startWorkers([0, 1].map(() => ({ models: MODEL, config })))
})

after(async () => {
  const codes = await Promise.all(workers.map(async (w) => await stopProc(w.proc)))
  for (const [i, c] of codes.entries()) assert.equal(c, 0, `worker ${i} did not stop cleanly:\n${workers[i]!.stderr().slice(-2000)}`)
})

function batch (): string[] {
  return Array.from({ length: 64 }, (_, i) => Array.from({ length: 1 + ((i * 37) % 50) }, (_, w) => WORDS[(i + w * 3) % WORDS.length]).join(' '))
}

/** Through worker `w`'s swarm: the text alone, then (one job after the other) in the batch; the vectors' bytes. */
async function embedOn (w: WorkerProc, texts: string[], target: number): Promise<{ alone: Buffer, inBatch: Buffer, dtype: string }> {
  const run = await runProc([join(ROOT, 'test/helpers/swarm-client.ts')], {
    input: JSON.stringify({ bootstrap: [w.multiaddrs[0]], jobs: [{ texts: [texts[target]] }, { texts }], model: MODEL, concurrency: 1, timeoutMs: 30_000 }),
    timeoutMs: 60_000
  })
  assert.equal(run.code, 0, run.stderr)
  const [alone, all] = (JSON.parse(run.stdout) as { results: Array<{ ok: boolean, worker: string, dims: number, embeddings: number[], message?: string }> }).results
  for (const r of [alone, all]) {
    assert.ok(r?.ok === true, r?.message)
    assert.equal(r.worker, w.peerId)
  }
  const dims = alone!.dims
  const bytes = (v: number[]): Buffer => Buffer.from(Float32Array.from(v).buffer)
  const health = await (await fetch(`${w.httpUrl}/healthz`)).json() as { models: Array<{ id: string, dtype: string }> }
  return { alone: bytes(alone!.embeddings), inBatch: bytes(all!.embeddings.slice(target * dims, (target + 1) * dims)), dtype: health.models.find((m) => m.id === MODEL)!.dtype }
}

test('default settings: a text alone and in a batch of 64 gives bit-identical vectors on two nodes', { timeout: 120_000 }, async () => {
  const texts = batch()
  const target = 17
  const [a, b] = await Promise.all(workers.map(async (w) => await embedOn(w, texts, target)))
  assert.equal(a!.dtype, b!.dtype, 'both nodes serve the same dtype')
  assert.ok(['int8', 'fp32'].includes(a!.dtype), `a batch-independent dtype by default, got ${a!.dtype}`)
  assert.ok(a!.alone.equals(a!.inBatch), 'node 1: alone vs in the batch')
  assert.ok(b!.alone.equals(b!.inBatch), 'node 2: alone vs in the batch')
  assert.ok(a!.alone.equals(b!.alone), 'node 1 vs node 2')
})
