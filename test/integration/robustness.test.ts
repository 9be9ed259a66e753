/**
 * Bad input from the network: garbage on the job topic is dropped and
 * counted, a job whose input the worker refuses comes back as a typed error,
 * and the worker keeps serving.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createLibp2p } from 'libp2p'
import { multiaddr } from '@multiformats/multiaddr'
import { ClientNode } from '../../src/node/client-node.ts'
import { libp2pOptions } from '../../src/p2p/swarm/libp2p.ts'
import { encodeMessage } from '../../src/p2p/wire/codec.ts'
import { jobsTopic, MAX_GOSSIP_BYTES } from '../../src/p2p/wire/protocol.ts'
import { startWorker, stopProc } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'

let w: WorkerProc
before(async () => { w = await startWorker({ dtype: 'fp32' }) })
after(async () => { assert.equal(await stopProc(w.proc), 0, w.stderr()) })

async function jobStats (): Promise<{ offers: number, dropped: number, bids: number, errors: number, results: number }> {
  return ((await (await fetch(`${w.httpUrl}/healthz`)).json()) as { jobs: { offers: number, dropped: number, bids: number, errors: number, results: number } }).jobs
}

test('garbage offers are dropped and counted; the worker still serves', async () => {
  const raw = await createLibp2p(libp2pOptions({ listen: [], bootstrap: [], mdns: false }))
  try {
    await raw.dial(multiaddr(w.multiaddrs[0]!))
    const topic = jobsTopic('embed')
    for (let i = 0; i < 100 && raw.services.pubsub.getSubscribers(topic).length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    const before = await jobStats()
    const garbage = [
      new Uint8Array([0xff, 0xfe, 0x00]),
      encodeMessage({ v: 1, t: 'offer', jobId: 'short' }, MAX_GOSSIP_BYTES),
      encodeMessage({ v: 2, t: 'offer', jobId: 'abcdefgh1234', traceId: 't', skillset: 'embed', cost: 1, inputBytes: 1, deadline: Date.now() + 5000, sentAt: Date.now() }, MAX_GOSSIP_BYTES),
      encodeMessage({ v: 1, t: 'offer', jobId: 'abcdefgh5678', traceId: 't', skillset: 'embed', cost: -1, inputBytes: 1, deadline: Date.now() + 5000, sentAt: Date.now() }, MAX_GOSSIP_BYTES)
    ]
    for (const g of garbage) await raw.services.pubsub.publish(topic, g)
    let after = before
    for (let i = 0; i < 100 && after.dropped < before.dropped + garbage.length; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      after = await jobStats()
    }
    assert.equal(after.dropped - before.dropped, garbage.length, 'each malformed offer counted as dropped')
    assert.equal(after.bids, before.bids, 'no bid on garbage')
  } finally {
    await raw.stop()
  }
  const client = new ClientNode({ bootstrap: [w.multiaddrs[0]!], mdns: false })
  try {
    const res = await client.submit({ skillset: 'embed', input: { texts: ['still alive'] }, cost: 1, timeoutMs: 20_000 })
    assert.equal(res.worker, w.peerId)
  } finally {
    await client.stop()
  }
})

test('input the worker refuses comes back as a typed error, not a timeout', async () => {
  const client = new ClientNode({ bootstrap: [w.multiaddrs[0]!], mdns: false })
  try {
    const t0 = Date.now()
    await assert.rejects(client.submit({ skillset: 'embed', input: { texts: [] }, cost: 1, timeoutMs: 20_000 }), { code: 'ERR_INVALID_INPUT' })
    await assert.rejects(client.submit({ skillset: 'embed', input: { texts: ['a', 'b'] }, cost: 1, timeoutMs: 20_000 }), { code: 'ERR_INVALID_INPUT', message: /announced 1 cost units/ })
    await assert.rejects(client.submit({ skillset: 'embed', input: { texts: ['x'], pooling: 'max' }, cost: 1, timeoutMs: 20_000 }), { code: 'ERR_INVALID_INPUT' })
    assert.ok(Date.now() - t0 < 10_000, 'answered at once')
    const ok = await client.submit({ skillset: 'embed', input: { texts: ['fine'] }, cost: 1, timeoutMs: 20_000 })
    assert.equal(ok.model, 'demo/tiny-random')
  } finally {
    await client.stop()
  }
})
