/**
 * LocalFirstClient's choice between this node and the swarm, on stubbed
 * parts: a job runs here when this node can start it and no advertised
 * worker is expected to finish it sooner (counting what the swarm adds);
 * otherwise it goes to the swarm, never to this node through it. Partials
 * of a local job reach the caller in order; a full local queue with no
 * other worker is "no capacity" (ERR_QUEUE_FULL), not "nobody serves it".
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { NoWorkerError } from '../../src/errors.ts'
import { forComponent } from '../../src/logger.ts'
import { LocalFirstClient } from '../../src/node/local-client.ts'
import type { LocalFirstClientInit } from '../../src/node/local-client.ts'
import type { Serving } from '../../src/p2p/swarm/adverts.ts'
import type { BidTerms } from '../../src/p2p/jobs/worker.ts'
import type { JobRequest } from '../../src/p2p/jobs/client.ts'

const SELF = 'self-peer'
const MODEL = 'demo/m'

function remote (peerId: string, throughput: number, queuedCost: number): Serving {
  return { peerId, model: { id: MODEL, skillset: 'embed', provider: 'cpu', dtype: 'fp32', device: 'cpu', loaded: true, throughput, queuedCost }, addrs: [], source: 'advert' }
}

function setup (o: { bid: BidTerms | { busy: string } | undefined, remotes: Serving[], swarmFails?: Error, parts?: Partial<Pick<LocalFirstClientInit, 'handler' | 'jobs'>> }): { client: LocalFirstClient, ran: string[], sent: JobRequest[] } {
  const ran: string[] = []
  const sent: JobRequest[] = []
  const init: LocalFirstClientInit = {
    self: SELF,
    handler: {
      bid: () => o.bid,
      run: async (head, _assign, _signal, emit) => {
        ran.push(head.jobId)
        for (const t of ['a', 'b', 'c']) await emit?.({ tokens: [1], text: t })
        return { model: MODEL, output: { ran: 'here' }, timings: { queueMs: 0, runMs: 1, batchSize: 1 }, claim: { modelCid: 'x', provider: 'cpu', dtype: 'fp32' } }
      }
    },
    jobs: {
      submit: async (req) => {
        sent.push(req)
        if (o.swarmFails !== undefined) throw o.swarmFails
        req.onLease?.('remote-peer')
        return { jobId: 'j', traceId: 't', worker: 'remote-peer', model: MODEL, output: { ran: 'there' }, tries: [], provenance: {} as never, timings: { queueMs: 1, runMs: 10, totalMs: 40, bidMs: 20, attempts: 1, rounds: 1, batchSize: 1 } }
      }
    },
    adverts: { serving: () => o.remotes, served: () => o.remotes.map((r) => ({ id: r.model.id, skillset: r.model.skillset })) },
    ownModels: () => [{ id: MODEL, skillset: 'embed', loaded: true }],
    limits: () => ({ input: 1 << 20, output: 1 << 20 }),
    log: forComponent('test'),
    ...o.parts
  }
  return { client: new LocalFirstClient(init), ran, sent }
}

const job = { skillset: 'embed' as const, model: MODEL, input: { texts: ['x'] }, cost: 1, timeoutMs: 5000, signal: new AbortController().signal }
const idle: BidTerms = { model: MODEL, provider: 'cpu', dtype: 'fp32', device: 'cpu', queuedCost: 0, throughput: 100 }

test('runs here when this node is idle and no worker elsewhere is expected sooner', async () => {
  const { client, ran, sent } = setup({ bid: idle, remotes: [remote('r1', 100, 0), remote('r2', 150, 0)] })
  const leased: string[] = []
  const r = await client.submit({ ...job, onLease: (w) => { leased.push(w) } })
  assert.equal(r.worker, SELF)
  assert.deepEqual(r.output, { ran: 'here' })
  assert.equal(ran.length, 1)
  assert.equal(sent.length, 0)
  assert.deepEqual(leased, [SELF])
  assert.deepEqual(client.stats, { local: 1, swarm: 0, swarmOverheadMs: 50 })
})

test('goes to the swarm when this node is loaded and a peer is expected to finish well before', async () => {
  const { client, ran, sent } = setup({ bid: { ...idle, queuedCost: 4000 }, remotes: [remote('r1', 100, 0)] })
  const r = await client.submit(job)
  assert.equal(r.worker, 'remote-peer')
  assert.equal(ran.length, 0)
  assert.equal(sent[0]?.model, MODEL)
  // What the swarm added (40 - 1 - 10 ms) is learnt, smoothed.
  assert.equal(client.stats.swarmOverheadMs, 0.8 * 50 + 0.2 * 29)
})

test('goes to the swarm, with the model this node would have run, when it does not serve the model or is busy', async () => {
  for (const bid of [undefined, { busy: 'the queue is full' }]) {
    const { client, ran, sent } = setup({ bid, remotes: [remote('r1', 100, 0)] })
    const r = await client.submit(job)
    assert.equal(r.worker, 'remote-peer')
    assert.equal(ran.length, 0)
    assert.equal(sent.length, 1)
  }
  const { client, sent } = setup({ bid: { ...idle, queuedCost: 4000 }, remotes: [remote('r1', 100, 0)] })
  await client.submit({ ...job, model: undefined } as never)
  assert.equal(sent[0]?.model, MODEL, 'a default resolves to this node\'s model')
})

test('a busy node whose model nobody else serves answers ERR_QUEUE_FULL; a model nobody serves stays ERR_NO_WORKER', async () => {
  const busy = setup({ bid: { busy: 'the queue of demo/m holds 4096 cost units' }, remotes: [], swarmFails: new NoWorkerError('no worker serves demo/m') })
  await assert.rejects(busy.client.submit(job), (err: Error & { code?: string }) => err.code === 'ERR_QUEUE_FULL' && /holds 4096/.test(err.message))
  const none = setup({ bid: undefined, remotes: [], swarmFails: new NoWorkerError('no worker serves demo/m') })
  await assert.rejects(none.client.submit(job), (err: Error & { code?: string }) => err.code === 'ERR_NO_WORKER')
})

test('a local streaming job hands its partials over in order; an input over the frame limit is refused before anything runs', async () => {
  const { client, ran } = setup({ bid: idle, remotes: [] })
  const got: Array<[number, unknown]> = []
  await client.submit({ ...job, onPartial: async (p, seq) => { got.push([seq, p.text]) } })
  assert.deepEqual(got, [[0, 'a'], [1, 'b'], [2, 'c']])
  await assert.rejects(client.submit({ ...job, input: { texts: ['x'.repeat(2 << 20)] } }), (err: Error & { code?: string }) => err.code === 'ERR_INPUT_TOO_LARGE')
  assert.equal(ran.length, 1)
})

test('models: this node\'s own first, then the swarm\'s, with the workers that serve each', () => {
  const { client } = setup({ bid: idle, remotes: [remote('r1', 100, 0), { ...remote('r2', 100, 0), model: { ...remote('r2', 100, 0).model, id: 'other/m' } }] })
  const models = client.models()
  assert.deepEqual(models.map((m) => [m.id, m.local]), [[MODEL, true], ['other/m', false]])
  assert.ok(models[0]!.workers >= 2)
})

test('stop ends the jobs in flight, here and in the swarm, with ERR_SHUTTING_DOWN, and refuses new ones', async () => {
  for (const bid of [idle, undefined]) {
    // Both paths wait until their signal ends them, as a queue or the job client does.
    const waitForAbort = async (signal: AbortSignal): Promise<never> => await new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { reject(new Error('aborted')) }, { once: true }) })
    const { client } = setup({
      bid,
      remotes: [],
      parts: {
        handler: { bid: () => bid, run: async (_h, _a, signal) => await waitForAbort(signal) },
        jobs: { submit: async (req) => await waitForAbort(req.signal!) }
      }
    })
    const pending = client.submit(job)
    await new Promise((resolve) => setTimeout(resolve, 10))
    client.stop()
    await assert.rejects(pending, (err: Error & { code?: string }) => err.code === 'ERR_SHUTTING_DOWN')
    await assert.rejects(client.submit(job), (err: Error & { code?: string }) => err.code === 'ERR_SHUTTING_DOWN')
  }
})
