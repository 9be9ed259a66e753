/**
 * Job protocol 1.0.0 beside 1.1.0, and the pieces of streaming flow
 * control: links negotiate the newest version both peers speak; a peer that
 * registers only 1.0.0 (a real libp2p node) still gets non-streaming jobs
 * answered, and is never offered a streaming job; 1.1.0 frames never travel
 * on a 1.0.0 link; frames of jobs take turns on a link (fairness); the
 * window, resume and ordering rules of src/p2p/jobs/stream-flow.ts.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encode } from 'cborg'
import { JobLinks } from '../../src/p2p/jobs/link.ts'
import { JOB_PROTOCOL, JOB_PROTOCOL_STREAM, PROTOCOL_VERSION } from '../../src/p2p/wire/protocol.ts'
import { PartialIn, PartialOut } from '../../src/p2p/jobs/stream-flow.ts'
import { cbor, connect, FrameLog, jobId, rawFrame, silentLog, standInModel, startNode, stopAll, waitFor } from '../helpers/p2p-nodes.ts'
import { FakeWorker, startClient } from '../helpers/p2p-fake-worker.ts'
import { BATCH_MODEL, startStreamWorker, STREAM_MODEL } from '../helpers/stream-worker.ts'

test('an old client (1.0.0 only) gets its non-streaming job answered by a new worker, over a 1.0.0 link', async () => {
  const w = await startStreamWorker()
  const c = await startClient([w], {}, [JOB_PROTOCOL])
  try {
    await waitFor('the client to know the worker', () => c.adverts.serving('stand-in', BATCH_MODEL).length === 1)
    const res = await c.client.submit({ skillset: 'stand-in', model: BATCH_MODEL, input: { items: 2, tag: 'old' }, cost: 2, timeoutMs: 10_000 })
    assert.equal(res.worker, w.id)
    assert.ok(res.output.digest instanceof Uint8Array)
    assert.equal(res.partials, undefined)
    const link = c.links.find(w.id)!
    assert.equal(link.stream.protocol, JOB_PROTOCOL)
    assert.equal(link.streaming, false)
  } finally {
    await c.stop()
    await w.stop()
  }
})

test('a streaming job is never offered to a worker that speaks only 1.0.0; it goes to one that speaks 1.1.0', async () => {
  const old = await FakeWorker.start({ name: 'old', protocols: [JOB_PROTOCOL], models: [standInModel(STREAM_MODEL, { skillset: 'stand-in-stream' })] })
  const fresh = await startStreamWorker()
  const c = await startClient([old, fresh], { bidWindowMs: 300 })
  try {
    await waitFor('the client to know both', () => c.adverts.serving('stand-in-stream', STREAM_MODEL).length === 2)
    const texts: string[] = []
    for (let i = 0; i < 3; i++) {
      const res = await c.client.submit({ skillset: 'stand-in-stream', model: STREAM_MODEL, input: { steps: 5, tag: `v${i}` }, cost: 5, timeoutMs: 10_000, stream: { onPartial: (p) => { texts.push(p.text as string) } } })
      assert.equal(res.worker, fresh.id)
    }
    assert.equal(old.log.of('offer').length, 0, 'the old worker heard no offer')
    assert.equal(old.assigns.length, 0)
    assert.equal(c.links.find(old.id)?.streaming, false)
    assert.equal(c.links.find(fresh.id)?.stream.protocol, JOB_PROTOCOL_STREAM)
  } finally {
    await c.stop()
    await stopAll(old, fresh)
  }
})

test('1.1.0 frames are refused on a 1.0.0 link, both ways; frames of jobs take turns on a link', async () => {
  const a = await startNode()
  const b = await startNode()
  const aLinks = new JobLinks({ libp2p: a, log: silentLog, protocols: [JOB_PROTOCOL] })
  const bLinks = new JobLinks({ libp2p: b, log: silentLog })
  const bWorker = new FrameLog()
  const bClient = new FrameLog()
  bLinks.setHandler('worker', bWorker)
  bLinks.setHandler('client', bClient)
  const aClient = new FrameLog()
  aLinks.setHandler('client', aClient)
  try {
    await aLinks.start()
    await bLinks.start()
    await connect(a, b)
    const old = await aLinks.get(b.peerId, AbortSignal.timeout(5000))
    assert.equal(old.streaming, false)
    const id = jobId('ack')
    await assert.rejects(old.send({ v: PROTOCOL_VERSION, t: 'ack', jobId: id, next: 1 }), /needs job protocol 1.1.0/)
    // Sent by hand anyway: the receiver refuses it for that job only.
    old.stream.send(rawFrame(id, cbor({ v: PROTOCOL_VERSION, t: 'ack', jobId: id, next: 1 })))
    await waitFor('the ack refused', () => bWorker.bad.find((x) => x.jobId === id))
    assert.equal(bWorker.of('ack').length, 0)

    // Fairness, on a 1.1.0 link: 100 frames of one job queued, then one of another: it goes out within two frames.
    const c = await startNode()
    const cLinks = new JobLinks({ libp2p: c, log: silentLog })
    cLinks.setHandler('client', new FrameLog())
    await cLinks.start()
    await connect(c, b)
    try {
      const link = await cLinks.get(b.peerId, AbortSignal.timeout(5000))
      assert.equal(link.streaming, true)
      const long = jobId('long')
      const short = jobId('short')
      const sends = Array.from({ length: 100 }, async (_, i) => { await link.send({ v: PROTOCOL_VERSION, t: 'ack', jobId: long, next: i }) })
      sends.push(link.send({ v: PROTOCOL_VERSION, t: 'cancel', jobId: short }))
      await Promise.all(sends)
      await waitFor('every frame', () => bWorker.frames.filter((f) => f.frame.jobId === long || f.frame.jobId === short).length === 101)
      const order = bWorker.frames.filter((f) => f.frame.jobId === long || f.frame.jobId === short).map((f) => f.frame.jobId)
      const at = order.indexOf(short)
      assert.ok(at <= 2, `the short job's frame went out as frame #${at} of 101`)
      assert.deepEqual(bWorker.of('ack', long).map((f) => f.next), Array.from({ length: 100 }, (_, i) => i), 'one job\'s frames stay in order')
    } finally {
      await stopAll(cLinks)
      await stopAll(c)
    }
  } finally {
    await stopAll(aLinks, bLinks)
    await stopAll(a, b)
  }
})

test('PartialOut: the window pauses emit until acks; unacked partials are kept for a resume, acked ones dropped', async () => {
  const sent: number[] = []
  const out = new PartialOut({ window: 3, send: async (seq) => { sent.push(seq); return true } })
  const signal = new AbortController().signal
  await out.emit({ text: 'a' }, signal)
  await out.emit({ text: 'b' }, signal)
  let third = false
  const p = out.emit({ text: 'c' }, signal).then(() => { third = true })
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(third, false, 'the third emit waits: 3 unacknowledged')
  assert.deepEqual(sent, [0, 1, 2])
  assert.equal(out.buffered, 3)
  out.ack(1)
  await p
  assert.equal(out.buffered, 2, 'the acknowledged partial is dropped')
  assert.throws(() => { out.ack(9) }, /only 3 were sent/)
  out.broken = true
  assert.equal(out.resume(0), false, 'a partial already acknowledged cannot be sent again')
  assert.equal(out.resume(2), true)
  assert.deepEqual(sent, [0, 1, 2, 2], 'resumed from seq 2')
})

test('PartialIn: in order, duplicates dropped, a gap or a window overrun is a protocol error, acks as consumed', async () => {
  const acks: number[] = []
  const got: number[] = []
  const inn = new PartialIn({ window: 4, onPartial: (_d, seq) => { got.push(seq) }, sendAck: (n) => { acks.push(n) } })
  inn.receive(0, { x: 0 })
  inn.receive(0, { x: 0 })
  inn.receive(1, { x: 1 })
  assert.throws(() => { inn.receive(3, { x: 3 }) }, /3 arrived when 2 was expected/)
  await inn.drained()
  assert.deepEqual(got, [0, 1])
  assert.deepEqual(acks, [2], 'acknowledged every ⌈window/2⌉')
  const greedy = new PartialIn({ window: 2, onPartial: async () => { await new Promise(() => {}) }, sendAck: () => {} })
  greedy.receive(0, {})
  greedy.receive(1, {})
  assert.throws(() => { greedy.receive(2, {}) }, /past its window of 2/)
  assert.equal(encode({}).byteLength, 1)
})
