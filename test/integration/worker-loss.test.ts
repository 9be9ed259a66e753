/**
 * A worker that dies with a job in hand: its job channel breaks, the client
 * offers the job again, and another worker answers it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ClientNode } from '../../src/node/client-node.ts'
import { startWorker, stopProc } from '../helpers/procs.ts'

async function leases (url: string): Promise<number> {
  try {
    return ((await (await fetch(`${url}/healthz`)).json()) as { jobs: { leases: number } }).jobs.leases
  } catch (err) {
    return -1 // a worker that died answers nothing
  }
}

test('a job whose worker is killed is re-offered and answered by another', async () => {
  const a = await startWorker({ dtype: 'fp32' })
  const b = await startWorker({ dtype: 'fp32', bootstrap: [a.multiaddrs[0]!] })
  const client = new ClientNode({ bootstrap: [a.multiaddrs[0]!, b.multiaddrs[0]!], mdns: false })
  try {
    await client.start()
    const texts = Array.from({ length: 256 }, (_, i) => `text ${i} ` + 'the swarm shares model weights and embeddings '.repeat(12))
    const pending = client.submit({ skillset: 'embed', input: { texts }, cost: texts.length, timeoutMs: 60_000 })
    let victim: typeof a | undefined
    for (let i = 0; i < 1000 && victim === undefined; i++) {
      if (await leases(a.httpUrl) >= 1) victim = a
      else if (await leases(b.httpUrl) >= 1) victim = b
      else await new Promise((resolve) => setTimeout(resolve, 5))
    }
    assert.ok(victim !== undefined, 'a worker leased the job')
    victim.proc.kill('SIGKILL')
    const survivor = victim === a ? b : a
    const res = await pending
    assert.equal(res.worker, survivor.peerId)
    assert.equal(res.output.count, 256)
    assert.ok(res.timings.attempts >= 2, `attempts ${res.timings.attempts}`)
  } finally {
    await client.stop()
    await Promise.all([stopProc(a.proc), stopProc(b.proc)])
  }
})
