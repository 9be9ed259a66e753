/**
 * Failures of the job bus, each struck while a job is in hand (counted on
 * the worker's /healthz, so no test can pass by timing): a worker killed,
 * a worker stopped (SIGSTOP), an inference that never returns; and the
 * errors a user meets: a model nobody serves, clocks ten minutes apart.
 * Workers are separate processes on 127.0.0.1; the client is this process.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ClientNode } from '../../src/node/client-node.ts'
import type { JobResponse } from '../../src/p2p/jobs/client.ts'
import { standInDigest } from '../../skillsets/stand-in/index.ts'
import { CLI, health, runProc, startWorker, startWorkers, stopProc, waitForJobInHand } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'

const STAND_IN = 'demo/stand-in'

async function standInWorkers (n: number, msPerItem: number): Promise<WorkerProc[]> {
  const config = { standIn: { msPerItem }, adverts: { intervalMs: 1000 } }
  const first = await startWorker({ models: STAND_IN, config })
  const rest = await startWorkers(Array.from({ length: n - 1 }, () => ({ models: STAND_IN, config, bootstrap: [first.multiaddrs[0]!] })))
  return [first, ...rest]
}

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

async function stopAll (workers: readonly WorkerProc[]): Promise<void> {
  await Promise.all(workers.map(async (w) => {
    if (w.proc.signalCode === null && w.proc.exitCode === null) w.proc.kill('SIGCONT')
    await stopProc(w.proc)
  }))
}

test('4 workers, 200 jobs, one worker SIGKILLed with jobs in hand: 200 results, each once, each correct', async () => {
  const workers = await standInWorkers(4, 100)
  const client = new ClientNode({ bootstrap: [workers[0]!.multiaddrs[0]!], mdns: false })
  try {
    await client.start()
    const inputs = Array.from({ length: 200 }, (_, i) => ({ items: 1, tag: `job-${i}` }))
    const answers: Array<JobResponse | Error> = new Array(inputs.length)
    let next = 0
    let done = 0
    const lane = async (): Promise<void> => {
      while (next < inputs.length) {
        const i = next++
        try {
          answers[i] = await client.submit({ skillset: 'stand-in', model: STAND_IN, input: inputs[i]!, cost: 1, timeoutMs: 120_000 })
        } catch (err) {
          answers[i] = err as Error
        }
        done++
      }
    }
    const all = Promise.all(Array.from({ length: 40 }, lane))
    // Mid-run: once 40 are done, kill a worker (not the one the client joined through) while it holds a job.
    for (let i = 0; i < 3000 && done < 40; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    // Several jobs in hand, so one is still unfinished when the signal lands (one could finish between the poll and the kill).
    const victim = await waitForJobInHand(workers.slice(1), 30_000, 3)
    victim.proc.kill('SIGKILL')
    await all

    const errors = answers.filter((a): a is Error => a instanceof Error)
    assert.deepEqual(errors.map((e) => e.message), [], 'every job answered')
    const ok = answers as JobResponse[]
    assert.equal(new Set(ok.map((r) => r.jobId)).size, 200, 'one answer per job')
    for (const [i, r] of ok.entries()) {
      assert.equal(hex(r.output.digest as Uint8Array), hex(standInDigest(inputs[i]!)), `job ${i} got the result of its own input`)
    }
    const lost = ok.filter((r) => r.tries.some((t) => t.worker === victim.peerId))
    assert.ok(lost.length >= 1, 'at least one job was in hand at the killed worker and was run elsewhere')
    for (const r of lost) assert.notEqual(r.worker, victim.peerId)
    assert.ok(new Set(ok.map((r) => r.worker)).size >= 3, 'the jobs spread over the workers')
  } finally {
    await client.stop()
    await stopAll(workers)
  }
})

test('a worker SIGSTOPped while it holds a job: the job is answered elsewhere within 20 s', async () => {
  const workers = await standInWorkers(2, 300)
  const client = new ClientNode({ bootstrap: workers.map((w) => w.multiaddrs[0]!), mdns: false })
  let stopped: WorkerProc | undefined
  try {
    await client.start()
    const inputs = Array.from({ length: 6 }, (_, i) => ({ items: 1, tag: `stop-${i}` }))
    const pending = inputs.map(async (input) => await client.submit({ skillset: 'stand-in', model: STAND_IN, input, cost: 1, timeoutMs: 60_000 }))
    stopped = await waitForJobInHand(workers)
    const stoppedAt = performance.now()
    stopped.proc.kill('SIGSTOP')
    const answers = await Promise.all(pending)
    const elapsed = performance.now() - stoppedAt
    const moved = answers.filter((r) => r.tries.some((t) => t.worker === stopped!.peerId))
    assert.ok(moved.length >= 1, 'a job in hand at the stopped worker was given up on')
    for (const r of moved) {
      assert.notEqual(r.worker, stopped.peerId)
      assert.match(r.tries.find((t) => t.worker === stopped!.peerId)!.code, /^ERR_WORKER_(STALLED|LOST)$/)
    }
    // Bound: 3 missed heartbeats (1 s each), a 2 s query, a new auction and a 300 ms run, with room for a loaded host.
    assert.ok(elapsed < 20_000, `answered ${Math.round(elapsed)} ms after the SIGSTOP`)
    for (const [i, r] of answers.entries()) assert.equal(hex(r.output.digest as Uint8Array), hex(standInDigest(inputs[i]!)))
  } finally {
    await client.stop()
    await stopAll(workers)
  }
})

test('an inference that never returns: the worker replaces its thread and the job is re-offered', async () => {
  // A real embed inference thread that hangs on its first batch (test-only fault), and a healthy worker.
  const hanging = await startWorker({ dtype: 'fp32', config: { scheduler: { stallMinMs: 2000 } }, env: { IPFS_ACCELERATE_TEST_FAULTS: 'hang-once' } })
  const healthy = await startWorker({ dtype: 'fp32', bootstrap: [hanging.multiaddrs[0]!] })
  const client = new ClientNode({ bootstrap: [hanging.multiaddrs[0]!], mdns: false })
  try {
    await client.start()
    let hit: JobResponse | undefined
    for (let i = 0; i < 20 && hit === undefined; i++) {
      const r = await client.submit({ skillset: 'embed', input: { texts: [`text ${i}`] }, cost: 1, timeoutMs: 60_000 })
      assert.equal(r.output.count, 1)
      if (r.tries.some((t) => t.worker === hanging.peerId)) hit = r
    }
    assert.ok(hit !== undefined, 'a job met the hanging thread')
    assert.equal(hit.worker, healthy.peerId)
    assert.match(hit.tries[0]!.code, /^ERR_(INFERENCE_STALLED|LEASE_EXPIRED)$/)
    const queue = async (): Promise<Record<string, number | boolean>> => Object.values((await health(hanging.httpUrl))!.queues)[0]!
    assert.equal((await queue()).stalls, 1, 'counted on the worker: one batch stalled')
    for (let i = 0; i < 300 && (await queue()).ready !== true; i++) await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal((await queue()).ready, true, 'its thread is back')
    // The replaced thread serves again.
    const again = await client.submit({ skillset: 'embed', input: { texts: ['after the stall'] }, cost: 1, timeoutMs: 30_000 })
    assert.equal(again.output.count, 1)
  } finally {
    await client.stop()
    await stopAll([hanging, healthy])
  }
})

test('a model nobody serves: ERR_NO_WORKER in under 2 s, naming what the swarm serves', async () => {
  const w = await startWorker({ dtype: 'fp32' })
  const client = new ClientNode({ bootstrap: [w.multiaddrs[0]!], mdns: false })
  try {
    await client.start()
    const t0 = performance.now()
    await assert.rejects(client.submit({ skillset: 'embed', model: 'nobody/serves-this', input: { texts: ['x'] }, cost: 1, timeoutMs: 30_000 }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_NO_WORKER')
      assert.match(err.message, /nobody\/serves-this/)
      assert.match(err.message, /demo\/tiny-random \(embed\)/)
      return true
    })
    assert.ok(performance.now() - t0 < 2000, `took ${Math.round(performance.now() - t0)} ms`)
    // The CLI says the same in one line, exit 1.
    const run = await runProc([CLI, 'submit', 'embed', '--text', 'x', '--model', 'nobody/serves-this', '--bootstrap', w.multiaddrs[0]!, '--no-mdns', '--timeout', '30'], { timeoutMs: 30_000 })
    assert.equal(run.code, 1)
    assert.match(run.stderr, /error ERR_NO_WORKER: no worker serves nobody\/serves-this/)
  } finally {
    await client.stop()
    await stopProc(w.proc)
  }
})

test('client and worker clocks 10 minutes apart: jobs still run', async () => {
  const ahead = await startWorker({ dtype: 'fp32', env: { IPFS_ACCELERATE_TEST_CLOCK_OFFSET_MS: String(10 * 60_000) } })
  try {
    for (const offset of [-10 * 60_000, 10 * 60_000 * 2]) {
      const run = await runProc([CLI, 'submit', 'embed', '--text', 'skew', '--bootstrap', ahead.multiaddrs[0]!, '--no-mdns', '--json', '--timeout', '30'], { timeoutMs: 60_000, env: { IPFS_ACCELERATE_TEST_CLOCK_OFFSET_MS: String(offset) } })
      assert.equal(run.code, 0, `client clock ${offset / 60_000} min vs worker +10 min: ${run.stderr}`)
      assert.equal((JSON.parse(run.stdout) as { worker: string }).worker, ahead.peerId)
    }
  } finally {
    await stopProc(ahead.proc)
  }
})
