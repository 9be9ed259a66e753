/**
 * Allow lists on the job bus: a JobWorker with `allow` takes jobs only from
 * the peers it allows (ERR_FORBIDDEN for a direct offer or an assign from
 * any other, no bid on its gossip), and the JobClient, refused by one
 * worker, offers the job to the others; only when every worker that serves
 * the model refused is the job's error ERR_FORBIDDEN.
 */
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { frameLimits } from '../../src/node/frame-limits.ts'
import { encodeMessage } from '../../src/p2p/wire/codec.ts'
import { JobLinks } from '../../src/p2p/jobs/link.ts'
import { JobWorker } from '../../src/p2p/jobs/worker.ts'
import type { JobHandler, RunOutcome } from '../../src/p2p/jobs/worker.ts'
import type { Assign, Offer } from '../../src/p2p/wire/messages.ts'
import { jobsTopic, MAX_GOSSIP_BYTES, PROTOCOL_VERSION } from '../../src/p2p/wire/protocol.ts'
import { connect, FrameLog, jobId, keyOf, silentLog, startNode, stopAll, waitFor } from '../helpers/p2p-nodes.ts'
import { FakeWorker, knows, startClient } from '../helpers/p2p-fake-worker.ts'

const MODEL = 'test/model'

function offer (id: string): Offer {
  return { v: PROTOCOL_VERSION, t: 'offer', jobId: id, traceId: 'trace-1', skillset: 'stand-in', model: MODEL, cost: 1, inputBytes: 16, ttlMs: 5000, round: 0 }
}
function assign (id: string): Assign {
  return { v: PROTOCOL_VERSION, t: 'assign', jobId: id, traceId: 'trace-1', skillset: 'stand-in', model: MODEL, cost: 1, inputBytes: 16, input: { x: id }, leaseMs: 10_000, heartbeatMs: 1000 }
}

async function rawClient (t: TestContext, worker: Awaited<ReturnType<typeof startNode>>): Promise<{ id: string, log: FrameLog, send: (f: Offer | Assign) => Promise<void>, publish: (f: Offer) => Promise<void> }> {
  const node = await startNode()
  const links = new JobLinks({ libp2p: node, log: silentLog })
  const log = new FrameLog()
  links.setHandler('client', log)
  await links.start()
  t.after(async () => { await stopAll(links); await stopAll(node) })
  await connect(node, worker)
  const topic = jobsTopic('stand-in')
  return {
    id: node.peerId.toString(),
    log,
    send: async (f) => { await (await links.get(worker.peerId, AbortSignal.timeout(5000))).send(f, 64 * 1024) },
    publish: async (f) => {
      await waitFor('the worker\'s subscription', () => node.services.pubsub.getSubscribers(topic).some((p) => p.equals(worker.peerId)))
      await node.services.pubsub.publish(topic, encodeMessage(f, MAX_GOSSIP_BYTES))
    }
  }
}

test('a worker with an allow list serves the allowed peer and refuses the others with ERR_FORBIDDEN', async (t) => {
  const worker = await startNode()
  const links = new JobLinks({ libp2p: worker, log: silentLog })
  await links.start()
  const asked: string[] = []
  const ran: string[] = []
  const handler: JobHandler = {
    bid: (head) => { asked.push(head.jobId); return { model: MODEL, provider: 'cpu', dtype: 'fp32', device: 'cpu', queuedCost: 0 } },
    run: async (head, a): Promise<RunOutcome> => { ran.push(head.jobId); return { model: MODEL, output: { echo: a.input.x }, timings: { queueMs: 0, runMs: 1, batchSize: 1 }, claim: { modelCid: 'bafy-test', provider: 'cpu', dtype: 'fp32' } } }
  }
  const allowed = new Set<string>()
  const jobs = new JobWorker({ libp2p: worker, privateKey: keyOf(worker), links, handler, skillsets: ['stand-in'], limits: frameLimits, log: silentLog, allow: (peer) => allowed.has(peer) })
  jobs.start()
  t.after(async () => { await jobs.stop(1000); await stopAll(links); await stopAll(worker) })
  const friend = await rawClient(t, worker)
  const stranger = await rawClient(t, worker)
  allowed.add(friend.id)

  // the allowed peer: a bid, then a result
  const ok = jobId('friend')
  await friend.send(offer(ok))
  await friend.log.next('bid', ok)
  await friend.send(assign(ok))
  assert.deepEqual((await friend.log.next('result', ok)).output, { echo: ok })

  // another peer: a direct offer and an assign are refused at once; the handler is never asked
  const no = jobId('stranger')
  await stranger.send(offer(no))
  const err = await stranger.log.next('error', no)
  assert.equal(err.code, 'ERR_FORBIDDEN')
  assert.match(err.message, new RegExp(`${stranger.id} is not one`))
  const late = jobId('stranger-assign')
  await stranger.send(assign(late))
  assert.equal((await stranger.log.next('error', late)).code, 'ERR_FORBIDDEN')
  // its gossip offer is ignored: no bid, no answer
  const gossip = jobId('stranger-gossip')
  await stranger.publish(offer(gossip))
  await waitFor('the gossip offer counted as forbidden', () => jobs.stats.forbidden >= 3)
  // an answer to the gossip offer would be on its way by now, ahead of the refusal of this direct offer sent after it
  const marker = jobId('stranger-after')
  await stranger.send(offer(marker))
  assert.equal((await stranger.log.next('error', marker)).code, 'ERR_FORBIDDEN')
  assert.equal(stranger.log.of('bid').length, 0)
  assert.equal(stranger.log.of('error', gossip).length, 0, 'no answer to gossip')
  assert.deepEqual(asked, [ok], 'the handler was asked about the allowed peer\'s job only')
  assert.deepEqual(ran, [ok])
  assert.equal(jobs.stats.forbidden, 4)
})

/** A fake worker that refuses every offer with ERR_FORBIDDEN, as a worker whose allow list leaves the client out. */
async function refusing (name: string): Promise<FakeWorker> {
  const w = await FakeWorker.start({ name })
  w.log.onFrame = (link, f) => {
    if (f.t === 'offer' || f.t === 'assign') void w.send(link, { v: PROTOCOL_VERSION, t: 'error', jobId: f.jobId, code: 'ERR_FORBIDDEN', message: `${name} does not take jobs from ${link.peer}` })
  }
  return w
}

test('a client refused by one worker is served by another; the refusal is not a try', async () => {
  const no = await refusing('no')
  const yes = await FakeWorker.start({ name: 'yes', bidDelayMs: 100 })
  const c = await startClient([no, yes], { fanout: 1 })
  try {
    await knows(c, [no, yes])
    for (let i = 0; i < 4; i++) {
      const res = await c.client.submit({ skillset: 'stand-in', model: MODEL, input: { x: `j${i}` }, cost: 1, timeoutMs: 10_000 })
      assert.equal(res.worker, yes.id)
      assert.deepEqual(res.tries, [], 'a refusal is not a failed try')
    }
  } finally {
    await c.stop()
    await stopAll(no, yes)
  }
})

test('refused by every worker that serves the model: ERR_FORBIDDEN at once, naming them and this client', async () => {
  const a = await refusing('a')
  const b = await refusing('b')
  const c = await startClient([a, b])
  try {
    await knows(c, [a, b])
    const t0 = performance.now()
    await assert.rejects(c.client.submit({ skillset: 'stand-in', model: MODEL, input: { x: 'x' }, cost: 1, timeoutMs: 20_000 }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_FORBIDDEN')
      assert.match(err.message, new RegExp(`refused this client ${c.node.peerId.toString()}`))
      assert.ok(err.message.includes(a.id) && err.message.includes(b.id), err.message)
      assert.match(err.message, /--allow-peer/)
      return true
    })
    assert.ok(performance.now() - t0 < 3000, `refused at once, not at the deadline (${Math.round(performance.now() - t0)} ms)`)
  } finally {
    await c.stop()
    await stopAll(a, b)
  }
})
