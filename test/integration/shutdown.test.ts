/**
 * SIGTERM with a job in hand: the worker stops bidding, finishes the job,
 * answers it, and exits 0 with its libp2p and Helia closed.
 *
 * The job is held in the inference thread (the `hold-once` test fault)
 * until the worker has logged that it drains it, so the result can only
 * come from a job that was running when SIGTERM arrived.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClientNode } from '../../src/node/client-node.ts'
import { health, startWorker, stopProc, waitForJobInHand } from '../helpers/procs.ts'

async function waitForLine (read: () => string, re: RegExp, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!re.test(read())) {
    if (Date.now() > until) throw new Error(`no line matching ${String(re)} within ${timeoutMs} ms; log:\n${read()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('a job in hand when SIGTERM arrives still gets its result', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shutdown-'))
  const release = join(dir, 'release')
  const w = await startWorker({ dtype: 'fp32', env: { IPFS_ACCELERATE_TEST_FAULTS: 'hold-once', IPFS_ACCELERATE_TEST_RELEASE_FILE: release } })
  const client = new ClientNode({ bootstrap: [w.multiaddrs[0]!], mdns: false })
  try {
    await client.start()
    const texts = ['the swarm shares model weights', 'and embeddings']
    const pending = client.submit({ skillset: 'embed', input: { texts }, cost: texts.length, timeoutMs: 60_000 })
    // Counted on the worker: the job is leased and held in the thread, not answered.
    await waitForJobInHand([w])
    assert.equal((await health(w.httpUrl))?.jobs.results, 0, 'no result sent yet')
    const exit = stopProc(w.proc)
    // The worker must say it waits for the job; a stop that skips the drain fails here.
    await waitForLine(w.stderr, /draining: 1 job in hand/, 20_000)
    assert.match(w.stderr(), /SIGTERM: stopping/)
    assert.doesNotMatch(w.stderr(), /:node: stopped/, 'the node must not finish stopping while the job is held')
    await writeFile(release, '')
    const res = await pending
    assert.equal(res.worker, w.peerId)
    assert.equal(res.output.count, 2)
    assert.equal(await exit, 0, w.stderr())
    assert.match(w.stderr(), /:node: stopped/)
  } finally {
    await writeFile(release, '')
    await client.stop()
    await stopProc(w.proc)
    await rm(dir, { recursive: true, force: true })
  }
})
