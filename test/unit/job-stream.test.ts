/**
 * Streaming jobs over real job links (protocol 1.1.0) between a JobClient
 * and a JobWorker running the stand-in-stream on a StreamingQueue: partials
 * arrive in order and join into the signed final output; a slow reader
 * pauses its job on the worker with bounded buffers; cancel and a client
 * that goes away stop the runner; a broken link resumes from the last seq;
 * a worker lost after some partials ends the job with ERR_STREAM_BROKEN
 * (not retried); short jobs are not held up behind a stream.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { expectedText } from '../../skillsets/stand-in-stream/index.ts'
import type { JobRequest } from '../../src/p2p/jobs/client.ts'
import { stopAll, waitFor } from '../helpers/p2p-nodes.ts'
import { startClient } from '../helpers/p2p-fake-worker.ts'
import type { TestClient } from '../helpers/p2p-fake-worker.ts'
import { BATCH_MODEL, startStreamWorker, STREAM_MODEL } from '../helpers/stream-worker.ts'
import type { StreamWorker } from '../helpers/stream-worker.ts'

type Texts = string[]
const streamJob = (steps: number, tag: string, texts: Texts, extra: Partial<JobRequest> = {}, onPartial?: () => void | Promise<void>): JobRequest => ({
  skillset: 'stand-in-stream',
  model: STREAM_MODEL,
  cost: steps,
  timeoutMs: 20_000,
  ...extra,
  input: { steps, tag, ...(extra.input ?? {}) },
  stream: { window: extra.stream?.window ?? 8, onPartial: async (p) => { texts.push(p.text as string); await onPartial?.() } }
})

async function swarm (n: number, fn: (ws: StreamWorker[], c: TestClient) => Promise<void>, opts: Parameters<typeof startStreamWorker>[0] = {}, tuning: Parameters<typeof startClient>[1] = {}): Promise<void> {
  const ws: StreamWorker[] = []
  let c: TestClient | undefined
  try {
    for (let i = 0; i < n; i++) ws.push(await startStreamWorker(opts))
    c = await startClient(ws, { heartbeatMs: 100, ...tuning })
    await waitFor('the client to know the workers', () => c!.adverts.serving('stand-in-stream', STREAM_MODEL).length === n)
    await fn(ws, c)
  } finally {
    await c?.stop()
    await stopAll(...ws)
  }
}

test('streamed partials arrive in order and join into the signed final output', async () => {
  await swarm(1, async ([w], c) => {
    const texts: Texts = []
    const res = await c.client.submit(streamJob(100, 'order', texts))
    assert.equal(texts.join(''), expectedText({ steps: 100, tag: 'order' }))
    assert.deepEqual(res.output, { text: texts.join(''), steps: 100 }, 'the partials join into the final text')
    assert.equal(res.partials, 100)
    assert.ok(res.provenance.partialsHash instanceof Uint8Array, 'the partials are covered by the signature')
    assert.ok((res.timings.firstPartialMs ?? Infinity) <= res.timings.totalMs)
    assert.equal(w!.jobs.stats.partials, 100, 'each partial sent once')
    assert.ok(c.links.find(w!.id)!.streaming, 'the link negotiated 1.1.0')
  })
})

test('a slow reader pauses its job on the worker: steps and buffers stay within the window', async () => {
  await swarm(1, async ([w], c) => {
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => { release = resolve })
    const texts: Texts = []
    const window = 4
    const job = c.client.submit(streamJob(500, 'slow', texts, { stream: { window, onPartial: () => {} } }, async () => { if (texts.length === 1) await gate }))
    await waitFor('the first partial', () => texts.length === 1)
    await waitFor('the worker to fill the window', () => w!.jobs.stats.partials >= window)
    // The client acks what its caller consumed on every heartbeat: once the worker has read two of them, it knows all the client will let it send.
    const heard = async (): Promise<void> => { const acks = w!.jobs.stats.acks; await waitFor('two acks from the client', () => w!.jobs.stats.acks >= acks + 2) }
    await heard()
    const steps = w!.steps()
    // The runner emitted `window` partials (the last one's emit waits), nothing more; the client holds them.
    assert.equal(steps, window, `the runner stepped ${steps} times with a window of ${window}`)
    assert.equal(w!.jobs.stats.partials, window, `the worker sent ${w!.jobs.stats.partials} partials`)
    assert.equal(w!.queue.stats.partials, steps)
    await heard()
    assert.equal(w!.steps(), steps, 'still paused: the reader has not consumed')
    release()
    const res = await job
    assert.equal(res.partials, 500)
    assert.equal(texts.join(''), expectedText({ steps: 500, tag: 'slow' }))
  })
})

test('short jobs on the same link are not held up behind a paused stream', async () => {
  await swarm(1, async (_ws, c) => {
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => { release = resolve })
    const texts: Texts = []
    const stream = c.client.submit(streamJob(200, 'long', texts, {}, async () => { await gate }))
    await waitFor('the stream to start', () => texts.length === 1)
    const shorts = await Promise.all([1, 2, 3, 4].map(async (i) => await c.client.submit({ skillset: 'stand-in', model: BATCH_MODEL, input: { items: 1, tag: `s${i}` }, cost: 1, timeoutMs: 10_000 })))
    assert.equal(shorts.length, 4)
    assert.equal(texts.length, 1, 'the stream was paused all along')
    release()
    assert.equal((await stream).partials, 200)
  })
})

test('a cancelled job stops the runner: no steps after the cancel', async () => {
  await swarm(1, async ([w], c) => {
    const texts: Texts = []
    const ctl = new AbortController()
    const job = c.client.submit(streamJob(4000, 'cancel', texts, { input: { msPerStep: 2 }, signal: ctl.signal }))
    await waitFor('some partials', () => texts.length >= 5)
    ctl.abort()
    await assert.rejects(job)
    await waitFor('the worker to cancel the job', () => w!.jobs.stats.cancelled === 1)
    const steps = w!.steps()
    // until the runner lets the job go (then no step of it can follow), not one more step
    await waitFor('the runner to let the job go', () => { assert.equal(w!.steps(), steps, 'no step after the cancel reached the worker'); return w!.running() === 0 })
    assert.ok(steps < 4000)
    assert.equal(w!.queue.depth, 0)
  })
})

test('a client that goes away mid-stream: the worker cancels its job after the resume grace', async () => {
  await swarm(1, async ([w], c) => {
    const texts: Texts = []
    void c.client.submit(streamJob(4000, 'gone', texts, { input: { msPerStep: 2 } })).catch(() => undefined)
    await waitFor('some partials', () => texts.length >= 5)
    await c.stop()
    await waitFor('the worker to cancel the orphaned job', () => w!.jobs.stats.orphaned === 1)
    const steps = w!.steps()
    await waitFor('the runner to let the job go', () => { assert.equal(w!.steps(), steps, 'the runner stopped'); return w!.running() === 0 })
    assert.ok(steps < 4000)
    assert.equal(w!.queue.stats.cancelled, 1)
  }, { resumeGraceMs: 200 })
})

test('a broken link resumes from the last seq: no partial lost or repeated', async () => {
  await swarm(1, async ([w], c) => {
    const texts: Texts = []
    const job = c.client.submit(streamJob(300, 'resume', texts, { input: { msPerStep: 1 } }))
    await waitFor('some partials', () => texts.length >= 20)
    c.links.find(w!.id)!.stream.abort(new Error('test: the link breaks'))
    const res = await job
    assert.equal(texts.join(''), expectedText({ steps: 300, tag: 'resume' }))
    assert.equal(res.partials, 300)
    assert.deepEqual(res.tries, [], 'the same worker finished it')
    assert.ok(w!.jobs.stats.resumed >= 1, 'the worker resumed the stream')
  }, { resumeGraceMs: 5000 })
})

test('a worker lost after some partials: ERR_STREAM_BROKEN naming how far it got, not retried elsewhere', async () => {
  await swarm(2, async (ws, c) => {
    const texts: Texts = []
    // It settles while the worker stops: keep its outcome for the assertions below.
    const settled = c.client.submit(streamJob(4000, 'lost', texts, { input: { msPerStep: 2 } })).then(() => new Error('the job succeeded'), (e: unknown) => e as Error)
    await waitFor('some partials', () => texts.length >= 5)
    const holder = ws.find((w) => w.jobs.stats.leases === 1)!
    const other = ws.find((w) => w !== holder)!
    await holder.stop()
    const e = await settled as Error & { code?: string, partials?: number }
    assert.equal(e.code, 'ERR_STREAM_BROKEN', e.message)
    assert.equal(e.partials, texts.length)
    assert.match(e.message, /streamed \d+ partial/)
    assert.equal(other.jobs.stats.leases, 0, 'not silently retried on the other worker')
  })
})

test('a partial over its frame limit fails the job with ERR_MESSAGE_TOO_LARGE instead of hanging it', async () => {
  await swarm(1, async ([w], c) => {
    const texts: Texts = []
    await assert.rejects(c.client.submit(streamJob(50, 'big', texts)), (e: Error & { code?: string }) => e.code === 'ERR_MESSAGE_TOO_LARGE')
    assert.equal(texts.length, 0)
    await waitFor('the runner to let the job go', () => w!.queue.depth === 0)
  }, { limits: () => ({ input: 4096, output: 4096, partial: 16 }) })
})
