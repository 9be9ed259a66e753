/**
 * Serving limits of the blocks protocol (src/store/exchange/limits.ts): the
 * counters on a fake clock, then real stores on 127.0.0.1: a greedy peer
 * holding its streams is refused (busy, then rate-limited) while an honest
 * peer pulls the model from the same node; a client refused by one holder
 * takes the model from another.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import type { Stream } from '@libp2p/interface'
import { ServeLimits } from '../../src/store/exchange/limits.ts'
import { BLOCKS_PROTOCOL, controlFrame, FrameReader, WIRE_VERSION } from '../../src/store/exchange/wire.ts'
import type { Request } from '../../src/store/exchange/wire.ts'
import type { ContentStore } from '../../src/store/content-store.ts'
import { addrOf, smallModelFiles, startStore, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'

const code = (c: string) => (err: Error & { code?: string }): boolean => err.code === c

test('limits: global and per-peer request caps, a per-peer byte budget that refills, a has cap', async () => {
  let now = 0
  const limits = new ServeLimits({ maxActive: 3, maxActivePerPeer: 2, peerBurstBytes: 1000, peerBytesPerSecond: 1000, maxHasRoots: 4 }, () => now)
  const a1 = limits.admit('a')
  const a2 = limits.admit('a')
  assert.throws(() => limits.admit('a'), code('ERR_PEER_BUSY'), 'a third request of one peer')
  const b1 = limits.admit('b')
  assert.throws(() => limits.admit('c'), (err: Error & { code?: string }) => err.code === 'ERR_PEER_BUSY' && /serves 3 block requests at once/.test(err.message), 'past the global cap')
  a2.release()
  a2.release() // idempotent
  assert.equal(limits.activeRequests, 2)
  const c1 = limits.admit('c')
  // a's budget: 1000 bytes, then in debt until refilled
  const signal = new AbortController().signal
  await a1.spend(1000, signal)
  now += 1 // 1 byte refilled
  a1.release()
  const a3 = limits.admit('a')
  const t = performance.now()
  await a3.spend(101, signal) // 100 bytes of debt: waits ~100 ms at 1000 B/s
  assert.ok(performance.now() - t >= 90, 'a stream past its budget is slowed to the refill rate')
  a3.release()
  assert.throws(() => limits.admit('a'), (err: Error & { code?: string }) => err.code === 'ERR_RATE_LIMITED' && /retry in 1 s/.test(err.message), 'in debt: refused')
  now += 1000
  limits.admit('a').release()
  assert.throws(() => { limits.checkHasRoots(5) }, code('ERR_TOO_MANY_ROOTS'))
  limits.checkHasRoots(4)
  b1.release()
  c1.release()
  assert.equal(limits.activeRequests, 0)
  assert.throws(() => new ServeLimits({ maxActive: 0 }), RangeError)
})

/** Send one raw request from `from` to `to` and return the stream and its first frame. */
async function raw (from: ContentStore, to: ContentStore, req: Request): Promise<{ stream: Stream, reader: FrameReader, first: Awaited<ReturnType<FrameReader['next']>> }> {
  const peer = to.libp2p?.peerId
  assert.ok(peer !== undefined && from.libp2p !== undefined)
  const stream = await from.libp2p.dialProtocol(peer, BLOCKS_PROTOCOL)
  const reader = new FrameReader(stream)
  stream.send(controlFrame(req))
  return { stream, reader, first: await reader.next(AbortSignal.timeout(10_000)) }
}

/** Read an answer to its end; the number of block frames. */
async function drain (reader: FrameReader, first: Awaited<ReturnType<FrameReader['next']>>): Promise<number> {
  let blocks = first?.kind === 'block' ? 1 : 0
  for (let f = await reader.next(AbortSignal.timeout(30_000)); f !== undefined && f.kind === 'block'; f = await reader.next(AbortSignal.timeout(30_000))) blocks++
  return blocks
}

const errorCodeOf = (f: Awaited<ReturnType<FrameReader['next']>>): string | undefined =>
  f?.kind === 'control' && (f.msg as { t?: string }).t === 'error' ? (f.msg as { code: string }).code : undefined

test('a greedy peer is refused (busy, then rate-limited) while an honest peer pulls from the same node', async () => {
  const root = await tempDir()
  await writeModelDir(join(root, 'model'), smallModelFiles())
  const limits = { maxActive: 3, maxActivePerPeer: 2, peerBurstBytes: 512 * 1024, peerBytesPerSecond: 2 * 1024 * 1024 }
  const a = await startStore(join(root, 'a'), { network: true, exchange: { limits } })
  const greedy = await startStore(join(root, 'g'), { network: true })
  const honest = await startStore(join(root, 'h'), { network: true })
  const held: Stream[] = []
  try {
    const rec = await a.models.importDir(join(root, 'model'), { id: 'test/limits' })
    await greedy.libp2p?.dial(multiaddr(addrOf(a)))
    const dag: Request = { v: WIRE_VERSION, t: 'dag', roots: [CID.parse(rec.cid).bytes] }
    // two dag streams that the greedy peer does not read: both admitted, both held open
    for (let i = 0; i < 2; i++) {
      const r = await raw(greedy, a, dag)
      assert.equal(r.first?.kind, 'block', 'admitted: blocks flow')
      held.push(r.stream)
    }
    const third = await raw(greedy, a, dag)
    assert.equal(errorCodeOf(third.first), 'ERR_PEER_BUSY')
    const has = await raw(greedy, a, { v: WIRE_VERSION, t: 'has', roots: [CID.parse(rec.cid).bytes] })
    assert.equal(errorCodeOf(has.first), 'ERR_PEER_BUSY', 'every kind of request counts')
    assert.equal(a.exchange?.stats.refusedRequests, 2, 'refusals are counted (for /metrics)')

    // the honest peer is served meanwhile (the global cap leaves it a slot)
    const pulled = await honest.models.pull(rec.cid, { peers: [addrOf(a)] })
    assert.equal(pulled.fetched.via, 'exchange')
    assert.deepEqual(Object.keys(pulled.fetched.byPeer), [a.libp2p?.peerId.toString()])
    await honest.models.verify(rec.cid)

    // the greedy peer lets go of its streams; once they have wound down it is served again
    for (const s of held) s.abort(new Error('greedy peer gives up'))
    held.length = 0
    const hasReq: Request = { v: WIRE_VERSION, t: 'has', roots: [CID.parse(rec.cid).bytes] }
    for (let tries = 0; errorCodeOf((await raw(greedy, a, hasReq)).first) !== undefined; tries++) {
      assert.ok(tries < 500, 'the aborted streams wind down')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    // now it reads a whole DAG at once: past its burst the stream is slowed to the refill rate,
    // and while it is in debt a new request is refused
    const whole = await raw(greedy, a, dag)
    const drained = drain(whole.reader, whole.first)
    let settled = false
    void drained.finally(() => { settled = true })
    let refusal: string | undefined
    while (!settled && refusal === undefined) {
      const c = errorCodeOf((await raw(greedy, a, hasReq)).first)
      if (c === 'ERR_RATE_LIMITED') refusal = c
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.equal(refusal, 'ERR_RATE_LIMITED', 'refused while in debt')
    assert.ok(await drained >= 6, 'the slowed stream is still served whole')
  } finally {
    for (const s of held) s.abort(new Error('test over'))
    await honest.stop()
    await greedy.stop()
    await a.stop()
  }
})

test('a client refused by one holder (busy) takes the model from another; the refusal reaches it as a typed error', async () => {
  const root = await tempDir()
  await writeModelDir(join(root, 'model'), smallModelFiles())
  // one request at a time, and a slow budget, so that the greedy stream stays in progress
  const a = await startStore(join(root, 'a'), { network: true, exchange: { limits: { maxActive: 1, peerBurstBytes: 256 * 1024, peerBytesPerSecond: 256 * 1024 } } })
  const c = await startStore(join(root, 'c'), { network: true })
  const g = await startStore(join(root, 'g'), { network: true })
  const b = await startStore(join(root, 'b'), { network: true })
  const held: Stream[] = []
  try {
    const rec = await a.models.importDir(join(root, 'model'), { id: 'test/refused' })
    await c.models.importDir(join(root, 'model'), { id: 'test/refused' })
    await g.libp2p?.dial(multiaddr(addrOf(a)))
    const r = await raw(g, a, { v: WIRE_VERSION, t: 'dag', roots: [CID.parse(rec.cid).bytes] })
    held.push(r.stream) // a's only slot is taken
    const pulled = await b.models.pull(rec.cid, { peers: [addrOf(a), addrOf(c)] })
    assert.deepEqual(Object.keys(pulled.fetched.byPeer), [c.libp2p?.peerId.toString()])
    await assert.rejects(b.exchange!.has(a.libp2p!.peerId, [CID.parse(rec.cid)]), (err: Error & { code?: string }) => err.code === 'ERR_PEER_BUSY' && err.message.includes(a.libp2p!.peerId.toString()), 'the client gets the typed error')
  } finally {
    for (const s of held) s.abort(new Error('test over'))
    await b.stop()
    await g.stop()
    await c.stop()
    await a.stop()
  }
})
