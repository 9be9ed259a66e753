/**
 * A client process for integration tests and benchmarks: reads one JSON
 * request on stdin, joins the swarm through its bootstrap addresses and
 * submits every job at once (or `concurrency` at a time) without waiting
 * for anything else, as a user's process would; prints one JSON object
 * with every result and the job client's counters.
 */
import { ClientNode } from '../../src/node/client-node.ts'

interface Request {
  bootstrap: string[]
  jobs: Array<{ texts: string[] }>
  model?: string
  concurrency?: number
  timeoutMs?: number
}

const chunks: Buffer[] = []
for await (const c of process.stdin) chunks.push(c as Buffer)
const req = JSON.parse(Buffer.concat(chunks).toString()) as Request
const client = new ClientNode({ bootstrap: req.bootstrap, mdns: false })
await client.start()

const results: unknown[] = new Array(req.jobs.length)
let next = 0
const t0 = performance.now()
async function lane (): Promise<void> {
  while (next < req.jobs.length) {
    const i = next++
    const job = req.jobs[i]!
    try {
      const res = await client.submit({ skillset: 'embed', ...(req.model === undefined ? {} : { model: req.model }), input: { texts: job.texts }, cost: job.texts.length, timeoutMs: req.timeoutMs ?? 60_000 })
      const bytes = res.output.embeddings as Uint8Array
      const f = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))
      results[i] = { ok: true, jobId: res.jobId, worker: res.worker, model: res.model, dims: res.output.dims, embeddings: Array.from(f), tries: res.tries, timings: res.timings }
    } catch (err) {
      results[i] = { ok: false, code: (err as { code?: string }).code, message: (err as Error).message }
    }
  }
}
await Promise.all(Array.from({ length: Math.min(req.concurrency ?? req.jobs.length, req.jobs.length) }, lane))
const wallMs = performance.now() - t0
const stats = client.stats
await client.stop()
process.stdout.write(JSON.stringify({ wallMs, stats, results }) + '\n')
