/**
 * The worker side of the job protocol (src/p2p/jobs/worker.ts) on a real
 * libp2p node, with the node's decisions stubbed (a JobHandler that records
 * its calls), driven by raw clients: real libp2p nodes on 127.0.0.1 whose
 * JobLinks carry frames written by hand.
 */
import { after, before, test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { InferenceError } from '../../src/errors.ts'
import type { Logger } from '../../src/logger.ts'
import { frameLimits } from '../../src/node/frame-limits.ts'
import { encodeMessage } from '../../src/p2p/wire/codec.ts'
import { JobLinks } from '../../src/p2p/jobs/link.ts'
import type { JobLink } from '../../src/p2p/jobs/link.ts'
import { JobWorker } from '../../src/p2p/jobs/worker.ts'
import type { BidTerms, JobHandler, JobHead, RunOutcome } from '../../src/p2p/jobs/worker.ts'
import type { Assign, LinkFrame, Offer } from '../../src/p2p/wire/messages.ts'
import { jobsTopic, MAX_GOSSIP_BYTES, PROTOCOL_VERSION } from '../../src/p2p/wire/protocol.ts'
import { connect, FrameLog, jobId, keyOf, silentLog, startNode, stopAll, waitFor } from '../helpers/p2p-nodes.ts'
import type { Node } from '../helpers/p2p-nodes.ts'

const MODEL = 'test/model'
const TERMS: BidTerms = { model: MODEL, provider: 'cpu', dtype: 'fp32', device: 'cpu', queuedCost: 7, throughput: 12.5, etaMs: 40 }

interface Run { head: JobHead, assign: Assign, signal: AbortSignal }

/** The node's hooks, stubbed: bids by `terms`, runs by echoing `input.x` after `delayMs` (abortable). */
class StubHandler implements JobHandler {
  terms: (head: JobHead) => ReturnType<JobHandler['bid']> = (head) => head.model === undefined || head.model === MODEL ? TERMS : undefined
  delayMs = 0
  fail: Error | undefined
  readonly bids: JobHead[] = []
  readonly runs: Run[] = []

  bid (head: JobHead): ReturnType<JobHandler['bid']> {
    this.bids.push(head)
    return this.terms(head)
  }

  async run (head: JobHead, assign: Assign, signal: AbortSignal): Promise<RunOutcome> {
    this.runs.push({ head, assign, signal })
    if (this.delayMs > 0) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, this.delayMs)
        signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason as Error) }, { once: true })
      })
    }
    if (this.fail !== undefined) throw this.fail
    return { model: MODEL, output: { echo: assign.input.x }, timings: { queueMs: 0, runMs: 1, batchSize: 1 }, claim: { modelCid: 'bafy-test', provider: 'cpu', dtype: 'fp32' } }
  }

  runsOf (id: string): Run[] { return this.runs.filter((r) => r.head.jobId === id) }
}

interface Client { node: Node, links: JobLinks, log: FrameLog, link: () => Promise<JobLink> }

/** The worker's info lines (what it says when it cannot deliver an outcome). */
const heard: string[] = []
const workerLog: Logger = { ...silentLog, info: (m, f) => { heard.push(m); silentLog.info(m, f) }, child: () => workerLog }

let worker: Node
let workerLinks: JobLinks
let jobs: JobWorker
const handler = new StubHandler()
const clients: Client[] = []

/**
 * A raw client, stopped when the test ends: every peer here shares 127.0.0.1,
 * and gossipsub's IP colocation penalty graylists a peer's gossip once more
 * than ~13 peers of one IP are connected, so clients must not pile up.
 */
async function client (t: TestContext, opts: { listen?: boolean } = {}): Promise<Client> {
  const node = await startNode(opts)
  const links = new JobLinks({ libp2p: node, log: silentLog })
  const c = { node, links, log: new FrameLog(), link: async () => await links.get(worker.peerId, AbortSignal.timeout(5000)) }
  clients.push(c)
  t.after(async () => {
    clients.splice(clients.indexOf(c), 1)
    await stopAll(links)
    await stopAll(node)
  })
  links.setHandler('client', c.log)
  await links.start()
  await connect(node, worker)
  return c
}

before(async () => {
  worker = await startNode()
  workerLinks = new JobLinks({ libp2p: worker, log: silentLog })
  await workerLinks.start()
  jobs = new JobWorker({ libp2p: worker, privateKey: keyOf(worker), links: workerLinks, handler, skillsets: ['stand-in'], limits: frameLimits, log: workerLog })
  jobs.start()
})
after(async () => {
  await jobs?.stop(1000)
  await stopAll(...clients.map((c) => c.links), workerLinks)
  await stopAll(...clients.map((c) => c.node), worker)
})

function offer (id: string, extra: Partial<Offer> = {}): Offer {
  return { v: PROTOCOL_VERSION, t: 'offer', jobId: id, traceId: 'trace-1', skillset: 'stand-in', model: MODEL, cost: 1, inputBytes: 16, ttlMs: 5000, round: 0, ...extra }
}
function assign (id: string, x: string, extra: Partial<Assign> = {}): Assign {
  return { v: PROTOCOL_VERSION, t: 'assign', jobId: id, traceId: 'trace-1', skillset: 'stand-in', model: MODEL, cost: 1, inputBytes: 16, input: { x }, leaseMs: 10_000, heartbeatMs: 1000, ...extra }
}
const frame = (t: 'cancel' | 'query' | 'decline', id: string): LinkFrame => ({ v: PROTOCOL_VERSION, t, jobId: id })

function reset (): void {
  handler.delayMs = 0
  handler.fail = undefined
  handler.terms = (head) => head.model === undefined || head.model === MODEL ? TERMS : undefined
}

test('bids on a direct offer, with the handler\'s terms; the same round offered twice is bid on once', async (t) => {
  reset()
  const c = await client(t)
  const link = await c.link()
  const id = jobId('bid')
  await link.send(offer(id))
  const bid = await c.log.next('bid', id)
  assert.deepEqual(bid, { v: PROTOCOL_VERSION, t: 'bid', jobId: id, ...TERMS })
  const asked = handler.bids.filter((h) => h.jobId === id)
  assert.equal(asked.length, 1)
  assert.equal(asked[0]!.model, MODEL)
  assert.equal(asked[0]!.cost, 1)
  await link.send(offer(id))
  await link.send(offer(id, { round: 1 }))
  await waitFor('the round-1 bid', () => c.log.of('bid', id).length === 2)
  assert.equal(handler.bids.filter((h) => h.jobId === id).length, 2, 'round 0 twice is one bid, round 1 another')
})

test('a bid that would not be valid on the wire (an infinite estimate) is not sent; the next good one is', async (t) => {
  reset()
  const bad = jobId('bad-bid')
  const good = jobId('good-bid')
  handler.terms = (head) => head.jobId === bad ? { ...TERMS, etaMs: Number.POSITIVE_INFINITY } : TERMS
  const c = await client(t)
  const link = await c.link()
  await link.send(offer(bad))
  await link.send(offer(good))
  // the worker takes a link's frames in order and answers at once: a bid on `bad` would have come before this one
  assert.deepEqual(await c.log.next('bid', good), { v: PROTOCOL_VERSION, t: 'bid', jobId: good, ...TERMS })
  assert.ok(handler.bids.some((h) => h.jobId === bad), 'the handler was asked about the bad one')
  assert.equal(c.log.of('bid', bad).length, 0, 'no malformed bid went out')
  assert.deepEqual(c.log.bad.map((b) => `${b.jobId}: ${b.err.message}`), [], 'nor anything the client could not read')
})

test('answers `busy` when the handler is busy or does not serve the model', async (t) => {
  reset()
  const c = await client(t)
  const link = await c.link()
  handler.terms = () => ({ busy: 'the queue of test/model holds 999 cost units' })
  const full = jobId('full')
  await link.send(offer(full))
  assert.equal((await c.log.next('busy', full)).reason, 'the queue of test/model holds 999 cost units')
  reset()
  const other = jobId('other')
  await link.send(offer(other, { model: 'test/other' }))
  assert.match((await c.log.next('busy', other)).reason, /does not serve test\/other/)
  assert.equal(c.log.of('bid').length, 0)
})

test('a late assign (no prior bid) is still run and answered', async (t) => {
  reset()
  const c = await client(t)
  const link = await c.link()
  const id = jobId('late')
  await link.send(assign(id, 'late-input'))
  const res = await c.log.next('result', id)
  assert.deepEqual(res.output, { echo: 'late-input' })
  assert.equal(res.model, MODEL)
  assert.equal(handler.runsOf(id).length, 1)
})

test('an assign with no bid that the worker could not bid on now is refused at once, not queued; one it could is run (the one-round-trip path)', async (t) => {
  reset()
  const c = await client(t)
  const link = await c.link()
  const refused = jobs.stats.refused
  handler.terms = () => ({ busy: 'the queue of test/model holds 4096 cost units' })
  const full = jobId('full')
  await link.send(assign(full, 'x'))
  const err = await c.log.next('error', full)
  assert.equal(err.code, 'ERR_QUEUE_FULL')
  assert.match(err.message, /holds 4096 cost units: offer the job to another worker/)
  handler.terms = () => undefined
  const other = jobId('other-model')
  await link.send(assign(other, 'x'))
  assert.equal((await c.log.next('error', other)).code, 'ERR_MODEL_NOT_FOUND')
  assert.equal(handler.runsOf(full).length + handler.runsOf(other).length, 0, 'neither reached the handler')
  assert.equal(jobs.stats.refused, refused + 2)
  reset()
  const ok = jobId('fits')
  await link.send(assign(ok, 'fits'))
  assert.deepEqual((await c.log.next('result', ok)).output, { echo: 'fits' })
})

test('a job id reused by another peer is another job: each peer gets the outcome of its own input', async (t) => {
  reset()
  handler.delayMs = 200
  const x = await client(t)
  const y = await client(t)
  const id = jobId('reuse')
  const [lx, ly] = await Promise.all([x.link(), y.link()])
  await Promise.all([lx.send(assign(id, 'input-of-X')), ly.send(assign(id, 'input-of-Y'))])
  const [rx, ry] = await Promise.all([x.log.next('result', id), y.log.next('result', id)])
  assert.deepEqual(rx.output, { echo: 'input-of-X' })
  assert.deepEqual(ry.output, { echo: 'input-of-Y' })
  assert.equal(handler.runsOf(id).length, 2, 'each peer\'s job ran')
  // asked again afterwards, each still gets its own
  await Promise.all([lx.send(frame('query', id)), ly.send(frame('query', id))])
  await waitFor('answers to both queries', () => x.log.of('result', id).length === 2 && y.log.of('result', id).length === 2)
  assert.deepEqual(x.log.of('result', id).map((r) => r.output.echo), ['input-of-X', 'input-of-X'])
  assert.deepEqual(y.log.of('result', id).map((r) => r.output.echo), ['input-of-Y', 'input-of-Y'])
  // and a third peer that never had the job learns nothing of it
  const z = await client(t)
  await (await z.link()).send(frame('query', id))
  assert.equal((await z.log.next('status', id)).state, 'unknown')
  assert.equal(z.log.of('result', id).length, 0)
})

test('the same client assigning a job twice runs it once; a repeat after the outcome gets the result again', async (t) => {
  reset()
  handler.delayMs = 200
  const c = await client(t)
  const link = await c.link()
  const id = jobId('twice')
  await link.send(assign(id, 'first'))
  await link.send(assign(id, 'second'))
  const res = await c.log.next('result', id)
  assert.deepEqual(res.output, { echo: 'first' })
  await link.send(assign(id, 'third'))
  await waitFor('the repeated answer', () => c.log.of('result', id).length === 2)
  assert.deepEqual(c.log.of('result', id).map((r) => r.output.echo), ['first', 'first'])
  assert.equal(handler.runsOf(id).length, 1, 'handler.run called once')
})

test('progress frames arrive while a job runs, about every heartbeatMs', async (t) => {
  reset()
  handler.delayMs = 1500
  const c = await client(t)
  const link = await c.link()
  const id = jobId('beat')
  await link.send(assign(id, 'slow', { heartbeatMs: 200 }))
  await c.log.next('result', id, 5000)
  const seq = c.log.frames.filter((r) => r.frame.jobId === id).map((r) => r.frame.t)
  const beats = seq.indexOf('result')
  assert.ok(beats >= 3, `at least 3 progress frames before the result over 1.5 s (got ${beats}: ${seq.join(',')})`)
  assert.ok(seq.slice(0, beats).every((t) => t === 'progress'))
  assert.ok(c.log.of('progress', id).every((p) => p.state === 'running'))
})

test('cancel aborts the handler\'s signal; no outcome is sent', async (t) => {
  reset()
  handler.delayMs = 30_000
  const c = await client(t)
  const link = await c.link()
  const id = jobId('cancel')
  const cancelled = jobs.stats.cancelled
  await link.send(assign(id, 'doomed', { heartbeatMs: 100 }))
  const run = await waitFor('the job to start', () => handler.runsOf(id)[0])
  assert.equal(run.signal.aborted, false)
  await link.send(frame('cancel', id))
  await waitFor('the signal to abort', () => run.signal.aborted)
  assert.equal((run.signal.reason as { code?: string }).code, 'ERR_JOB_CANCELLED')
  assert.equal(jobs.stats.cancelled, cancelled + 1)
  await waitFor('the job to be released', () => jobs.held === 0)
  // an answer would have been sent when the job was released, and a job's frames go out in order: the status comes after it
  await link.send(frame('query', id))
  assert.equal((await c.log.next('status', id)).state, 'unknown', 'a cancelled job is unknown to a query')
  assert.equal(c.log.of('result', id).length + c.log.of('error', id).length, 0, 'a cancelled job is not answered')
})

test('errors from the handler go back with their code; a code-less error becomes ERR_INTERNAL', async (t) => {
  reset()
  const c = await client(t)
  const link = await c.link()
  handler.fail = new InferenceError('the model blew up')
  const typed = jobId('typed')
  await link.send(assign(typed, 'x'))
  const e1 = await c.log.next('error', typed)
  assert.equal(e1.code, 'ERR_INFERENCE')
  assert.match(e1.message, /blew up/)
  handler.fail = new Error('plain')
  const plain = jobId('plain')
  await link.send(assign(plain, 'x'))
  assert.equal((await c.log.next('error', plain)).code, 'ERR_INTERNAL')
})

test('a client that lost its link and came back gets the kept result by query', async (t) => {
  reset()
  handler.delayMs = 300
  // it listens nowhere, as a ClientNode: the worker cannot dial it back to deliver
  const c = await client(t, { listen: false })
  const link = await c.link()
  const id = jobId('kept')
  const results = jobs.stats.results
  await link.send(assign(id, 'kept-input'))
  await waitFor('the job to start', () => handler.runsOf(id)[0])
  await c.node.hangUp(worker.peerId)
  await waitFor('the worker to see the link end', () => !workerLinks.has(c.node.peerId.toString()))
  await waitFor('the job to finish', () => jobs.held === 0)
  await waitFor('the worker to give up delivering', () => heard.some((m) => m.includes('keeping its outcome for its query')))
  assert.equal(jobs.stats.results, results, 'nothing delivered while the client was away')
  assert.equal(c.log.of('result', id).length, 0)
  await connect(c.node, worker)
  const again = await c.link()
  assert.notEqual(again, link)
  await again.send(frame('query', id))
  const res = await c.log.next('result', id)
  assert.deepEqual(res.output, { echo: 'kept-input' })
  assert.equal(handler.runsOf(id).length, 1, 'the query does not run it again')
})

test('a query for a job the worker never had returns status unknown', async (t) => {
  reset()
  const c = await client(t)
  const id = jobId('unknown')
  const queries = jobs.stats.queries
  await (await c.link()).send(frame('query', id))
  const st = await c.log.next('status', id)
  assert.deepEqual(st, { v: PROTOCOL_VERSION, t: 'status', jobId: id, state: 'unknown' })
  assert.equal(jobs.stats.queries, queries + 1)
})

test('an offer flood from one peer is rate limited; the worker still answers a normal job afterwards', async (t) => {
  reset()
  const flooder = await client(t)
  const link = await flooder.link()
  const before = { direct: jobs.stats.directOffers, limited: jobs.stats.rateLimited }
  const n = 2000
  await Promise.all(Array.from({ length: n }, async (_, i) => { await link.send(offer(`flood-${process.pid}-${i}`)) }))
  await waitFor('the worker to read every offer', () => jobs.stats.directOffers - before.direct >= n, 15_000)
  const limited = jobs.stats.rateLimited - before.limited
  assert.ok(limited > 0, 'some offers were rate limited')
  assert.ok(limited < n, 'the burst allowance was honoured')
  await waitFor('answers to every offer', () => flooder.log.of('bid').length + flooder.log.of('busy').length >= n, 15_000)
  assert.equal(flooder.log.of('busy').filter((b) => /too many offers/.test(b.reason)).length, limited)
  assert.equal(flooder.log.of('bid').length, n - limited)
  // the worker is still fine: another peer's offer is bid on, and the flooder's own lease runs
  const other = await client(t)
  const id = jobId('after-flood')
  await (await other.link()).send(offer(id))
  await other.log.next('bid', id)
  const mine = jobId('flooder-job')
  await link.send(assign(mine, 'still-served'))
  assert.deepEqual((await flooder.log.next('result', mine)).output, { echo: 'still-served' })
})

test('offers that become leases are not rate limited: a client that leases every bid can offer past the burst', async (t) => {
  reset()
  const c = await client(t)
  const link = await c.link()
  const limited = jobs.stats.rateLimited
  // 1,200 offers in batches of 100, each bid leased at once: past the burst (400) plus what 200/s refills in the time it takes.
  const t0 = performance.now()
  for (let b = 0; b < 12; b++) {
    const ids = Array.from({ length: 100 }, (_, i) => jobId(`leased-${b}-${i}`))
    await Promise.all(ids.map(async (id) => { await link.send(offer(id)) }))
    await waitFor(`batch ${b}'s bids`, () => ids.every((id) => c.log.of('bid', id).length + c.log.of('busy', id).length > 0), 15_000)
    await Promise.all(ids.map(async (id) => { await link.send(assign(id, id)) }))
    await waitFor(`batch ${b}'s results`, () => ids.every((id) => c.log.of('result', id).length > 0), 15_000)
  }
  const seconds = (performance.now() - t0) / 1000
  t.diagnostic(`1200 offers and leases in ${seconds.toFixed(2)} s`)
  assert.equal(jobs.stats.rateLimited - limited, 0, `no offer of a client that leases its bids is refused (it took ${seconds.toFixed(2)} s; without the refund ${400 + Math.floor(seconds * 200)} would have been allowed)`)
})

test('a malformed gossip offer is rejected by the topic validator and not bid on; a good one from another peer is', async (t) => {
  reset()
  const g = await client(t)
  const topic = jobsTopic('stand-in')
  const { pubsub } = g.node.services
  await waitFor('the worker\'s subscription', () => pubsub.getSubscribers(topic).some((p) => p.equals(worker.peerId)))
  const dropped = jobs.stats.dropped
  const bidsAsked = handler.bids.length
  const badId = jobId('gossipbad')
  const garbage = [
    Uint8Array.of(0xff, 0xfe, 0x00),
    encodeMessage({ ...offer(badId), cost: -1 }, MAX_GOSSIP_BYTES),
    encodeMessage({ ...offer(badId), extra: true }, MAX_GOSSIP_BYTES),
    encodeMessage(offer(badId, { skillset: 'embed' }), MAX_GOSSIP_BYTES) // an embed offer on the stand-in topic
  ]
  for (const bytes of garbage) await pubsub.publish(topic, bytes)
  await waitFor('each malformed offer dropped', () => jobs.stats.dropped - dropped >= garbage.length)
  assert.equal(jobs.stats.dropped - dropped, garbage.length)
  // a good offer from another peer (the sender of the garbage is graylisted by now: rejected gossip is scored)
  const h = await client(t)
  await waitFor('the worker\'s subscription', () => h.node.services.pubsub.getSubscribers(topic).some((p) => p.equals(worker.peerId)))
  const good = jobId('gossipgood')
  await h.node.services.pubsub.publish(topic, encodeMessage(offer(good), MAX_GOSSIP_BYTES))
  const bid = await h.log.next('bid', good)
  assert.equal(bid.model, MODEL)
  assert.equal(handler.bids.length, bidsAsked + 1, 'the handler was asked about the good offer only')
  assert.equal(g.log.of('bid', badId).length + g.log.of('busy', badId).length, 0)
})

test('gossip from a host\'s 16th short-lived client within the hour is still heard (no IP colocation penalty on loopback)', async (t) => {
  reset()
  const topic = jobsTopic('stand-in')
  // short-lived peers from 127.0.0.1, as a burst of `submit` processes would be: each connects, then stops
  for (let i = 0; i < 15; i++) {
    const p = await startNode()
    try {
      await connect(p, worker)
      await waitFor('the worker\'s subscription', () => p.services.pubsub.getSubscribers(topic).length > 0)
    } finally {
      await stopAll(p)
    }
  }
  const g = await client(t)
  await waitFor('the worker\'s subscription', () => g.node.services.pubsub.getSubscribers(topic).some((p) => p.equals(worker.peerId)))
  const id = jobId('sixteenth')
  await g.node.services.pubsub.publish(topic, encodeMessage(offer(id), MAX_GOSSIP_BYTES))
  assert.equal((await g.log.next('bid', id)).jobId, id)
})
