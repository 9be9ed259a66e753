/**
 * Job links between two real libp2p nodes on 127.0.0.1: frames go both
 * ways on one stream; a frame over its job's limit, a body that is not
 * CBOR, or one the schema refuses fails that job only (badFrame) and the
 * link carries on; links are reused; the end of a link is reported.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { JobLinks } from '../../src/p2p/jobs/link.ts'
import type { JobLink } from '../../src/p2p/jobs/link.ts'
import { MAX_CONTROL_FRAME_BYTES, PROTOCOL_VERSION } from '../../src/p2p/wire/protocol.ts'
import type { LinkFrame } from '../../src/p2p/wire/messages.ts'
import { cbor, connect, FrameLog, jobId, rawFrame, silentLog, startNode, stopAll, waitFor } from '../helpers/p2p-nodes.ts'
import type { Node } from '../helpers/p2p-nodes.ts'

interface Side { node: Node, links: JobLinks, worker: FrameLog, client: FrameLog }

async function side (): Promise<Side> {
  const node = await startNode()
  const links = new JobLinks({ libp2p: node, log: silentLog })
  const worker = new FrameLog()
  const client = new FrameLog()
  links.setHandler('worker', worker)
  links.setHandler('client', client)
  await links.start()
  return { node, links, worker, client }
}

let a: Side
let b: Side
before(async () => {
  a = await side()
  b = await side()
  await connect(a.node, b.node)
})
after(async () => {
  await stopAll(a?.links, b?.links)
  await stopAll(a?.node, b?.node)
})

const cancel = (id: string): LinkFrame => ({ v: PROTOCOL_VERSION, t: 'cancel', jobId: id })
const busy = (id: string): LinkFrame => ({ v: PROTOCOL_VERSION, t: 'busy', jobId: id, reason: 'test' })

/** The link b holds for a's link (the stream's other end). */
async function remoteEnd (): Promise<JobLink> {
  return await waitFor('the accepted end of the link', () => b.links.find(a.node.peerId.toString()))
}

test('a link opened by one side carries frames both ways; worker and client frames go to their own handlers', async () => {
  const link = await a.links.get(b.node.peerId, AbortSignal.timeout(5000))
  const id = jobId('both')
  await link.send(cancel(id))
  const got = await b.worker.next('cancel', id)
  assert.deepEqual(got, cancel(id))
  assert.equal(b.client.of('cancel', id).length, 0, 'a worker frame is not given to the client side')
  const back = await remoteEnd()
  assert.equal(back.peer, a.node.peerId.toString())
  await back.send(busy(id))
  assert.deepEqual(await a.client.next('busy', id), busy(id))
  assert.equal(a.worker.of('busy', id).length, 0)
  assert.equal(b.links.stats.accepted, 1)
})

test('links.get reuses an open link, also when asked twice at once', async () => {
  const first = await a.links.get(b.node.peerId, AbortSignal.timeout(5000))
  const opened = a.links.stats.opened
  const [x, y] = await Promise.all([a.links.get(b.node.peerId.toString(), AbortSignal.timeout(5000)), a.links.get(b.node.peerId, AbortSignal.timeout(5000))])
  assert.equal(x, first)
  assert.equal(y, first)
  assert.equal(a.links.stats.opened, opened, 'no new stream')
})

test('an oversized frame fails only its job; the next frames on the link still arrive', async () => {
  const link = await a.links.get(b.node.peerId, AbortSignal.timeout(5000))
  const big = jobId('big')
  const small = jobId('small')
  b.worker.limit = (id) => id === big ? 8 * 1024 : MAX_CONTROL_FRAME_BYTES
  try {
    const assign: LinkFrame = { v: PROTOCOL_VERSION, t: 'assign', jobId: big, traceId: 't1', skillset: 'stand-in', cost: 1, inputBytes: 100_000, input: { pad: 'p'.repeat(100_000) }, leaseMs: 1000, heartbeatMs: 100 }
    await link.send(assign, 1024 * 1024)
    await link.send(cancel(small))
    await b.worker.next('cancel', small)
    const bad = b.worker.bad.filter((x) => x.jobId === big)
    assert.equal(bad.length, 1)
    assert.equal((bad[0]!.err as { code?: string }).code, 'ERR_PROTOCOL')
    assert.match(bad[0]!.err.message, /over its 8192-byte limit/)
    assert.deepEqual(b.client.bad.map((x) => x.jobId), [big], 'the client side hears of it too (it cannot tell whose job it is)')
    assert.equal(b.worker.of('assign', big).length, 0, 'the skipped frame is never delivered')
    assert.equal(link.closed, false)
    // a frame under the raised limit passes on the same link
    const fits: LinkFrame = { ...assign, input: { pad: 'p'.repeat(4000) }, inputBytes: 4000 }
    await link.send(fits, 1024 * 1024)
    assert.equal((await b.worker.next('assign', big)).input.pad, 'p'.repeat(4000))
  } finally {
    b.worker.limit = () => MAX_CONTROL_FRAME_BYTES
  }
})

test('a body that is not CBOR, fails the schema, or names another job → badFrame for that job; the link stays open', async () => {
  const link = await a.links.get(b.node.peerId, AbortSignal.timeout(5000))
  const notCbor = jobId('notcbor')
  const badSchema = jobId('schema')
  const mismatch = jobId('mismatch')
  const after = jobId('after')
  const badBefore = b.worker.bad.length
  link.stream.send(rawFrame(notCbor, Uint8Array.of(0xff, 0xfe, 0x00)))
  link.stream.send(rawFrame(badSchema, cbor({ v: PROTOCOL_VERSION, t: 'cancel', jobId: badSchema, extra: 1 })))
  link.stream.send(rawFrame(mismatch, cbor(cancel(jobId('other')))))
  await link.send(cancel(after))
  await b.worker.next('cancel', after)
  const bad = b.worker.bad.slice(badBefore)
  assert.deepEqual(bad.map((x) => x.jobId), [notCbor, badSchema, mismatch])
  assert.match(bad[0]!.err.message, /not valid CBOR/)
  assert.match(bad[1]!.err.message, /invalid message/)
  assert.match(bad[2]!.err.message, /its header/)
  assert.equal(link.closed, false)
  assert.equal((await remoteEnd()).closed, false)
})

test('a frame for a side the node does not have is a bad frame, not a crash', async () => {
  const c = await startNode()
  const links = new JobLinks({ libp2p: c, log: silentLog })
  const onlyWorker = new FrameLog()
  links.setHandler('worker', onlyWorker)
  try {
    await links.start()
    await connect(a.node, c)
    const link = await a.links.get(c.peerId, AbortSignal.timeout(5000))
    const id = jobId('noclient')
    await link.send(busy(id)) // a client frame, and c has no client side
    await link.send(cancel(id))
    await onlyWorker.next('cancel', id)
    assert.deepEqual(onlyWorker.bad.map((x) => x.jobId), [id])
    assert.match(onlyWorker.bad[0]!.err.message, /not a client/)
  } finally {
    await stopAll(links)
    await stopAll(c)
  }
})

test('a broken header ends the link; the next get opens a new one', async () => {
  const link = await a.links.get(b.node.peerId, AbortSignal.timeout(5000))
  const opened = a.links.stats.opened
  const accepted = b.links.stats.accepted
  const id = jobId('hdr')
  await link.send(cancel(id))
  const far = await remoteEnd()
  await b.worker.next('cancel', id)
  link.stream.send(Uint8Array.of(3, 0x61, 0x62, 0x63)) // a job id of 3 bytes
  await waitFor('the far end to close', () => far.closed)
  await waitFor('the near end to close', () => link.closed)
  const again = await a.links.get(b.node.peerId, AbortSignal.timeout(5000))
  assert.notEqual(again, link)
  assert.equal(a.links.stats.opened, opened + 1)
  const id2 = jobId('hdr2')
  await again.send(cancel(id2))
  await b.worker.next('cancel', id2)
  assert.equal(b.links.stats.accepted, accepted + 1)
})

test('onLinkEnd fires when the remote stops', async () => {
  const c = await startNode()
  const links = new JobLinks({ libp2p: c, log: silentLog })
  links.setHandler('worker', new FrameLog())
  const ended: string[] = []
  const off = a.links.onLinkEnd((peer) => { ended.push(peer) })
  try {
    await links.start()
    await connect(a.node, c)
    const link = await a.links.get(c.peerId, AbortSignal.timeout(5000))
    await link.send(cancel(jobId('end')))
    await waitFor('c to accept the link', () => links.has(a.node.peerId.toString()))
    await stopAll(links)
    await stopAll(c)
    await waitFor('onLinkEnd', () => ended.includes(c.peerId.toString()))
    assert.equal(link.closed, true)
    assert.equal(a.links.has(c.peerId.toString()), false)
    await assert.rejects(link.send(cancel(jobId('late'))), 'a closed link refuses to send')
  } finally {
    off()
    await stopAll(links)
    await stopAll(c)
  }
})

test('a link the peer closes gracefully ends on this side too (found by fuzzing: it lingered until the inactivity timeout)', async () => {
  const link = await a.links.get(b.node.peerId, AbortSignal.timeout(5000))
  const id = jobId('half')
  await link.send(cancel(id))
  const far = await remoteEnd()
  await b.worker.next('cancel', id)
  const ended = b.links.stats.ended
  link.end()
  await waitFor('the far end to end its link', () => far.closed, 3000)
  assert.equal(b.links.stats.ended, ended + 1)
  assert.equal(b.links.has(a.node.peerId.toString()), false)
  await waitFor('the stream to close on both ends', () => link.stream.status === 'closed' && far.stream.status === 'closed', 3000)
})

test('a link closed inside a frame ends as a protocol error', async () => {
  const link = await a.links.get(b.node.peerId, AbortSignal.timeout(5000))
  const id = jobId('cut')
  await link.send(cancel(id))
  const far = await remoteEnd()
  await b.worker.next('cancel', id)
  const frame = rawFrame(jobId('cut2'), cbor(cancel('x')))
  link.stream.send(frame.subarray(0, frame.byteLength - 2))
  await link.stream.close()
  await waitFor('the far end to end its link', () => far.closed, 3000)
  await assert.rejects(far.send(busy(id)), /closed inside a frame/)
})
