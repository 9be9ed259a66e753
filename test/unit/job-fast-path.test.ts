/**
 * The one-round-trip path (jobs/auction.ts direct, jobs/worker.ts unbid
 * assigns): a client that holds a link to a worker whose advert shows the
 * model loaded sends the lease with the input, no offer or bid; a refusal
 * sends the job to the ordinary auction; a worker lost mid-job on this path
 * is retried elsewhere, once. Real libp2p nodes on 127.0.0.1 (FakeWorker
 * scripts the worker side) and a real JobWorker for the refusals.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { JobRequest } from '../../src/p2p/jobs/types.ts'
import { FakeWorker, knows, startClient } from '../helpers/p2p-fake-worker.ts'
import type { TestClient } from '../helpers/p2p-fake-worker.ts'
import { connect, standInModel, stopAll, waitFor } from '../helpers/p2p-nodes.ts'

const job = (x: string): JobRequest => ({ skillset: 'stand-in', model: 'test/model', input: { x }, cost: 10, timeoutMs: 10_000 })

/** A worker that joins after the client started: connected, and its directory read (no job link yet). */
async function meet (c: TestClient, w: FakeWorker): Promise<void> {
  await connect(c.node, w.node)
  await c.adverts.fetchDirectory(w.node.peerId, AbortSignal.timeout(5000))
}

test('a second job to a worker the client holds a link to goes as one assign: no offer, no bid', async () => {
  const w = await FakeWorker.start({ name: 'w' })
  const c = await startClient([w], { fastPath: true })
  try {
    await knows(c, [w])
    const first = await c.client.submit(job('one'))
    assert.equal(first.worker, w.id)
    assert.equal(w.log.of('offer', first.jobId).length, 1, 'no link yet: the first job is offered')
    const second = await c.client.submit(job('two'))
    assert.deepEqual(second.output, { echo: 'two', by: 'w' })
    assert.equal(w.log.of('offer', second.jobId).length, 0, 'no offer')
    assert.equal(w.log.of('assign', second.jobId).length, 1)
    assert.equal(second.timings.rounds, 0)
    assert.equal(c.client.stats.fastPath, 1)
  } finally {
    await c.stop()
    await stopAll(w)
  }
})

test('a refused fast-path assign (queue full) is not a try: the job goes to the auction and another worker', async () => {
  let full = false
  const busy = await FakeWorker.start({ name: 'busy', bid: () => full ? undefined : {}, onAssign: (w, l, a) => { if (full) void w.fail(l, a, 'ERR_QUEUE_FULL', 'the queue of test/model holds 4096 cost units: offer the job to another worker'); else void w.answer(l, a) } })
  const c = await startClient([busy], { fastPath: true })
  let other: FakeWorker | undefined
  try {
    await knows(c, [busy])
    await c.client.submit(job('warm'))
    other = await FakeWorker.start({ name: 'other' })
    await meet(c, other)
    await knows(c, [busy, other])
    full = true
    // Only `busy` has a link: the fast path picks it, it refuses, the auction takes `other`.
    const res = await c.client.submit(job('x'))
    assert.equal(res.worker, other.id)
    assert.deepEqual(res.tries, [], 'a refusal is not a failure')
    assert.equal(busy.log.of('assign', res.jobId).length, 1)
    assert.equal(c.client.stats.fastRefused, 1)
    assert.ok(other.log.of('offer', res.jobId).length >= 1, 'then offered')
  } finally {
    await c.stop()
    await stopAll(busy, ...(other === undefined ? [] : [other]))
  }
})

test('a worker that goes silent with a fast-path job: the job is answered once, elsewhere, and the silent worker is not fast-pathed again', async () => {
  let silent = false
  const liar = await FakeWorker.start({ name: 'liar', onAssign: (w, l, a) => { if (!silent) void w.answer(l, a) } })
  const honest = await FakeWorker.start({ name: 'honest', bid: () => ({ queuedCost: 20, etaMs: 50 }) })
  const c = await startClient([liar], { fastPath: true, heartbeatMs: 100, stallBeats: 3 })
  try {
    await knows(c, [liar])
    await c.client.submit(job('warm'))
    await meet(c, honest)
    await knows(c, [liar, honest])
    silent = true
    const res = await c.client.submit(job('lost'))
    assert.equal(res.worker, honest.id)
    assert.deepEqual(res.tries.map((t) => [t.worker, t.code]), [[liar.id, 'ERR_WORKER_STALLED']])
    assert.equal(liar.log.of('offer', res.jobId).length, 0, 'the liar had it by the fast path')
    assert.equal(c.client.stats.answered, 2)
    await waitFor('the liar to be told to drop the job', () => liar.log.of('cancel', res.jobId)[0])
    // Its failure is recent: the next job is auctioned, not assigned to it directly.
    const next = await c.client.submit(job('next'))
    assert.equal(next.worker, honest.id)
    assert.equal(liar.log.of('assign', next.jobId).length, 0)
  } finally {
    await c.stop()
    await stopAll(liar, honest)
  }
})

test('a linked worker whose advert shows far more queued than another known worker is not fast-pathed: the auction asks who is free', async () => {
  // 50 cost units queued at 10 a second: 5 s of work ahead, against an idle worker (0 queued) the client has no link to.
  const busy = await FakeWorker.start({ name: 'busy', models: [standInModel('test/model', { throughput: 10, queuedCost: 50 })] })
  const free = await FakeWorker.start({ name: 'free', models: [standInModel('test/model', { throughput: 10, queuedCost: 0 })] })
  const c = await startClient([busy, free], { fastPath: true })
  try {
    await knows(c, [busy, free])
    await c.links.get(busy.id, AbortSignal.timeout(5000))
    const res = await c.client.submit(job('one'))
    assert.equal(busy.log.of('assign', res.jobId).length === 1 && busy.log.of('offer', res.jobId).length === 0, false, 'not assigned to the busy worker unasked')
    assert.equal(c.client.stats.fastPath, 0)
    assert.ok(busy.log.of('offer', res.jobId).length + free.log.of('offer', res.jobId).length >= 1, 'offered through the auction')
  } finally {
    await c.stop()
    await stopAll(busy, free)
  }
})
