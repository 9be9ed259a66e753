/**
 * Per-partial overhead of the streaming path: a JobClient and a JobWorker
 * on two real libp2p nodes in this process (TCP on 127.0.0.1, noise,
 * yamux), the worker running the stand-in-stream (no work per step), so
 * what is measured is the platform: StreamingQueue + JobContext, window
 * and acks, partial frames on the link, ordering on the client, the signed
 * result. Prints a table and writes bench/results/stream.json.
 *
 *   node bench/stream.ts [--steps 2000] [--rounds 5] [--window 16]
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { median, printTable } from './lib.ts'
import { startClient } from '../test/helpers/p2p-fake-worker.ts'
import { startStreamWorker, STREAM_MODEL } from '../test/helpers/stream-worker.ts'
import { waitFor } from '../test/helpers/p2p-nodes.ts'

const { values } = parseArgs({ options: { steps: { type: 'string' }, rounds: { type: 'string' }, window: { type: 'string' }, help: { type: 'boolean', short: 'h' } } })
if (values.help === true) {
  process.stdout.write('Usage: node bench/stream.ts [--steps N (2000)] [--rounds N (5)] [--window N (default: 1, 4, 16, 64)]\n')
  process.exit(0)
}
const steps = Number(values.steps ?? 2000)
const rounds = Number(values.rounds ?? 5)
const windows = values.window === undefined ? [1, 4, 16, 64] : [Number(values.window)]

const w = await startStreamWorker()
const c = await startClient([w])
try {
  await waitFor('the client to know the worker', () => c.adverts.serving('stand-in-stream', STREAM_MODEL).length === 1)
  const rows: Array<Record<string, string>> = []
  const json: Array<Record<string, number>> = []
  for (const window of windows) {
    const perPartialUs: number[] = []
    const firstMs: number[] = []
    for (let r = 0; r < rounds + 1; r++) {
      let n = 0
      const res = await c.client.submit({ skillset: 'stand-in-stream', model: STREAM_MODEL, input: { steps, tag: `b${r}` }, cost: steps, timeoutMs: 120_000, stream: { window, onPartial: () => { n++ } } })
      if (n !== steps) throw new Error(`${n} partials of ${steps}`)
      if (r === 0) continue // warm-up
      perPartialUs.push((res.timings.totalMs - (res.timings.firstPartialMs ?? 0)) / Math.max(1, steps - 1) * 1000)
      firstMs.push(res.timings.firstPartialMs ?? 0)
    }
    const us = median(perPartialUs)
    rows.push({ window: String(window), steps: String(steps), 'µs/partial (median)': us.toFixed(1), 'partials/s': Math.round(1e6 / us).toString(), 'first partial ms': median(firstMs).toFixed(1) })
    json.push({ window, steps, usPerPartial: us, partialsPerSecond: 1e6 / us, firstPartialMs: median(firstMs) })
  }
  printTable(rows)
  await mkdir('bench/results', { recursive: true })
  await writeFile('bench/results/stream.json', JSON.stringify({ when: new Date().toISOString(), rounds, results: json }, null, 2) + '\n')
} finally {
  await c.stop()
  await w.stop()
}
