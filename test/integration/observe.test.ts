/**
 * A worker observed from outside: after real `submit embed` and `submit lm`
 * jobs, its /metrics parses strictly as Prometheus text and counts exactly
 * those jobs; `ipfs-accelerate status --json` shows the same node, plan and
 * jobs; with no node running, `status` says so and exits 1.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { JOB_BUCKETS } from '../../src/node/metrics.ts'
import { statusSchema } from '../../src/node/status-schema.ts'
import { parsePrometheusText, samples } from '../helpers/prom-text.ts'
import { CLI, runProc, startWorker, stopProc, tempDir } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'

const EMBED = 'demo/tiny-random'
const LM = 'demo/lm-tiny-random'
let w: WorkerProc
const jobs: Array<{ id: string, skillset: string, model: string, tokens?: number }> = []

before(async () => {
  w = await startWorker({ models: `${EMBED},${LM}`, dtype: 'fp32' })
  for (const texts of [['hello world'], ['one', 'two']]) {
    const r = await runProc([CLI, 'submit', 'embed', ...texts.flatMap((t) => ['--text', t]), '--no-mdns', '--data-dir', w.dataDir, '--json'], { timeoutMs: 60_000 })
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { jobId: string, model: string }
    jobs.push({ id: out.jobId, skillset: 'embed', model: out.model })
  }
  const r = await runProc([CLI, 'submit', 'lm', '--prompt', 'The swarm', '--max-tokens', '8', '--no-mdns', '--data-dir', w.dataDir, '--json'], { timeoutMs: 90_000 })
  assert.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { jobId: string, model: string, output: { tokens: number[] } }
  jobs.push({ id: out.jobId, skillset: 'lm', model: out.model, tokens: out.output.tokens.length })
})

after(async () => {
  if (w !== undefined) await stopProc(w.proc)
})

test('/metrics parses as Prometheus text and counts the jobs that ran, by skillset, model and outcome', async () => {
  // Open like /healthz: no token, and the scraper's own Host name.
  const res = await fetch(`${w.httpUrl}/metrics`, { headers: { host: 'prometheus.internal:9090' } })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  const fams = parsePrometheusText(await res.text()) // throws on duplicate series, split families, broken histograms

  const jobsTotal = samples(fams, 'ipfs_accelerate_jobs_total', 'ipfs_accelerate_jobs_total')
  assert.equal(fams.get('ipfs_accelerate_jobs_total')?.type, 'counter')
  assert.deepEqual(jobsTotal.map((s) => [s.labels, s.value]).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))), [
    [{ skillset: 'embed', model: EMBED, outcome: 'ok' }, 2],
    [{ skillset: 'lm', model: LM, outcome: 'ok' }, 1]
  ])
  assert.equal(fams.get('ipfs_accelerate_job_duration_seconds')?.type, 'histogram')
  for (const [skillset, model, n] of [['embed', EMBED, 2], ['lm', LM, 1]] as const) {
    const labels = { skillset, model, outcome: 'ok' }
    const buckets = samples(fams, 'ipfs_accelerate_job_duration_seconds', 'ipfs_accelerate_job_duration_seconds_bucket', labels)
    assert.deepEqual(buckets.map((b) => b.labels.le), [...JOB_BUCKETS.map(String), '+Inf'])
    assert.equal(samples(fams, 'ipfs_accelerate_job_duration_seconds', 'ipfs_accelerate_job_duration_seconds_count', labels)[0]?.value, n)
    assert.ok(samples(fams, 'ipfs_accelerate_job_duration_seconds', 'ipfs_accelerate_job_duration_seconds_sum', labels)[0]!.value > 0)
  }

  const one = (family: string, labels: Record<string, string> = {}): number | undefined => samples(fams, family, family, labels)[0]?.value
  const lmJob = jobs.find((j) => j.skillset === 'lm')!
  assert.equal(one('ipfs_accelerate_tokens_generated_total', { model: LM }), lmJob.tokens, 'one partial per generated token')
  assert.equal(one('ipfs_accelerate_tokens_generated_total', { model: EMBED }), undefined, 'embed does not stream')
  assert.equal(samples(fams, 'ipfs_accelerate_model_throughput', 'ipfs_accelerate_model_throughput', { model: LM })[0]?.labels.unit, 'tokens_per_second')
  assert.equal(samples(fams, 'ipfs_accelerate_model_throughput', 'ipfs_accelerate_model_throughput', { model: EMBED })[0]?.labels.unit, 'items_per_second')
  for (const model of [EMBED, LM]) {
    assert.equal(one('ipfs_accelerate_queue_depth', { model }), 0)
    assert.equal(one('ipfs_accelerate_model_loaded', { model }), 1)
    assert.ok(one('ipfs_accelerate_model_load_seconds', { model, dtype: 'fp32' })! > 0)
  }
  assert.equal(one('ipfs_accelerate_job_bus_events_total', { event: 'lease' }), 3)
  assert.equal(one('ipfs_accelerate_job_bus_events_total', { event: 'result' }), 3)
  assert.ok(one('ipfs_accelerate_peers_connected') !== undefined)
  assert.equal(one('ipfs_accelerate_dropped_messages_total', { source: 'jobs', reason: 'malformed_offer' }), 0)
  assert.ok(one('ipfs_accelerate_store_exchange_bytes_total', { direction: 'served' }) !== undefined)
})

test('status --json reads the running node: its plan, its models and the jobs it ran; the text form names them too', async () => {
  const r = await runProc([CLI, 'status', '--json', '--data-dir', w.dataDir], { timeoutMs: 30_000 })
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim().split('\n').length, 1, 'one JSON object')
  const s = statusSchema.parse(JSON.parse(r.stdout))
  assert.equal(s.status, 'ok')
  assert.equal(s.node.peerId, w.peerId)
  assert.deepEqual(s.node.models.map((m) => m.id).sort(), [EMBED, LM].sort())
  for (const m of s.node.models) {
    assert.match(m.cid, /^bafy/)
    assert.equal(m.loaded, true)
    assert.equal(m.plan.dtype, 'fp32')
    assert.ok(m.plan.reasons.length > 0)
  }
  assert.equal(s.node.models.find((m) => m.id === LM)?.queue.unit, 'tokens/s')
  assert.ok(s.node.hardware !== null && s.node.hardware.cpu.logicalCores > 0)
  assert.deepEqual(s.jobs.totals, { ok: 3 })
  assert.deepEqual(s.jobs.recent.map((j) => [j.id, j.skillset, j.model, j.outcome]), [...jobs].reverse().map((j) => [j.id, j.skillset, j.model, 'ok']))
  assert.ok(!r.stdout.includes('hello world'), 'no job input in the status')

  const viaUrl = await runProc([CLI, 'status', '--url', w.httpUrl], { timeoutMs: 30_000 })
  assert.equal(viaUrl.code, 0, viaUrl.stderr)
  assert.ok(viaUrl.stdout.includes(w.peerId))
  assert.match(viaUrl.stdout, new RegExp(`${LM} \\(random weights\\)\\s+lm\\s+yes\\s+cpu\\s+cpu\\s+fp32`))
  assert.ok(viaUrl.stdout.includes(jobs[0]!.id))
})

test('status with no node running exits 1 and says what to do', async () => {
  const empty = await tempDir('ia-status-')
  const r = await runProc([CLI, 'status', '--data-dir', empty], { timeoutMs: 30_000 })
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^error ERR_NOT_STARTED: no node runs on .*ipfs-accelerate start/)
  assert.equal(r.stdout, '')
  // A node that was there and is gone: node.json is removed at a clean stop.
  const dir = w.dataDir
  await stopProc(w.proc)
  const gone = await runProc([CLI, 'status', '--json', '--data-dir', dir], { timeoutMs: 30_000 })
  assert.equal(gone.code, 1)
  assert.match(gone.stderr, /ERR_NOT_STARTED: no node runs on/)
  const dead = await runProc([CLI, 'status', '--url', w.httpUrl], { timeoutMs: 30_000 })
  assert.equal(dead.code, 1)
  assert.match(dead.stderr, /ERR_NOT_STARTED: no node answers at http:\/\/127\.0\.0\.1:\d+/)
  const bad = await runProc([CLI, 'status', '--url', 'ftp://x'], { timeoutMs: 30_000 })
  assert.equal(bad.code, 2)
})
