/**
 * The scheduler's streaming path: StreamingQueue on the streaming stand-in,
 * in-process (LocalStreamRunner) and in a real inference thread
 * (inference-thread.ts speaking start/partial/credit/cancel/done): partials
 * arrive in order and join into the output; a slow consumer pauses its job
 * (only its job); cancel stops the runner's steps; jobs are admitted by
 * KV-cache tokens against the budget; a job that stops making progress
 * fails with ERR_INFERENCE_STALLED; a thread crash fails its jobs with
 * ERR_INFERENCE.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { tmpdir } from 'node:os'
import type { Worker } from 'node:worker_threads'
import { expectedText, standInStreamSkillset, StandInStreamRunner, streamToken } from '../../skillsets/stand-in-stream/index.ts'
import type { StreamPartial } from '../../skillsets/stand-in-stream/index.ts'
import type { ExecutionPlan } from '../../src/interfaces/index.ts'
import { LocalStreamRunner } from '../../src/scheduler/local-stream-runner.ts'
import { StreamingQueue } from '../../src/scheduler/streaming-queue.ts'
import type { StreamHost, StreamingQueueInit } from '../../src/scheduler/streaming-queue.ts'
import { InferenceThread } from '../../src/scheduler/thread.ts'
import { STREAM_THREAD_CREDITS } from '../../src/scheduler/thread-protocol.ts'
import { silentLog, sleep, waitFor } from '../helpers/p2p-nodes.ts'

const plan: ExecutionPlan = { modelId: 'demo/stand-in-stream', device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] }
const model = { id: 'demo/stand-in-stream', localModelPath: tmpdir() }

async function local (): Promise<LocalStreamRunner> {
  const r = new LocalStreamRunner({ skillset: standInStreamSkillset, model, plan, log: silentLog })
  await r.start()
  return r
}

function queue (runners: StreamHost[], over: Partial<StreamingQueueInit> = {}): StreamingQueue {
  return new StreamingQueue({ modelId: model.id, skillset: standInStreamSkillset, runners, budget: 100_000, maxQueuedJobs: 100, maxQueuedCost: 100_000, stallMs: 30_000, log: silentLog, ...over })
}

const later = (): number => performance.now() + 60_000

test('partials arrive in order and join into the final output; two jobs interleave step by step', async () => {
  const runner = await local()
  const q = queue([runner])
  const got: Record<string, string[]> = { a: [], b: [] }
  const order: string[] = []
  const run = async (tag: string): Promise<unknown> => await q.submit({ steps: 20, tag }, { deadline: later(), emit: async (p) => { got[tag]!.push((p as StreamPartial).text); order.push(tag) } })
  const [a] = await Promise.all([run('a'), run('b')]) as Array<{ output: { text: string, steps: number }, partials: number }>
  assert.equal(a!.output.text, expectedText({ steps: 20, tag: 'a' }))
  assert.equal(got.a!.join(''), a!.output.text, 'the partials join into the output')
  assert.equal(got.b!.join(''), expectedText({ steps: 20, tag: 'b' }))
  assert.equal(a!.partials, 20)
  assert.ok(order.slice(0, 10).includes('b'), `job b streams while a runs: ${order.join('')}`)
  assert.equal(q.stats.completed, 2)
  await runner.stop()
})

test('a slow consumer pauses its own job only; the other job runs on', async () => {
  const runner = await local()
  const q = queue([runner])
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  let slowSeen = 0
  const slow = q.submit({ steps: 50, tag: 'slow' }, { deadline: later(), emit: async () => { slowSeen++; if (slowSeen === 3) await gate } })
  const fast = await q.submit({ steps: 40, tag: 'fast' }, { deadline: later(), emit: async () => {} })
  assert.equal(fast.partials, 40, 'the other job finished while the slow one was paused')
  assert.equal(slowSeen, 3, 'the slow job did not step past its blocked emit')
  // another job's steps on the same runner: the slow one had every chance to step meanwhile
  assert.equal((await q.submit({ steps: 20, tag: 'after' }, { deadline: later(), emit: async () => {} })).partials, 20)
  assert.equal(slowSeen, 3, 'still paused')
  release()
  assert.equal((await slow).partials, 50)
  await runner.stop()
})

test('cancel aborts ctx.signal and the runner takes no more steps', async () => {
  const runner = await local()
  const q = queue([runner])
  const ctl = new AbortController()
  let seen = 0
  const job = q.submit({ steps: 4000, tag: 'c', msPerStep: 1 }, { deadline: later(), signal: ctl.signal, emit: async () => { seen++ } })
  await waitFor('some partials', () => seen >= 5)
  const inner = runner.current as StandInStreamRunner
  // each step emits at once, so between two steps the counts agree
  const steps = inner.steps
  assert.equal(steps, seen)
  ctl.abort(new Error('client went away'))
  await assert.rejects(job, /client went away/)
  // until the runner lets the job go (then no step of it can follow), not one more step
  await waitFor('the runner to let the job go', () => { assert.equal(inner.steps, steps, 'no step after the cancel'); return inner.running === 0 })
  assert.equal(q.stats.cancelled, 1)
  await runner.stop()
})

test('jobs are admitted by KV-cache tokens: past the budget a job waits for room', async () => {
  const runner = await local()
  const q = queue([runner], { budget: 100 })
  assert.equal(q.admits(101), false, 'a job over the whole budget is never admitted')
  let secondStartedWhileFirstRan = false
  let firstDone = false
  const first = q.submit({ steps: 60, tag: '1', msPerStep: 1 }, { deadline: later(), emit: async () => {} }).then((o) => { firstDone = true; return o })
  const second = q.submit({ steps: 60, tag: '2' }, { deadline: later(), emit: async () => { if (!firstDone) secondStartedWhileFirstRan = true } })
  await waitFor('the second job queued', () => q.queuedCost === 60)
  await Promise.all([first, second])
  assert.equal(secondStartedWhileFirstRan, false, 'the second job started only when the first gave its tokens back')
  await runner.stop()
})

test('a job that makes no progress fails with ERR_INFERENCE_STALLED; others carry on', async () => {
  const runner = await local()
  const q = queue([runner], { stallMs: 100 })
  const stuck = q.submit({ steps: 10, tag: 'h', hangAt: 3 }, { deadline: later(), emit: async () => {} })
  const ok = q.submit({ steps: 200, tag: 'ok', msPerStep: 1 }, { deadline: later(), emit: async () => {} })
  await assert.rejects(stuck, (e: Error & { code?: string }) => e.code === 'ERR_INFERENCE_STALLED')
  assert.equal((await ok).partials, 200)
  assert.equal(q.stats.stalls, 1)
  await runner.stop()
})

test('in a real inference thread: partials with credit, cancel, and a crash fails the jobs with ERR_INFERENCE', async () => {
  const thread = new InferenceThread({ skillset: 'stand-in-stream', model, plan }, silentLog, { backoff: { initialMs: 20, maxMs: 40 } })
  await thread.start()
  const q = queue([thread])
  try {
    const parts: string[] = []
    const done = await q.submit({ steps: 30, tag: 't' }, { deadline: later(), emit: async (p) => { parts.push((p as StreamPartial).text); await sleep(1) } })
    assert.equal(parts.join(''), expectedText({ steps: 30, tag: 't' }))
    assert.deepEqual(done.output, { text: parts.join(''), steps: 30 })

    // Back-pressure crosses the thread: with the consumer stuck, the thread sends no more than its credit.
    let held = 0
    const ctl = new AbortController()
    // what the thread sends for this job, seen on its port
    const worker = (thread as unknown as { worker: Worker }).worker
    const bTokens = new Set(Array.from({ length: 1000 }, (_, i) => streamToken('b', i)))
    let sent = 0
    const onMessage = (m: { type: string, partial?: { text?: string } }): void => { if (m.type === 'partial' && bTokens.has(m.partial?.text ?? '')) sent++ }
    worker.on('message', onMessage)
    const blocked = q.submit({ steps: 1000, tag: 'b' }, { deadline: later(), signal: ctl.signal, emit: async () => { held++; await new Promise(() => {}) } })
    blocked.catch(() => undefined) // asserted below; if an assert fails first, its message must not give way to this job's rejection at drain
    await waitFor('the thread to spend its credit', () => sent >= STREAM_THREAD_CREDITS)
    // another job through the same thread: the blocked one had every chance to step meanwhile
    assert.equal((await q.submit({ steps: 20, tag: 'm' }, { deadline: later(), emit: async () => {} })).partials, 20)
    worker.off('message', onMessage)
    assert.equal(sent, STREAM_THREAD_CREDITS, 'the thread sent its credit, no more')
    assert.equal(held, 1, 'the consumer holds one partial; the rest wait in the thread')
    ctl.abort(new Error('cancelled by the test'))
    await assert.rejects(blocked, /cancelled by the test/)

    let seen = 0
    const crashing = q.submit({ steps: 4000, tag: 'x', msPerStep: 1 }, { deadline: later(), emit: async () => { seen++ } })
    await waitFor('partials before the crash', () => seen >= 3)
    await (thread as unknown as { worker: { terminate: () => Promise<number> } }).worker.terminate()
    await assert.rejects(crashing, (e: Error & { code?: string }) => e.code === 'ERR_INFERENCE')
    await waitFor('the thread back', () => thread.ready)
    assert.equal((await q.submit({ steps: 3 }, { deadline: later(), emit: async () => {} })).partials, 3, 'the restarted thread runs jobs')
  } finally {
    await q.drain(0)
    await thread.stop()
  }
})

test('a job that fails before its first partial leaves no rate: throughput and estimates stay unknown, never 0 and infinite', async () => {
  // A host whose every job fails after a few ms of work, as a broken image does in llava-next's prepare.
  const failing: StreamHost = {
    ready: true,
    startJob: async () => { await sleep(5); throw new Error('image: cannot decode') },
    restart: async () => {}
  } as unknown as StreamHost
  const q = queue([failing])
  await assert.rejects(q.submit({ steps: 3 }, { deadline: later(), emit: async () => {} }), /cannot decode/)
  assert.equal(q.throughput, undefined)
  assert.equal(q.estimateMs(10), undefined)
  assert.ok(q.admits(10))
})
