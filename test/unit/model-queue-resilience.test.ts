/**
 * ModelQueue: cancel, cost-based admission, estimates, the stall watchdog
 * and runner readiness, on runners whose batches the test settles by hand.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ModelQueue } from '../../src/scheduler/model-queue.ts'
import type { ModelQueueInit } from '../../src/scheduler/model-queue.ts'
import type { BatchResult, Runner } from '../../src/scheduler/runner.ts'
import type { Skillset } from '../../src/interfaces/index.ts'
import { forComponent } from '../../src/logger.ts'

interface In { n: number, tag: string }

const skillset = {
  batchKey: () => 'k',
  cost: (i: In) => i.n
} as unknown as Skillset

const log = forComponent('test')

interface Call { inputs: In[], resolve: (r: BatchResult) => void, reject: (e: Error) => void }

/** A runner whose batches stay pending until the test settles them; restart() flips `ready` off and on. */
function manualRunner (): Runner & { calls: Call[], restarts: number, generation: number, setReady: (v: boolean) => void } {
  const r = {
    busy: false,
    ready: true,
    calls: [] as Call[],
    restarts: 0,
    generation: 0,
    onReadyChange: undefined as ((ready: boolean) => void) | undefined,
    setReady (v: boolean) { r.ready = v; r.onReadyChange?.(v) },
    async run (inputs: unknown[]): Promise<BatchResult> {
      return await new Promise<BatchResult>((resolve, reject) => { r.calls.push({ inputs: inputs as In[], resolve, reject }) })
    },
    async restart () {
      r.restarts++
      r.setReady(false)
      await new Promise((resolve) => setTimeout(resolve, 5))
      r.generation++
      r.setReady(true)
    }
  }
  return r
}

function answer (call: Call, runMs = 10): void {
  call.resolve({ outputs: call.inputs.map((i) => `${i.tag}!`), runMs })
}

function queue (runner: Runner, init: Partial<ModelQueueInit> = {}): ModelQueue {
  return new ModelQueue({ modelId: 'm', skillset, runners: [runner], maxBatchCost: 64, maxQueuedJobs: 100, log, ...init })
}

const later = (): { deadline: number } => ({ deadline: performance.now() + 10_000 })
const tick = async (ms = 0): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

test('a job cancelled while it waits leaves the queue at once and never runs', async () => {
  const r = manualRunner()
  const q = queue(r)
  const first = q.submit({ n: 1, tag: 'a' }, later())
  const ac = new AbortController()
  const second = q.submit({ n: 3, tag: 'b' }, { ...later(), signal: ac.signal })
  const third = q.submit({ n: 1, tag: 'c' }, later())
  assert.equal(q.queuedCost, 4)
  ac.abort()
  await assert.rejects(second, { code: 'ERR_JOB_CANCELLED' })
  assert.equal(q.queuedCost, 1, 'the cancelled job no longer counts')
  answer(r.calls[0]!)
  assert.equal((await first).output, 'a!')
  await tick()
  assert.deepEqual(r.calls[1]!.inputs.map((i) => i.tag), ['c'], 'the cancelled job was not batched')
  answer(r.calls[1]!)
  assert.equal((await third).output, 'c!')
  await assert.rejects(q.submit({ n: 1, tag: 'd' }, { ...later(), signal: AbortSignal.abort() }), { code: 'ERR_JOB_CANCELLED' })
})

test('a job cancelled while its batch runs fails at once; the batch result is dropped for it only', async () => {
  const r = manualRunner()
  const q = queue(r)
  const blocker = q.submit({ n: 1, tag: 'x' }, later())
  const ac = new AbortController()
  const a = q.submit({ n: 1, tag: 'a' }, { ...later(), signal: ac.signal })
  const b = q.submit({ n: 1, tag: 'b' }, later())
  answer(r.calls[0]!)
  await blocker
  await tick()
  assert.equal(r.calls.length, 2)
  assert.equal(q.runningCost, 2)
  ac.abort()
  // a settled promise's handlers run before a timer: `pending` here means the job waits for its batch
  const outcome = await Promise.race([a.then(() => 'resolved', (e: unknown) => e), tick().then(() => 'pending')])
  assert.ok(outcome instanceof Error, `the cancelled job failed before its batch ended: it is ${String(outcome)}`)
  assert.equal((outcome as Error & { code?: string }).code, 'ERR_JOB_CANCELLED')
  assert.match(outcome.message, /cancelled while m ran it/)
  assert.equal(r.calls.length, 2, 'no batch was started or answered meanwhile')
  assert.equal(q.runningCost, 2, 'the batch goes on, holding its runner until it returns')
  answer(r.calls[1]!)
  assert.equal((await b).output, 'b!', 'its batch-mate still gets its own result')
  assert.equal(q.runningCost, 0)
  assert.equal(q.depth, 0)
})

test('admits: cost-based, job-count cap, readiness and shutdown; submit refuses alike', async () => {
  const r = manualRunner()
  const q = queue(r, { maxQueuedCost: 10, maxQueuedJobs: 3 })
  const running = q.submit({ n: 2, tag: 'run' }, later())
  const waiting = q.submit({ n: 8, tag: 'wait' }, later())
  assert.equal(q.runningCost, 2, 'the first job runs')
  assert.equal(q.queuedCost, 8, 'running cost does not count against the queue')
  assert.equal(q.admits(2), true)
  assert.equal(q.admits(3), false)
  await assert.rejects(q.submit({ n: 3, tag: 'over' }, later()), { code: 'ERR_QUEUE_FULL' })
  const small = [q.submit({ n: 1, tag: 's1' }, later()), q.submit({ n: 1, tag: 's2' }, later())]
  assert.equal(q.admits(0), false, 'three jobs wait: the job-count cap holds')
  await assert.rejects(q.submit({ n: 0, tag: 'zero' }, later()), { code: 'ERR_QUEUE_FULL' })

  r.setReady(false)
  answer(r.calls[0]!)
  await running
  await tick()
  assert.equal(r.calls.length, 1, 'no work goes to a runner that is not ready')
  assert.equal(q.admits(0), false)
  r.setReady(true)
  await tick()
  assert.equal(r.calls.length, 2, 'work resumes when it is ready again')
  assert.equal(q.admits(1), true)
  answer(r.calls[1]!)
  await Promise.all([waiting, ...small])
  const drained = q.drain(1000)
  assert.equal(q.admits(1), false, 'nothing is admitted once draining')
  await drained
})

test('throughput: the calibrated figure counts as one batch of maxBatchCost items, so one small cold batch does not sink it', async () => {
  const r = manualRunner()
  const q = queue(r, { maxBatchCost: 10, initialThroughput: 1000 })
  assert.equal(q.throughput, 1000, 'before any job: the calibration')
  const first = q.submit({ n: 2, tag: 'cold' }, later())
  answer(r.calls[0]!, 100) // 2 items in 100 ms: 20 items/s alone
  await first
  assert.ok(Math.abs(q.throughput! - 12 / 0.11) < 1e-9, `(2 + 10) / (0.1 + 10 / 1000) = ${q.throughput}`)
  for (let i = 1; i <= 20; i++) {
    const p = q.submit({ n: 10, tag: `w${i}` }, later())
    answer(r.calls[i]!, 50) // 200 items/s
    await p
  }
  assert.ok(Math.abs(q.throughput! - 212 / 1.11) < 1e-9, `what jobs measured takes over: ${q.throughput}`)
})

test('estimateMs: undefined before a measurement, then (queued + running/2 + cost) / throughput', async () => {
  const r = manualRunner()
  const q = queue(r, { maxBatchCost: 10 })
  assert.equal(q.estimateMs(1), undefined)
  const first = q.submit({ n: 10, tag: 'a' }, later())
  answer(r.calls[0]!, 100) // 10 items in 100 ms: 100 items/s
  await first
  assert.equal(q.throughput, 100)
  const running = q.submit({ n: 4, tag: 'r' }, later())
  const waiting = q.submit({ n: 6, tag: 'w' }, later())
  assert.equal(q.runningCost, 4)
  assert.equal(q.queuedCost, 6)
  assert.ok(Math.abs(q.estimateMs(5)! - (6 + 2 + 5) / 100 * 1000) < 1e-9, `estimate ${q.estimateMs(5)}`)
  answer(r.calls[1]!, 40)
  await running
  await tick()
  answer(r.calls[2]!, 60)
  await waiting
})

test('stall watchdog: the stuck batch fails with ERR_INFERENCE_STALLED, the runner restarts, the next job runs on it', { timeout: 5000 }, async () => {
  const r = manualRunner()
  const events: boolean[] = []
  const q = queue(r, { stallMinMs: 50, onReadyChange: (ready) => { events.push(ready) } })
  const t0 = performance.now()
  const stuck = q.submit({ n: 1, tag: 'stuck' }, later())
  const mate = q.submit({ n: 1, tag: 'mate' }, later())
  await assert.rejects(stuck, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_INFERENCE_STALLED')
    assert.match(err.message, /replaced its inference thread/)
    return true
  })
  assert.ok(performance.now() - t0 >= 45, 'not before the stall limit')
  assert.equal(r.restarts, 1)
  assert.equal(q.stats.stalls, 1)
  assert.equal(q.stats.restarts, 1)
  assert.deepEqual(events, [false], 'the model had no ready runner while it restarted')
  await tick(20)
  assert.deepEqual(events, [false, true])
  assert.equal(r.calls.length, 2, 'the job that waited runs on the restarted runner')
  assert.equal(r.generation, 1)
  answer(r.calls[0]!) // the stuck run answers late: ignored
  answer(r.calls[1]!)
  assert.equal((await mate).output, 'mate!')
  assert.equal(q.depth, 0)
  assert.equal(q.runningCost, 0)
  assert.equal(q.processedItems, 1, 'the late result is not counted')
})

test('stallMs grows with the expected run time from measured throughput', async () => {
  const r = manualRunner()
  const q = queue(r, { stallMinMs: 100 })
  assert.equal(q.stallMs(1000), 100, 'no measurement yet: the floor')
  const p = q.submit({ n: 10, tag: 'a' }, later())
  answer(r.calls[0]!, 1000) // 10 items/s
  await p
  assert.equal(q.stallMs(1), 2000, '20 × 100 ms')
  assert.equal(q.stallMs(0), 100)
})

test('failed batches are counted and fail every job of the batch with the error', async () => {
  const r = manualRunner()
  const q = queue(r)
  const a = q.submit({ n: 1, tag: 'a' }, later())
  r.calls[0]!.reject(Object.assign(new Error('kaput'), { code: 'ERR_INFERENCE' }))
  await assert.rejects(a, { code: 'ERR_INFERENCE', message: 'kaput' })
  assert.deepEqual(q.stats, { batches: 1, failedBatches: 1, stalls: 0, restarts: 0 })
})

test('with two runners, readiness flips only when the last one goes and the first comes back', async () => {
  const a = manualRunner()
  const b = manualRunner()
  const events: boolean[] = []
  const q = new ModelQueue({ modelId: 'm', skillset, runners: [a, b], maxBatchCost: 64, maxQueuedJobs: 10, log, onReadyChange: (v) => { events.push(v) } })
  a.setReady(false)
  assert.deepEqual(events, [])
  assert.equal(q.ready, true)
  b.setReady(false)
  assert.deepEqual(events, [false])
  assert.equal(q.ready, false)
  const job = q.submit({ n: 1, tag: 'j' }, later())
  b.setReady(true)
  assert.deepEqual(events, [false, true])
  assert.equal(b.calls.length, 1, 'the waiting job went to the runner that came back')
  answer(b.calls[0]!)
  assert.equal((await job).output, 'j!')
})

test('a queued job fails at its deadline even while no runner is ready', async () => {
  const r = manualRunner()
  r.setReady(false)
  const q = queue(r)
  await assert.rejects(q.submit({ n: 1, tag: 'late' }, { deadline: performance.now() + 20 }), { code: 'ERR_JOB_TIMEOUT' })
  assert.equal(q.queuedCost, 0)
  assert.equal(r.calls.length, 0)
})
