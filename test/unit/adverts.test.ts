/**
 * Adverts (src/p2p/swarm/adverts.ts): the table of live workers every node keeps.
 * accept() is driven directly for the table's rules (seq within a boot, a
 * restart, foreign addresses, the size cap, leaving); two and three real
 * nodes on 127.0.0.1 for gossip and the directory protocol.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { Adverts } from '../../src/p2p/swarm/adverts.ts'
import type { PeerAdvert } from '../../src/p2p/swarm/adverts.ts'
import type { Advert, AdvertModel } from '../../src/p2p/wire/messages.ts'
import { PROTOCOL_VERSION } from '../../src/p2p/wire/protocol.ts'
import { advertBody, connect, newPeerId, silentLog, sleep, standInModel, startNode, stopAll, waitFor } from '../helpers/p2p-nodes.ts'
import type { Node } from '../helpers/p2p-nodes.ts'

let node: Node
before(async () => { node = await startNode() })
after(async () => { await stopAll(node) })

function advert (peerId: string, opts: { bootId?: string, seq?: number, models?: AdvertModel[], addrs?: string[], leaving?: boolean } = {}): Advert {
  return {
    v: PROTOCOL_VERSION,
    t: 'advert',
    bootId: opts.bootId ?? 'boot-one',
    seq: opts.seq ?? 0,
    ttlMs: 60_000,
    leaving: opts.leaving ?? false,
    hardware: { cpu: { model: 'cpu', physicalCores: 1, logicalCores: 1, flags: [] }, memoryTotalMB: 1, gpus: [], providers: ['cpu'] },
    models: opts.models ?? [standInModel('test/model')],
    held: [],
    queueDepth: 0,
    addrs: opts.addrs ?? [`/ip4/127.0.0.1/tcp/4001/p2p/${peerId}`]
  }
}
const ids = (s: Array<{ peerId: string }>): string[] => s.map((x) => x.peerId)

/** A worker node and another node, each with the Adverts `make` gives it; both stopped in the end, whatever happens. */
async function withPair (make: (worker: Node, other: Node) => [Adverts, Adverts], fn: (worker: Node, other: Node, wa: Adverts, oa: Adverts) => Promise<void>): Promise<void> {
  const worker = await startNode()
  const other = await startNode()
  const [wa, oa] = make(worker, other)
  try {
    await fn(worker, other, wa, oa)
  } finally {
    await stopAll(wa, oa)
    await stopAll(worker, other)
  }
}

test('within one boot an older seq is ignored; a newer one replaces the advert', async () => {
  const a = new Adverts({ libp2p: node, log: silentLog })
  const p = await newPeerId()
  a.accept(p, advert(p, { seq: 5, models: [standInModel('test/five')] }))
  a.accept(p, advert(p, { seq: 3, models: [standInModel('test/three')] }))
  assert.deepEqual(ids(a.serving('stand-in', 'test/five')), [p])
  assert.deepEqual(a.serving('stand-in', 'test/three'), [])
  a.accept(p, advert(p, { seq: 6, models: [standInModel('test/six')] }))
  assert.deepEqual(ids(a.serving('stand-in', 'test/six')), [p])
  assert.deepEqual(a.serving('stand-in', 'test/five'), [])
  assert.equal(a.stats.restarts, 0)
})

test('a new bootId is taken even with seq 0: the restart is recognised', async () => {
  const a = new Adverts({ libp2p: node, log: silentLog })
  const p = await newPeerId()
  a.accept(p, advert(p, { bootId: 'boot-before', seq: 900, models: [standInModel('test/old')] }))
  a.accept(p, advert(p, { bootId: 'boot-after1', seq: 0, models: [standInModel('test/new')] }))
  assert.equal(a.stats.restarts, 1)
  assert.deepEqual(ids(a.serving('stand-in', 'test/new')), [p])
  assert.deepEqual(a.serving('stand-in', 'test/old'), [])
  assert.equal(a.peers()[0]!.advert.seq, 0)
  // the new boot's own seq order holds from there
  a.accept(p, advert(p, { bootId: 'boot-after1', seq: 2, models: [standInModel('test/two')] }))
  a.accept(p, advert(p, { bootId: 'boot-after1', seq: 1, models: [standInModel('test/one')] }))
  assert.deepEqual(ids(a.serving('stand-in', 'test/two')), [p])
  assert.equal(a.stats.restarts, 1)
})

test('addresses that do not end in the sender\'s /p2p/ id are dropped and counted', async () => {
  const seen: PeerAdvert[] = []
  const a = new Adverts({ libp2p: node, log: silentLog, onAdvert: (e) => { seen.push(e) } })
  const p = await newPeerId()
  const q = await newPeerId()
  const own = `/ip4/127.0.0.1/tcp/4001/p2p/${p}`
  a.accept(p, advert(p, { addrs: [own, `/ip4/10.0.0.9/tcp/4001/p2p/${q}`, '/ip4/10.0.0.9/tcp/4001', `/ip4/10.0.0.9/tcp/4001/p2p/${p}/p2p-circuit/p2p/${q}`] }))
  assert.equal(a.stats.foreignAddrs, 1, 'one count per advert')
  assert.deepEqual(a.peers()[0]!.advert.addrs, [own])
  assert.deepEqual(seen[0]!.advert.addrs, [own], 'onAdvert sees only the kept addresses')
  assert.deepEqual(a.serving('stand-in', 'test/model')[0]!.addrs.map(String), [own])
  a.accept(p, advert(p, { seq: 1, addrs: [own] }))
  assert.equal(a.stats.foreignAddrs, 1)
})

test('the table is bounded by maxPeers, dropping the least recently heard', async () => {
  const a = new Adverts({ libp2p: node, log: silentLog, maxPeers: 3 })
  const ps = await Promise.all(Array.from({ length: 5 }, async () => await newPeerId()))
  a.accept(ps[0]!, advert(ps[0]!))
  a.accept(ps[1]!, advert(ps[1]!))
  a.accept(ps[2]!, advert(ps[2]!))
  a.accept(ps[0]!, advert(ps[0]!, { seq: 1 })) // heard again: now the freshest
  a.accept(ps[3]!, advert(ps[3]!))
  a.accept(ps[4]!, advert(ps[4]!))
  assert.deepEqual(new Set(ids(a.peers())), new Set([ps[0], ps[3], ps[4]]))
  assert.equal(a.serving('stand-in', 'test/model').length, 3)
})

test('a leaving advert removes the peer; one from an older boot does not', async () => {
  const left: string[] = []
  const a = new Adverts({ libp2p: node, log: silentLog, onLeave: (p) => { left.push(p) } })
  const p = await newPeerId()
  a.accept(p, advert(p, { bootId: 'boot-current' }))
  a.accept(p, advert(p, { bootId: 'boot-earlier', leaving: true }))
  assert.deepEqual(ids(a.peers()), [p], 'a stale boot\'s goodbye is ignored')
  a.accept(p, advert(p, { bootId: 'boot-current', seq: 1, leaving: true }))
  assert.deepEqual(a.peers(), [])
  assert.deepEqual(a.serving('stand-in', 'test/model'), [])
  assert.deepEqual(left, [p])
})

test('serving() filters by skillset, model and loaded; served() lists loaded models; mayServe() trusts adverts', async () => {
  const a = new Adverts({ libp2p: node, log: silentLog })
  const p = await newPeerId()
  const q = await newPeerId()
  a.accept(p, advert(p, { models: [standInModel('test/up'), standInModel('test/loading', { loaded: false }), { ...standInModel('test/emb'), skillset: 'embed' }] }))
  a.accept(q, advert(q, { models: [standInModel('test/up', { throughput: 99 })] }))
  assert.deepEqual(new Set(ids(a.serving('stand-in', 'test/up'))), new Set([p, q]))
  assert.equal(a.serving('stand-in', 'test/up').find((s) => s.peerId === q)!.model.throughput, 99)
  assert.deepEqual(a.serving('stand-in', 'test/loading'), [], 'not loaded: not served')
  assert.deepEqual(a.serving('stand-in', 'test/emb'), [], 'another skillset')
  assert.deepEqual(ids(a.serving('embed', 'test/emb')), [p])
  assert.deepEqual(new Set(ids(a.serving('stand-in', undefined))), new Set([p, q]))
  assert.ok(a.serving('stand-in', undefined).every((s) => s.source === 'advert'))
  assert.deepEqual(a.served(), [{ skillset: 'embed', id: 'test/emb' }, { skillset: 'stand-in', id: 'test/up' }])
  assert.equal(a.mayServe(p, 'stand-in', 'test/loading'), true, 'advertised, loading')
  assert.equal(a.mayServe(q, 'stand-in', 'test/loading'), false, 'its advert lists no such model')
  assert.equal(a.mayServe(await newPeerId(), 'stand-in', 'test/anything'), true, 'an unknown peer may')
})

test('directory() and fetchDirectory() between real nodes: hints that serving() returns', async () => {
  const worker = await startNode()
  const asker = await startNode()
  const wa = new Adverts({ libp2p: worker, log: silentLog, build: () => advertBody(worker, [standInModel('test/dir')]) })
  // the asker is not started: it hears no gossip, so what it knows comes from the directory alone
  const ask = new Adverts({ libp2p: asker, log: silentLog })
  try {
    await wa.start()
    const third = await newPeerId()
    const foreign = await newPeerId()
    wa.accept(third, advert(third, { models: [standInModel('test/third')], addrs: [`/ip4/127.0.0.1/tcp/4009/p2p/${third}`, `/ip4/127.0.0.1/tcp/4010/p2p/${foreign}`] }))
    const dir = wa.directory()
    assert.deepEqual(dir.peers.map((p) => p.peerId), [worker.peerId.toString(), third], 'itself first, then what it heard')
    await connect(asker, worker)
    const named = await ask.fetchDirectory(worker.peerId, AbortSignal.timeout(5000))
    assert.equal(named, 2)
    assert.equal(ask.stats.directoriesFetched, 1)
    assert.equal(wa.stats.directoriesServed, 1)
    const s = ask.serving('stand-in', 'test/dir')
    assert.deepEqual(ids(s), [worker.peerId.toString()])
    assert.equal(s[0]!.source, 'hint')
    assert.deepEqual(s[0]!.addrs.map(String).sort(), worker.getMultiaddrs().map(String).sort())
    const t = ask.serving('stand-in', 'test/third')
    assert.deepEqual(ids(t), [third])
    assert.deepEqual(t[0]!.addrs.map(String), [`/ip4/127.0.0.1/tcp/4009/p2p/${third}`], 'a hint\'s foreign address is dropped too')
    assert.deepEqual(ask.served().map((m) => m.id), ['test/dir', 'test/third'])
    // the worker's own advert, once heard, wins over the hint
    ask.accept(worker.peerId.toString(), advert(worker.peerId.toString(), { models: [standInModel('test/dir', { throughput: 42 })], addrs: worker.getMultiaddrs().map(String) }))
    const own = ask.serving('stand-in', 'test/dir')
    assert.equal(own.length, 1)
    assert.equal(own[0]!.source, 'advert')
    assert.equal(own[0]!.model.throughput, 42)
  } finally {
    await stopAll(wa, ask)
    await stopAll(worker, asker)
  }
})

test('learnFrom(): a directory request that failed is made again after 2 s, not a minute later; fetching says one is in flight', async () => {
  await withPair((worker, asker) => [new Adverts({ libp2p: worker, log: silentLog, build: () => advertBody(worker, [standInModel('test/retry')]) }), new Adverts({ libp2p: asker, log: silentLog })], async (worker, asker, wa, ask) => {
    // The worker does not answer the directory protocol yet (a peer too loaded to answer in time looks the same).
    await connect(asker, worker)
    const first = ask.learnFrom(worker.peerId, 2000)
    assert.equal(ask.fetching, true, 'a request in flight')
    await first
    assert.equal(ask.fetching, false)
    assert.equal(ask.stats.directoriesFetched, 0)
    await wa.start()
    // Within 2 s of the failure it is not asked again (a loaded peer is not hammered)...
    await ask.learnFrom(worker.peerId, 2000)
    assert.equal(wa.stats.directoriesServed, 0, 'not asked again at once')
    // ...after that it is, and the answer is taken.
    for (let i = 0; i < 30 && ask.stats.directoriesFetched === 0; i++) {
      await sleep(200)
      await ask.learnFrom(worker.peerId, 2000)
    }
    assert.equal(ask.stats.directoriesFetched, 1, 'asked again within 6 s of the failure')
    assert.equal(wa.stats.directoriesServed, 1)
    assert.deepEqual(ids(ask.serving('stand-in', 'test/retry')), [worker.peerId.toString()])
    // A request that succeeded is not made again within the minute.
    await ask.learnFrom(worker.peerId, 2000)
    assert.equal(wa.stats.directoriesServed, 1)
  })
})

test('adverts travel by gossip; a stopping worker\'s leaving advert removes it', async () => {
  const worker = await startNode()
  const listener = await startNode()
  const wa = new Adverts({ libp2p: worker, log: silentLog, intervalMs: 1000, build: () => advertBody(worker, [standInModel('test/gossip')]) })
  const left: string[] = []
  const la = new Adverts({ libp2p: listener, log: silentLog, onLeave: (p) => { left.push(p) } })
  try {
    await la.start()
    await wa.start()
    await connect(listener, worker)
    const found = await waitFor('the worker\'s advert', () => la.serving('stand-in', 'test/gossip')[0])
    assert.equal(found.peerId, worker.peerId.toString())
    assert.equal(found.source, 'advert')
    assert.ok(found.addrs.length > 0)
    await wa.stop()
    await waitFor('the leaving advert', () => la.peers().length === 0)
    assert.deepEqual(la.serving('stand-in', 'test/gossip'), [])
    assert.deepEqual(left, [worker.peerId.toString()])
  } finally {
    await stopAll(wa, la)
    await stopAll(worker, listener)
  }
})

test('an idle worker advertises on change, then only as a refresh; load changes wait for the interval; TTL is three refreshes', async () => {
  const worker = await startNode()
  const listener = await startNode()
  let model = standInModel('test/idle')
  const wa = new Adverts({ libp2p: worker, log: silentLog, intervalMs: 200, refreshMs: 1500, build: () => advertBody(worker, [model]) })
  const heard: Array<{ at: number, advert: Advert }> = []
  const la = new Adverts({ libp2p: listener, log: silentLog, onAdvert: (p) => { heard.push({ at: performance.now(), advert: p.advert }) } })
  try {
    await la.start()
    await wa.start()
    await connect(listener, worker)
    await waitFor('the first advert', () => heard.length >= 1)
    assert.equal(heard[0]!.advert.ttlMs, 4500)
    // Nothing changes: the first advert is repeated once at the next tick, then the next is the refresh, a refresh period later, none between.
    await waitFor('the refresh', () => wa.sent.refresh >= 1, 10_000)
    await waitFor('the refresh to arrive', () => heard.length >= 3, 5000)
    assert.equal(heard.length, 3, `adverts heard: ${heard.map((h) => h.advert.seq).join(', ')}`)
    assert.equal(wa.sent.repeat, 1)
    assert.ok(heard[1]!.at - heard[0]!.at < 1000, `the repeat came ${Math.round(heard[1]!.at - heard[0]!.at)} ms after the first advert`)
    assert.ok(heard[2]!.at - heard[1]!.at >= 1500 * 0.75 - 250, `the refresh (1500 ms ± 25 %) came ${Math.round(heard[2]!.at - heard[1]!.at)} ms after the repeat`)
    assert.equal(wa.sent.load, 0)
    // Load alone changed: one advert within an interval or two, carrying it.
    model = { ...model, queuedCost: 7 }
    await waitFor('the load advert', () => heard.some((h) => h.advert.models[0]!.queuedCost === 7), 5000)
    assert.equal(wa.sent.load, 1)
    // What it serves changed: it goes out at once (the node calls publishSoon), as a change.
    const changes = wa.sent.change
    model = { ...model, loaded: false }
    wa.publishSoon()
    await waitFor('the change advert', () => heard.some((h) => !h.advert.models[0]!.loaded), 5000)
    assert.equal(wa.sent.change, changes + 1)
    assert.ok(la.serving('stand-in', 'test/idle').length === 0, 'a model that is not loaded is not served')
  } finally {
    await stopAll(wa, la)
    await stopAll(worker, listener)
  }
})

test('the refresh comes within half the last advert\'s TTL when the table grew since (the period grew with it); a directory passes on no second-hand hint', async () => {
  const heard: Array<{ at: number, advert: Advert }> = []
  await withPair((worker, listener) => [
    new Adverts({ libp2p: worker, log: silentLog, intervalMs: 200, refreshMs: 1500, build: () => advertBody(worker, [standInModel('test/grow')]) }),
    new Adverts({ libp2p: listener, log: silentLog, onAdvert: (p) => { heard.push({ at: performance.now(), advert: p.advert }) } })
  ], async (worker, listener, wa, la) => {
    await la.start()
    await wa.start()
    await connect(listener, worker)
    await waitFor('the first advert and its repeat', () => heard.length >= 2)
    assert.equal(heard[1]!.advert.ttlMs, 4500)
    // Ten workers join the table: the refresh period is now 4 s per peer, 40 s, past the 4.5 s the last advert lives.
    for (let i = 0; i < 10; i++) {
      const p = await newPeerId()
      wa.accept(p, advert(p))
    }
    assert.equal(wa.refreshMs, 40_000)
    await waitFor('the refresh', () => heard.length >= 3, 6000)
    const gap = heard[2]!.at - heard[1]!.at
    assert.ok(gap <= 4500 / 2 * 1.25 + 300, `the refresh came ${Math.round(gap)} ms after the last advert, which lived 4500 ms`)
    assert.equal(heard[2]!.advert.ttlMs, 120_000, 'and lives three of the new periods')
    // The ten are in its table as if their adverts came by gossip, so its directory names them; a hint it takes from
    // another directory is kept but not passed on, so hints cannot circulate and outlive a dead worker.
    const third = await newPeerId()
    const dir = wa.directory()
    assert.equal(dir.peers.length, 11, 'itself and the ten it heard')
    la.accept(third, advert(third, { models: [standInModel('test/third')] }))
    const named = await wa.fetchDirectory(listener.peerId, AbortSignal.timeout(5000))
    assert.equal(named, 1, 'the listener named the third worker (and this one, which is no hint here)')
    assert.ok(wa.serving('stand-in', 'test/third').some((s) => s.peerId === third && s.source === 'hint'))
    assert.ok(!wa.directory().peers.some((p) => p.peerId === third), 'a second-hand hint is not in the answer')
  })
})

test('a change goes out again at each settle repeat (for nodes gossip missed while the mesh formed), then not until the refresh', async () => {
  const heard: Array<{ at: number, advert: Advert }> = []
  await withPair((worker, listener) => [
    new Adverts({ libp2p: worker, log: silentLog, intervalMs: 100, refreshMs: 60_000, settleRepeatsMs: [800, 1600], build: () => advertBody(worker, [standInModel('test/settle')]) }),
    new Adverts({ libp2p: listener, log: silentLog, onAdvert: (p) => { heard.push({ at: performance.now(), advert: p.advert }) } })
  ], async (worker, listener, wa, la) => {
    await la.start()
    await connect(listener, worker)
    await waitFor('the listener\'s subscription to reach the worker', () => worker.services.pubsub.getSubscribers('/ipfs-accelerate/1/adverts').length > 0 || undefined)
    await wa.start()
    await waitFor('the change, its repeat and two settle repeats', () => heard.length >= 4, 5000)
    const at = heard.map((h) => h.at - heard[0]!.at)
    assert.ok(at[2]! >= 800 - 150 && at[2]! < 800 + 600, `the first settle repeat came at ${Math.round(at[2]!)} ms`)
    assert.ok(at[3]! >= 1600 - 150 && at[3]! < 1600 + 600, `the second settle repeat came at ${Math.round(at[3]!)} ms`)
    assert.deepEqual(heard.map((h) => h.advert.seq), [0, 1, 2, 3], 'each one a new seq of the same state')
    await sleep(1000)
    assert.equal(heard.length, 4, 'nothing more until the refresh')
    assert.deepEqual({ change: wa.sent.change, repeat: wa.sent.repeat, refresh: wa.sent.refresh }, { change: 1, repeat: 3, refresh: 0 })
  })
})

test('a load change within its band sends nothing (expected wait under 50 ms, throughput within a power of 2); across one, a load advert', async () => {
  let model = standInModel('test/band', { queuedCost: 0, throughput: 100 })
  const heard: Advert[] = []
  await withPair((worker, listener) => [
    new Adverts({ libp2p: worker, log: silentLog, intervalMs: 100, refreshMs: 60_000, settleRepeatsMs: [], build: () => advertBody(worker, [model]) }),
    new Adverts({ libp2p: listener, log: silentLog, onAdvert: (p) => { heard.push(p.advert) } })
  ], async (worker, listener, wa, la) => {
    await la.start()
    await connect(listener, worker)
    await waitFor('the listener\'s subscription to reach the worker', () => worker.services.pubsub.getSubscribers('/ipfs-accelerate/1/adverts').length > 0 || undefined)
    await wa.start()
    await waitFor('the change and its repeat', () => heard.length >= 2)
    // 0 -> 4 queued at 100 -> 120 a second: a wait of 33 ms at most, the same throughput band (64-127).
    model = { ...model, queuedCost: 4, throughput: 120 }
    await sleep(500)
    assert.equal(wa.sent.load, 0, 'no load advert within a band')
    // 30 queued: 250 ms of work, two bands up.
    model = { ...model, queuedCost: 30 }
    await waitFor('the load advert', () => heard.some((a) => a.models[0]!.queuedCost === 30), 2000)
    assert.equal(wa.sent.load, 1)
    assert.equal(heard.at(-1)!.models[0]!.throughput, 120, 'it carries the exact figures')
    // Throughput halves: a band down, another load advert.
    model = { ...model, throughput: 50 }
    await waitFor('the throughput advert', () => heard.some((a) => a.models[0]!.throughput === 50), 2000)
    assert.equal(wa.sent.load, 2)
  })
})
