/**
 * The client side of the job protocol (src/p2p/jobs/client.ts), set up as a
 * ClientNode sets it up (JobLinks + Adverts + JobClient on a node that
 * listens nowhere), against fake workers on real libp2p nodes that speak
 * the protocol by hand: a liar that bids low and never answers, a worker
 * that bids for another model, workers that fail, answer late or serve
 * another model.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { JobRequest } from '../../src/p2p/jobs/client.ts'
import type { Assign } from '../../src/p2p/wire/messages.ts'
import { sleep, standInModel, stopAll, waitFor } from '../helpers/p2p-nodes.ts'
import { FakeWorker, knows, startClient } from '../helpers/p2p-fake-worker.ts'
import type { FakeWorkerInit, TestClient } from '../helpers/p2p-fake-worker.ts'

/** Cost 10 against an advertised 10 units/s: a bid with 0 queued claims 1 s, one with 20 queued 3 s. */
const job = (x: string, extra: Partial<JobRequest> = {}): JobRequest => ({ skillset: 'stand-in', model: 'test/model', input: { x }, cost: 10, timeoutMs: 10_000, ...extra })
/** Wait for every direct candidate's bid (both answer within ms), so which bid wins is the ranking's choice. */
const patient = { bidWindowMs: 500, maxBidWindowMs: 1000 }

async function withSwarm (workers: FakeWorker[], tuning: Parameters<typeof startClient>[1], fn: (c: TestClient) => Promise<void>): Promise<void> {
  let c: TestClient | undefined
  try {
    c = await startClient(workers, tuning)
    await fn(c)
  } finally {
    await c?.stop()
    await stopAll(...workers)
  }
}

test('a liar that bids 0 and never answers is given up on after its stall; its failure sends the next job to the honest worker', async () => {
  const liar = await FakeWorker.start({ name: 'liar', bid: () => ({ queuedCost: 0, etaMs: 0 }), onAssign: () => undefined })
  const honest = await FakeWorker.start({ name: 'honest', bid: () => ({ queuedCost: 20, etaMs: 50 }) })
  await withSwarm([liar, honest], { ...patient, heartbeatMs: 100, stallBeats: 3 }, async (c) => {
    await knows(c, [liar, honest])
    const t0 = performance.now()
    const first = await c.client.submit(job('one'))
    assert.ok(performance.now() - t0 < 5000, 'given up on after its stall, not at the end of its lease')
    assert.equal(first.worker, honest.id)
    assert.deepEqual(first.output, { echo: 'one', by: 'honest' })
    assert.equal(liar.assigns.length, 1, 'the liar won the first auction')
    assert.deepEqual(first.tries.map((t) => [t.worker, t.code]), [[liar.id, 'ERR_WORKER_STALLED']])
    assert.equal(c.client.stats.stalled, 1)
    await waitFor('the liar to be told to drop the job', () => liar.log.of('cancel', first.jobId)[0])
    assert.ok(liar.log.of('query', first.jobId).length >= 1, 'asked before being given up on')
    const second = await c.client.submit(job('two'))
    assert.equal(second.worker, honest.id)
    assert.deepEqual(second.tries, [])
    assert.equal(liar.assigns.length, 1, 'the liar\'s failure is remembered: its next bid loses')
    await waitFor('the liar\'s losing bid to be declined', () => liar.log.of('decline', second.jobId).length === 1)
  })
})

test('a bid for another model than the one requested is ignored', async () => {
  const wrong = await FakeWorker.start({ name: 'wrong', bid: () => ({ model: 'test/other', queuedCost: 0 }) })
  const honest = await FakeWorker.start({ name: 'honest', bid: () => ({ queuedCost: 20 }) })
  await withSwarm([wrong, honest], patient, async (c) => {
    await knows(c, [wrong, honest])
    const res = await c.client.submit(job('m'))
    assert.equal(res.worker, honest.id)
    assert.equal(res.model, 'test/model')
    assert.equal(wrong.assigns.length, 0)
    assert.ok(wrong.log.of('offer').length >= 1, 'the wrong bidder was asked')
  })
})

test('a round whose only bids are unusable does not end the job: a slower honest bid still wins', async () => {
  const wrong = await FakeWorker.start({ name: 'wrong', bid: () => ({ model: 'test/other', queuedCost: 0 }) })
  const honest = await FakeWorker.start({ name: 'honest', bidDelayMs: 400 })
  // default bid window: the wrong bid alone is in hand when the window closes
  await withSwarm([wrong, honest], {}, async (c) => {
    await knows(c, [wrong, honest])
    const res = await c.client.submit(job('slow-bid'))
    assert.equal(res.worker, honest.id)
    assert.equal(wrong.assigns.length, 0)
  })
})

test('ERR_INFERENCE is retried on another worker and `tries` names the first', async () => {
  const failing = await FakeWorker.start({ name: 'failing', onAssign: (w, l, a) => w.fail(l, a, 'ERR_INFERENCE', 'the model blew up') })
  const honest = await FakeWorker.start({ name: 'honest', bid: () => ({ queuedCost: 20 }) })
  await withSwarm([failing, honest], patient, async (c) => {
    await knows(c, [failing, honest])
    const res = await c.client.submit(job('retry'))
    assert.equal(res.worker, honest.id)
    assert.deepEqual(res.tries, [{ worker: failing.id, code: 'ERR_INFERENCE', message: 'the model blew up' }])
    assert.equal(res.timings.attempts, 2)
    assert.equal(failing.assigns.length, 1)
  })
})

test('ERR_INVALID_INPUT is not retried: the caller gets it', async () => {
  const refusing = await FakeWorker.start({ name: 'refusing', onAssign: (w, l, a) => w.fail(l, a, 'ERR_INVALID_INPUT', 'texts must not be empty') })
  const honest = await FakeWorker.start({ name: 'honest', bid: () => ({ queuedCost: 20 }) })
  await withSwarm([refusing, honest], patient, async (c) => {
    await knows(c, [refusing, honest])
    await assert.rejects(c.client.submit(job('bad')), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_INVALID_INPUT')
      assert.match(err.message, /texts must not be empty/)
      assert.ok(err.message.includes(refusing.id))
      return true
    })
    assert.equal(honest.assigns.length, 0, 'not offered to another worker')
    assert.equal(c.client.stats.failed, 1)
  })
})

test('after maxTries failures the error names each try, and no further worker is leased', async () => {
  const workers = await Promise.all(['a', 'b', 'c'].map(async (name) => await FakeWorker.start({ name, onAssign: (w, l, a) => w.fail(l, a, 'ERR_INFERENCE', `broken ${name}`) })))
  await withSwarm(workers, { ...patient, maxTries: 2 }, async (c) => {
    await knows(c, workers)
    await assert.rejects(c.client.submit(job('doomed')), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_JOB_FAILED')
      assert.match(err.message, /failed on 2 worker\(s\)/)
      const leased = workers.filter((w) => w.assigns.length > 0)
      assert.equal(leased.length, 2)
      for (const w of leased) {
        assert.ok(err.message.includes(w.id), `names ${w.name}`)
        assert.ok(err.message.includes(`broken ${w.name}`))
      }
      return true
    })
    assert.equal(workers.reduce((n, w) => n + w.assigns.length, 0), 2)
  })
})

test('a late result (after the job was answered elsewhere) is dropped and counted', async () => {
  let lateSent = false
  const flaky = await FakeWorker.start({
    name: 'flaky',
    onAssign: async (w, l, a) => {
      await w.fail(l, a, 'ERR_INFERENCE', 'failed first')
      await waitFor('the job to be answered elsewhere', () => honest.log.of('assign', a.jobId).length > 0)
      await w.answer(l, a, { echo: 'from-the-flaky-one' })
      lateSent = true
    }
  })
  const honest = await FakeWorker.start({ name: 'honest', bid: () => ({ queuedCost: 20 }) })
  await withSwarm([flaky, honest], patient, async (c) => {
    await knows(c, [flaky, honest])
    const res = await c.client.submit(job('once'))
    assert.deepEqual(res.output, { echo: 'once', by: 'honest' })
    await waitFor('the late result to be sent', () => lateSent)
    await waitFor('the late result to be dropped', () => c.client.stats.lateFrames >= 1)
    assert.equal(c.client.stats.answered, 1)
  })
})

test('a model nobody serves: ERR_NO_WORKER at once, listing what is served', async () => {
  const other = await FakeWorker.start({ name: 'other', models: [standInModel('test/other')] })
  await withSwarm([other], { discoveryMs: 10_000 }, async (c) => {
    await knows(c, [other], 'test/other')
    const t0 = performance.now()
    await assert.rejects(c.client.submit(job('x', { model: 'test/missing', timeoutMs: 20_000 })), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_NO_WORKER')
      assert.match(err.message, /no worker serves test\/missing/)
      assert.match(err.message, /test\/other \(stand-in\)/)
      return true
    })
    assert.ok(performance.now() - t0 < 5000, 'not after discoveryMs or the timeout')
    assert.equal(other.assigns.length, 0)
  })
})

test('a model nobody serves, with the worker subscribed to the jobs topic as real workers are: still ERR_NO_WORKER at once', async () => {
  const other = await FakeWorker.start({ name: 'other', models: [standInModel('test/other')], subscribe: true, bid: () => undefined })
  await withSwarm([other], { discoveryMs: 10_000 }, async (c) => {
    await knows(c, [other], 'test/other')
    await waitFor('the worker\'s subscription', () => c.node.services.pubsub.getSubscribers('/ipfs-accelerate/1/jobs/stand-in').length > 0)
    const t0 = performance.now()
    await assert.rejects(c.client.submit(job('x', { model: 'test/missing', timeoutMs: 8000 })), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_NO_WORKER', err.message)
      assert.match(err.message, /test\/other \(stand-in\)/)
      return true
    })
    assert.ok(performance.now() - t0 < 5000, 'not at the end of the timeout')
  })
})

test('no peers at all: ERR_NO_WORKER within discoveryMs', async () => {
  await withSwarm([], { discoveryMs: 500 }, async (c) => {
    const t0 = performance.now()
    await assert.rejects(c.client.submit(job('alone', { timeoutMs: 20_000 })), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_NO_WORKER')
      assert.match(err.message, /no peer found/)
      return true
    })
    assert.ok(performance.now() - t0 < 5000, 'within discoveryMs, not the job timeout')
    assert.equal(c.client.stats.rounds, 0)
  })
})

test('the only worker fails the job: the error names that try, not just "no other worker"', async () => {
  const only = await FakeWorker.start({ name: 'only', onAssign: (w, l, a) => w.fail(l, a, 'ERR_INFERENCE', 'the model blew up') })
  // Its one try failed: the client looks for another worker for discoveryMs (5 s by default) before it gives up.
  await withSwarm([only], { discoveryMs: 500 }, async (c) => {
    await knows(c, [only])
    await assert.rejects(c.client.submit(job('alone')), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_JOB_FAILED')
      assert.match(err.message, /failed on 1 worker\(s\)/)
      assert.ok(err.message.includes(only.id))
      assert.match(err.message, /ERR_INFERENCE the model blew up/)
      return true
    })
    assert.equal(only.assigns.length, 1)
  })
})

test('a signed result verifies against the worker\'s peer id; a tampered one is refused and the job goes elsewhere', async () => {
  const tamperer = await FakeWorker.start({ name: 'tamperer', bid: () => ({ queuedCost: 0, etaMs: 0 }), onAssign: (w, l, a) => w.answer(l, a, undefined, (o) => ({ ...o, echo: 'forged' })) })
  const honest = await FakeWorker.start({ name: 'honest', bid: () => ({ queuedCost: 20, etaMs: 50 }) })
  await withSwarm([tamperer, honest], patient, async (c) => {
    await knows(c, [tamperer, honest])
    const res = await c.client.submit(job('sign-me'))
    assert.equal(res.worker, honest.id)
    assert.deepEqual(res.output, { echo: 'sign-me', by: 'honest' })
    assert.deepEqual(res.tries.map((t) => [t.worker, t.code]), [[tamperer.id, 'ERR_BAD_SIGNATURE']])
    assert.equal(c.client.stats.badSignatures, 1)
    // The provenance that came back names the worker, the model's CID, provider and dtype, and holds a signature.
    assert.equal(res.provenance.worker, honest.id)
    assert.equal(res.provenance.modelCid, 'bafy-test')
    assert.equal(res.provenance.inputHash.byteLength, 32)
    assert.ok(res.provenance.signature.byteLength >= 64)
  })
})

test('a result signed for another client or another input is refused', async () => {
  // Signs as if answering a different client (a replayed result).
  const replayer = await FakeWorker.start({
    name: 'replayer',
    bid: () => ({ queuedCost: 0, etaMs: 0 }),
    onAssign: async (w, l, a) => { await w.answer({ ...l, peer: '12D3KooWAvyrjuWTVJoDJ3ep4YBXhnHAAGGKRU4fQvoff425THaV', send: l.send.bind(l) } as unknown as typeof l, a) }
  })
  const honest = await FakeWorker.start({ name: 'honest', bid: () => ({ queuedCost: 20, etaMs: 50 }) })
  await withSwarm([replayer, honest], patient, async (c) => {
    await knows(c, [replayer, honest])
    const res = await c.client.submit(job('replay'))
    assert.equal(res.worker, honest.id)
    assert.deepEqual(res.tries.map((t) => [t.worker, t.code]), [[replayer.id, 'ERR_BAD_SIGNATURE']])
  })
})

test('a burst from one client spreads to a worker that bids later: the window waits while the quick one\'s queue (this client\'s own jobs) grows', async () => {
  // Both hold each job 400 ms, so the burst's jobs are all in flight while it is auctioned.
  const hold = (w: FakeWorker, link: Parameters<NonNullable<FakeWorkerInit['onAssign']>>[1], a: Assign): void => { void sleep(400).then(async () => { await w.answer(link, a) }) }
  const near = await FakeWorker.start({ name: 'near', onAssign: hold })
  const far = await FakeWorker.start({ name: 'far', bidDelayMs: 80, onAssign: hold })
  // default bid window (20-250 ms after the first bid): without the wait for a long best bid, `far` would get nothing
  await withSwarm([near, far], {}, async (c) => {
    await knows(c, [near, far])
    const res = await Promise.all(Array.from({ length: 10 }, async (_, i) => await c.client.submit(job(`b${i}`))))
    const byFar = res.filter((r) => r.worker === far.id).length
    assert.ok(byFar >= 3 && byFar <= 7, `jobs on the worker that bids 80 ms later: ${byFar} of 10`)
  })
})

test('a lease callback that throws fails its job and gives back the cost counted in flight at that worker', async () => {
  const a = await FakeWorker.start({ name: 'a' })
  const b = await FakeWorker.start({ name: 'b' })
  await withSwarm([a, b], patient, async (c) => {
    await knows(c, [a, b])
    for (let i = 0; i < 3; i++) {
      await assert.rejects(c.client.submit(job(`t${i}`, { onLease: () => { throw new Error('the caller went away') } })), /the caller went away/)
    }
    // Had the 3 throws left their cost counted at a worker, it would look slower and lose every equal bid from now on.
    const used = new Set<string>()
    for (let i = 0; i < 16; i++) used.add((await c.client.submit(job(`n${i}`))).worker)
    assert.equal(used.size, 2, 'equal bids go to both workers')
  })
})

test('a worker that died without a word (its advert outlives it) is passed over once its link could not be opened', async () => {
  // The dead worker claims 1000x the throughput, so it is the auction's pick while it is believed reachable.
  const dead = await FakeWorker.start({ name: 'dead', models: [standInModel('test/model', { throughput: 10_000 })] })
  const honest = await FakeWorker.start({ name: 'honest', models: [standInModel('test/model', { throughput: 10 })] })
  await withSwarm([dead, honest], { fanout: 1, roundMs: 200 }, async (c) => {
    await knows(c, [dead, honest])
    await dead.node.stop()
    await waitFor('the dead worker\'s connection to close', () => c.node.getConnections(dead.node.peerId).length === 0)
    assert.equal(c.adverts.serving('stand-in', 'test/model').length, 2, 'its advert is still in the table')
    const first = await c.client.submit(job('one'))
    assert.equal(first.worker, honest.id)
    const rounds = c.client.stats.rounds
    assert.ok(rounds >= 2, `the first job offered to the dead worker first (${rounds} rounds)`)
    for (const x of ['two', 'three', 'four']) {
      const before = c.client.stats.rounds
      const res = await c.client.submit(job(x))
      assert.equal(res.worker, honest.id)
      assert.equal(c.client.stats.rounds - before, 1, `job ${x}: one round, straight to the worker that answers`)
    }
  })
})
