/**
 * SIGTERM with a job in hand: the worker stops bidding, finishes the job,
 * answers it, and exits 0 with its libp2p and Helia closed.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ClientNode } from '../../src/node/client-node.ts'
import { health, startWorker, stopProc, waitForJobInHand } from '../helpers/procs.ts'

test('a job in hand when SIGTERM arrives still gets its result', async () => {
  const w = await startWorker({ dtype: 'fp32' })
  const client = new ClientNode({ bootstrap: [w.multiaddrs[0]!], mdns: false })
  try {
    await client.start()
    // A job big enough to take a while on the tiny model: 256 texts of ~128 tokens.
    const texts = Array.from({ length: 256 }, (_, i) => `text ${i} ` + 'the swarm shares model weights and embeddings '.repeat(12))
    const pending = client.submit({ skillset: 'embed', input: { texts }, cost: texts.length, timeoutMs: 60_000 })
    // Counted on the worker: the job is in hand (leased, not answered) when SIGTERM goes out.
    await waitForJobInHand([w])
    assert.equal((await health(w.httpUrl))?.jobs.results, 0, 'no result sent yet')
    const exit = stopProc(w.proc)
    const res = await pending
    assert.equal(res.worker, w.peerId)
    assert.equal(res.output.count, 256)
    assert.equal(await exit, 0, w.stderr())
    assert.match(w.stderr(), /SIGTERM: stopping/)
  } finally {
    await client.stop()
    await stopProc(w.proc)
  }
})
