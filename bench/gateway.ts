/**
 * What the OpenAI-compatible gateway adds to an embedding's latency: a
 * worker process serving demo/tiny-random (fp32, embedding cache off, so
 * every request computes) answers `POST /v1/embeddings` on 127.0.0.1, and
 * the same model runs in this process through the embed skillset's runner
 * directly. Rounds interleave the two (the order alternates per request),
 * each request one text of 8-40 words, the same text on both sides, so
 * both see the same host load. The gateway path includes HTTP, JSON, the
 * job handler, the node's queue and its inference thread (a message hop
 * each way); the direct path is one `runner.run([text])` on this thread.
 * Prints a table and writes bench/results/gateway.json.
 *
 *   node bench/gateway.ts [--requests 200] [--rounds 5]
 */
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { benchTexts, percentile, printTable } from './lib.ts'
import { loadCatalog } from '../src/models/catalog.ts'
import { ensureGeneratedModel } from '../src/models/generate/index.ts'
import { embedSkillset } from '../skillsets/embed/index.ts'
import type { ExecutionPlan } from '../src/interfaces/index.ts'
import { startWorker, stopProc, tempDir } from '../test/helpers/procs.ts'

const { values } = parseArgs({ options: { requests: { type: 'string' }, rounds: { type: 'string' }, help: { type: 'boolean', short: 'h' } } })
if (values.help === true) {
  process.stdout.write('Usage: node bench/gateway.ts [--requests N per round (200)] [--rounds N (5)]\n')
  process.exit(0)
}
const perRound = Number(values.requests ?? 200)
const rounds = Number(values.rounds ?? 5)
const ID = 'demo/tiny-random'
const TARGET_OVERHEAD_MS = 5

const worker = await startWorker({ models: ID, dtype: 'fp32', config: { store: { embeddingCache: false } } })
const root = await tempDir('ia-bench-gateway-')
try {
  await ensureGeneratedModel((await loadCatalog()).get(ID), root)
  const plan: ExecutionPlan = { modelId: ID, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] }
  const runner = await embedSkillset.load({ id: ID, localModelPath: root }, plan)
  const url = `${worker.httpUrl}/v1/embeddings`
  const direct = async (text: string): Promise<Float32Array> => {
    const [out] = await runner.run([embedSkillset.parseInput({ texts: [text] })])
    if (out instanceof Error) throw out
    return out!.embeddings
  }
  const viaGateway = async (text: string): Promise<Float32Array> => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: ID, input: text, encoding_format: 'base64' }) })
    if (res.status !== 200) throw new Error(`gateway answered ${res.status}: ${await res.text()}`)
    const body = await res.json() as { data: Array<{ embedding: string }> }
    const bytes = Buffer.from(body.data[0]!.embedding, 'base64')
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
  }
  const texts = benchTexts(perRound)
  // Warm-up (connections, JIT, the inference thread's first batches); the vectors are compared once.
  let maxDiff = 0
  for (const t of texts.slice(0, 20)) {
    const [a, b] = [await direct(t), await viaGateway(t)]
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!))
  }
  const ms = { direct: [] as number[], gateway: [] as number[] }
  for (let r = 0; r < rounds; r++) {
    for (const [i, t] of texts.entries()) {
      const order = (i + r) % 2 === 0 ? (['direct', 'gateway'] as const) : (['gateway', 'direct'] as const)
      for (const which of order) {
        const t0 = performance.now()
        await (which === 'direct' ? direct(t) : viaGateway(t))
        ms[which].push(performance.now() - t0)
      }
    }
  }
  await runner.dispose()
  const fig = (xs: number[]): { p50: number, p95: number } => ({ p50: percentile(xs, 0.5), p95: percentile(xs, 0.95) })
  const d = fig(ms.direct)
  const g = fig(ms.gateway)
  const overhead = { p50: g.p50 - d.p50, p95: g.p95 - d.p95 }
  printTable([
    { path: 'direct (in-process runner)', 'p50 ms': d.p50.toFixed(2), 'p95 ms': d.p95.toFixed(2), requests: String(ms.direct.length) },
    { path: 'POST /v1/embeddings', 'p50 ms': g.p50.toFixed(2), 'p95 ms': g.p95.toFixed(2), requests: String(ms.gateway.length) },
    { path: 'gateway overhead', 'p50 ms': overhead.p50.toFixed(2), 'p95 ms': overhead.p95.toFixed(2), requests: '' }
  ])
  const met = overhead.p50 <= TARGET_OVERHEAD_MS
  process.stdout.write(`target: <= ${TARGET_OVERHEAD_MS} ms p50 overhead: ${met ? 'met' : 'NOT met'}; max |direct - gateway| over the warm-up vectors: ${maxDiff}\n`)
  await mkdir('bench/results', { recursive: true })
  await writeFile('bench/results/gateway.json', JSON.stringify({ when: new Date().toISOString(), model: ID, dtype: 'fp32', requestsPerRound: perRound, rounds, directMs: d, gatewayMs: g, overheadMs: overhead, targetP50OverheadMs: TARGET_OVERHEAD_MS, met, maxAbsDiff: maxDiff }, null, 2) + '\n')
} finally {
  await stopProc(worker.proc)
  await rm(root, { recursive: true, force: true })
}
