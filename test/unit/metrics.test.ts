import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { InvalidInputError } from '../../src/errors.ts'
import { NodeObserver, RECENT_JOBS } from '../../src/node/observe.ts'
import type { NodeParts } from '../../src/node/node-parts.ts'
import { statusSchema } from '../../src/node/status-schema.ts'
import { statusPage } from '../../src/gateway/status-page.ts'
import type { JobHandler, JobHead } from '../../src/p2p/jobs/worker.ts'
import type { Assign } from '../../src/p2p/wire/messages.ts'
import { emptyExchangeStats } from '../../src/store/exchange/server.ts'
import { parsePrometheusText, samples } from '../helpers/prom-text.ts'

test('the exposition parser rejects duplicate series, split families, samples before TYPE and broken histograms', () => {
  const ok = '# HELP a_total x\n# TYPE a_total counter\na_total{k="v"} 1\na_total{k="w\\"q"} 2\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n'
  const fams = parsePrometheusText(ok)
  assert.deepEqual(samples(fams, 'a_total', 'a_total', { k: 'w"q' }).map((s) => s.value), [2])
  assert.throws(() => parsePrometheusText('# TYPE a counter\na 1\na 2\n'), /duplicate series/)
  assert.throws(() => parsePrometheusText('a 1\n'), /no TYPE/)
  assert.throws(() => parsePrometheusText('# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x="1"} 1\n'), /not together/)
  assert.throws(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'), /not cumulative/)
  assert.throws(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'), /no \+Inf/)
  assert.throws(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n'), /is not _count/)
  assert.throws(() => parsePrometheusText('# TYPE a gauge\na{b=1} 1\n'), /not quoted/)
})

function head (jobId: string, skillset: JobHead['skillset'] = 'embed', model?: string): JobHead {
  return { jobId, traceId: 't', skillset, cost: 1, inputBytes: 1, ...(model === undefined ? {} : { model }) }
}

function parts (over: Partial<NodeParts> = {}): NodeParts {
  const jobs = { offers: 0, directOffers: 0, dropped: 2, rateLimited: 3, bids: 5, busy: 0, unreachable: 0, leases: 4, executions: 4, declined: 0, results: 0, errors: 0, cancelled: 0, expired: 0, queries: 0, badFrames: 1, held: 0, forbidden: 0, partials: 0, acks: 0, resumed: 0, orphaned: 0, oldLinks: 0, refused: 0 }
  return { state: 'ok', libp2p: undefined, hardware: undefined, requested: { device: 'auto', dtype: 'auto' }, served: [], adverts: undefined, jobs, links: { opened: 0, accepted: 0, refused: 7, ended: 0 }, exchange: { ...emptyExchangeStats(), servedBytes: 1234, fetchedBlocks: 9 }, ...over }
}

test('jobs are counted by skillset, model and outcome; the part counters show as dropped messages and store bytes', async () => {
  const observer = new NodeObserver(() => parts())
  const inner: JobHandler = {
    bid: () => undefined,
    run: async (h) => {
      if (h.jobId.startsWith('bad')) throw new InvalidInputError('no')
      if (h.jobId.startsWith('odd')) throw new Error('a bug')
      return { model: 'demo/tiny-random', output: {}, timings: { queueMs: 0, runMs: 0, batchSize: 1 }, claim: { modelCid: 'c', provider: 'cpu', dtype: 'fp32' } }
    }
  }
  const served = (h: JobHead): string | undefined => h.skillset === 'embed' && (h.model ?? 'demo/tiny-random') === 'demo/tiny-random' ? 'demo/tiny-random' : undefined
  const handler = observer.jobs(inner, served)
  const signal = new AbortController().signal
  const assign = {} as Assign
  for (const id of ['ok1', 'ok2', 'ok3']) await handler.run(head(id), assign, signal)
  await assert.rejects(handler.run(head('bad1'), assign, signal), /no/)
  await assert.rejects(handler.run(head('odd1'), assign, signal), /a bug/)
  await assert.rejects(handler.run(head('bad2', 'embed', 'made/up-by-a-client'), assign, signal))

  const fams = parsePrometheusText((await observer.metrics.scrape()).text)
  const count = (labels: Record<string, string>): number[] => samples(fams, 'ipfs_accelerate_jobs_total', 'ipfs_accelerate_jobs_total', labels).map((s) => s.value)
  assert.deepEqual(count({ skillset: 'embed', model: 'demo/tiny-random', outcome: 'ok' }), [3])
  assert.deepEqual(count({ model: 'demo/tiny-random', outcome: 'ERR_INVALID_INPUT' }), [1])
  assert.deepEqual(count({ outcome: 'ERR_INTERNAL' }), [1], 'an error without a code is ERR_INTERNAL, as the client gets it')
  assert.deepEqual(count({ model: '(none)' }), [1], 'a model this node does not serve never becomes a label value')
  assert.equal(samples(fams, 'ipfs_accelerate_jobs_total', 'ipfs_accelerate_jobs_total').length, 4)
  const hist = samples(fams, 'ipfs_accelerate_job_duration_seconds', 'ipfs_accelerate_job_duration_seconds_count', { outcome: 'ok' })
  assert.deepEqual(hist.map((s) => s.value), [3])
  assert.ok(samples(fams, 'ipfs_accelerate_job_duration_seconds', 'ipfs_accelerate_job_duration_seconds_bucket', { outcome: 'ok' }).length > 10)
  const drop = (source: string, reason: string): number | undefined => samples(fams, 'ipfs_accelerate_dropped_messages_total', 'ipfs_accelerate_dropped_messages_total', { source, reason })[0]?.value
  assert.equal(drop('jobs', 'rate_limited'), 3)
  assert.equal(drop('jobs', 'malformed_offer'), 2)
  assert.equal(drop('jobs', 'bad_frame'), 1)
  assert.equal(drop('links', 'refused'), 7)
  assert.equal(samples(fams, 'ipfs_accelerate_store_exchange_bytes_total', 'ipfs_accelerate_store_exchange_bytes_total', { direction: 'served' })[0]?.value, 1234)
  assert.equal(samples(fams, 'ipfs_accelerate_store_exchange_blocks_total', 'ipfs_accelerate_store_exchange_blocks_total', { direction: 'fetched' })[0]?.value, 9)
  assert.equal(samples(fams, 'ipfs_accelerate_job_bus_events_total', 'ipfs_accelerate_job_bus_events_total', { event: 'lease' })[0]?.value, 4)
  // A second scrape reads the same counters again: no doubling.
  const again = parsePrometheusText((await observer.metrics.scrape()).text)
  assert.equal(samples(again, 'ipfs_accelerate_dropped_messages_total', 'ipfs_accelerate_dropped_messages_total', { source: 'jobs', reason: 'rate_limited' })[0]?.value, 3)

  const status = statusSchema.parse(observer.status())
  assert.deepEqual(status.jobs.totals, { ok: 3, ERR_INVALID_INPUT: 2, ERR_INTERNAL: 1 })
  assert.deepEqual(status.jobs.recent.map((j) => j.id), ['bad2', 'odd1', 'bad1', 'ok3', 'ok2', 'ok1'], 'newest first')
  assert.ok(!JSON.stringify(status).includes('a bug'), 'no error message (it may quote an input) reaches the open status')
})

test('the recent jobs ring keeps the last RECENT_JOBS', async () => {
  const observer = new NodeObserver(() => parts())
  const handler = observer.jobs({ bid: () => undefined, run: async () => ({ model: 'm', output: {}, timings: { queueMs: 0, runMs: 0, batchSize: 1 }, claim: { modelCid: 'c', provider: 'cpu', dtype: 'fp32' } }) }, () => 'm')
  for (let i = 0; i < RECENT_JOBS + 7; i++) await handler.run(head(`j${i}`), {} as Assign, new AbortController().signal)
  const recent = observer.status().jobs.recent
  assert.equal(recent.length, RECENT_JOBS)
  assert.equal(recent[0]!.id, `j${RECENT_JOBS + 6}`)
  assert.equal(recent.at(-1)!.id, 'j7')
  assert.equal(observer.status().jobs.totals.ok, RECENT_JOBS + 7)
})

test('the status page allows only its own inline script and style, by hash', () => {
  const { html, csp } = statusPage()
  const script = /<script>([\s\S]*)<\/script>/.exec(html)![1]!
  const style = /<style>([\s\S]*)<\/style>/.exec(html)![1]!
  const hash = (s: string): string => `'sha256-${createHash('sha256').update(s).digest('base64')}'`
  assert.match(csp, new RegExp(`script-src ${hash(script).replace(/[+/]/g, '\\$&')};`))
  assert.match(csp, new RegExp(`style-src ${hash(style).replace(/[+/]/g, '\\$&')};`))
  assert.match(csp, /default-src 'none'/)
  assert.doesNotMatch(html, /(src|href)=["']?https?:/, 'no external asset')
  assert.doesNotMatch(html, /innerHTML|insertAdjacentHTML|document\.write/, 'peers\' text goes in as text only')
})
