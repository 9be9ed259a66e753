/**
 * InferenceThread survives crashes: with a tiny worker script (a data: URL
 * that speaks the thread protocol) for crash, restart, back-off and stop,
 * and with the real inference-thread.ts running the stand-in skillset for
 * the test-only fault hook (IPFS_ACCELERATE_TEST_FAULTS).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { InferenceThread } from '../../src/scheduler/thread.ts'
import { ModelQueue } from '../../src/scheduler/model-queue.ts'
import type { ExecutionPlan } from '../../src/interfaces/index.ts'
import { standInDigest, standInSkillset } from '../../skillsets/stand-in/index.ts'
import { forComponent } from '../../src/logger.ts'
import type { Logger } from '../../src/logger.ts'

const log = forComponent('test')
const plan: ExecutionPlan = { modelId: 'demo/stand-in', device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] }
const init = { skillset: 'stand-in' as const, model: { id: 'demo/stand-in', localModelPath: tmpdir() }, plan }

/**
 * A fake inference thread. Worker `generation`s listed in workerData
 * `failLoads` fail to load. Inputs: 'crash' exits the thread, 'throw'
 * throws (an 'error' event), 'hang' never answers, anything else is echoed
 * with the generation.
 */
const FAKE_ENTRY = new URL('data:text/javascript,' + encodeURIComponent(`
import { parentPort, workerData } from 'node:worker_threads'
const gen = workerData.generation ?? 0
if ((workerData.failLoads ?? []).includes(gen)) parentPort.postMessage({ type: 'load-error', code: 'ERR_MODEL_LOAD', message: 'planned load failure ' + gen })
else parentPort.postMessage({ type: 'ready', loadMs: 1 })
parentPort.on('message', (m) => {
  if (m.type === 'dispose') { parentPort.postMessage({ type: 'disposed' }); return }
  const cmd = m.inputs[0]
  if (cmd === 'crash') process.exit(1)
  if (cmd === 'throw') throw new Error('boom in the thread')
  if (cmd === 'hang') return
  parentPort.postMessage({ type: 'result', id: m.id, outputs: m.inputs.map((x) => x + '@' + gen), runMs: 1 })
})
`))

function fakeThread (extra: Record<string, unknown> = {}, backoff = { initialMs: 20, maxMs: 40 }): { thread: InferenceThread, events: boolean[] } {
  const thread = new InferenceThread({ ...init, ...extra } as typeof init, log, { entry: FAKE_ENTRY, backoff, startTimeoutMs: 10_000 })
  const events: boolean[] = []
  thread.onReadyChange = (r) => { events.push(r) }
  return { thread, events }
}

async function until (cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = performance.now()
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

for (const how of ['crash', 'throw'] as const) {
  test(`a thread that ends by ${how} fails its run with ERR_INFERENCE and comes back by itself`, { timeout: 10_000 }, async () => {
    const { thread, events } = fakeThread()
    try {
      await thread.start()
      assert.equal(thread.ready, true)
      assert.deepEqual((await thread.run(['a'])).outputs, ['a@0'])
      await assert.rejects(thread.run([how]), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_INFERENCE')
        assert.match(err.message, /crashed/)
        return true
      })
      assert.equal(thread.ready, false)
      await until(() => thread.ready)
      assert.deepEqual(events, [true, false, true])
      assert.deepEqual((await thread.run(['b'])).outputs, ['b@1'], 'a new worker answers')
      assert.equal(thread.stats.crashes, 1)
      assert.equal(thread.stats.restarts, 1)
    } finally {
      await thread.stop()
    }
  })
}

test('restart() replaces a hung thread: its pending run fails, the new one answers', { timeout: 10_000 }, async () => {
  const { thread, events } = fakeThread()
  try {
    await thread.start()
    const hung = thread.run(['hang'])
    const restarting = thread.restart()
    assert.equal(thread.ready, false, 'not ready while restarting')
    await assert.rejects(hung, { code: 'ERR_INFERENCE' })
    await restarting
    assert.equal(thread.ready, true)
    assert.deepEqual((await thread.run(['c'])).outputs, ['c@1'])
    assert.deepEqual(events, [true, false, true])
  } finally {
    await thread.stop()
  }
})

test('failed restarts back off (doubling, capped) until one works', { timeout: 10_000 }, async () => {
  const retries: unknown[] = []
  const recording: Logger = { ...log, error: (msg, fields) => { if (fields?.retryInMs !== undefined) retries.push(fields.retryInMs); log.error(msg, fields) } }
  const thread = new InferenceThread({ ...init, failLoads: [1, 2, 3] } as typeof init, recording, { entry: FAKE_ENTRY, backoff: { initialMs: 20, maxMs: 80 } })
  try {
    await thread.start()
    const t0 = performance.now()
    await assert.rejects(thread.run(['crash']), { code: 'ERR_INFERENCE' })
    await until(() => thread.ready)
    const waited = performance.now() - t0
    // waits 20 (then gen 1 fails), 40 (gen 2 fails), 80 (gen 3 fails), 80 (gen 4 starts)
    assert.deepEqual(retries, [40, 80, 80])
    assert.ok(waited >= 215, `restarted after ${waited.toFixed(0)} ms: the back-off was not applied`)
    assert.deepEqual((await thread.run(['d'])).outputs, ['d@4'])
  } finally {
    await thread.stop()
  }
})

test('a stopped thread is not restarted and refuses runs', { timeout: 10_000 }, async () => {
  const { thread, events } = fakeThread()
  await thread.start()
  await thread.stop()
  assert.equal(thread.ready, false)
  await new Promise((resolve) => setTimeout(resolve, 60))
  assert.equal(thread.ready, false)
  assert.deepEqual(events, [true, false])
  await assert.rejects(thread.run(['e']), { code: 'ERR_NOT_STARTED' })
  await assert.rejects(thread.restart(), { code: 'ERR_NOT_STARTED' })
  await thread.stop() // idempotent
})

/** Run `fn` with the fault variables set (Worker copies process.env when it is built). */
async function withFaults (faults: string, file: string | undefined, fn: () => Promise<void>): Promise<void> {
  const saved = { f: process.env.IPFS_ACCELERATE_TEST_FAULTS, file: process.env.IPFS_ACCELERATE_TEST_FAULTS_FILE }
  process.env.IPFS_ACCELERATE_TEST_FAULTS = faults
  if (file === undefined) delete process.env.IPFS_ACCELERATE_TEST_FAULTS_FILE
  else process.env.IPFS_ACCELERATE_TEST_FAULTS_FILE = file
  try {
    await fn()
  } finally {
    if (saved.f === undefined) delete process.env.IPFS_ACCELERATE_TEST_FAULTS
    else process.env.IPFS_ACCELERATE_TEST_FAULTS = saved.f
    if (saved.file === undefined) delete process.env.IPFS_ACCELERATE_TEST_FAULTS_FILE
    else process.env.IPFS_ACCELERATE_TEST_FAULTS_FILE = saved.file
  }
}

test('real inference thread, crash-once: the first job fails with ERR_INFERENCE, the thread restarts, the next job gets its digest', { timeout: 30_000 }, async () => {
  await withFaults('crash-once', undefined, async () => {
    const thread = new InferenceThread(init, log, { backoff: { initialMs: 20, maxMs: 40 } })
    try {
      await thread.start()
      const q = new ModelQueue({ modelId: 'demo/stand-in', skillset: standInSkillset, runners: [thread], maxBatchCost: 64, maxQueuedJobs: 10, log })
      const deadline = performance.now() + 20_000
      await assert.rejects(q.submit({ items: 1, tag: 'first' }, { deadline }), { code: 'ERR_INFERENCE' })
      const input = { items: 2, tag: 'second' }
      const out = await q.submit(input, { deadline })
      assert.deepEqual((out.output as { digest: Uint8Array }).digest, standInDigest(input))
      assert.equal(thread.stats.crashes, 1)
      const again = await q.submit({ items: 1, tag: 'third' }, { deadline })
      assert.ok(again.output !== undefined, 'the fault fires once only')
    } finally {
      await thread.stop()
    }
  })
})

test('real inference thread, hang-once with a marker file: the watchdog replaces the thread, the fault fires once per process', { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ia-faults-'))
  const marker = join(dir, 'fired')
  try {
    await withFaults('hang-once', marker, async () => {
      const thread = new InferenceThread(init, log)
      try {
        await thread.start()
        const q = new ModelQueue({ modelId: 'demo/stand-in', skillset: standInSkillset, runners: [thread], maxBatchCost: 64, maxQueuedJobs: 10, stallMinMs: 200, log })
        const deadline = performance.now() + 20_000
        await assert.rejects(q.submit({ items: 1, tag: 'stuck' }, { deadline }), { code: 'ERR_INFERENCE_STALLED' })
        assert.ok(existsSync(marker), 'the marker file records that the fault fired')
        const input = { items: 3 }
        const out = await q.submit(input, { deadline })
        assert.deepEqual((out.output as { digest: Uint8Array }).digest, standInDigest(input))
        assert.equal(q.stats.stalls, 1)
        assert.equal(thread.stats.restarts, 1)
      } finally {
        await thread.stop()
      }
      // A second thread object in the same process: the marker says the fault is spent.
      const other = new InferenceThread(init, log)
      try {
        await other.start()
        const out = await other.run([{ items: 1 }])
        assert.equal(out.outputs.length, 1)
      } finally {
        await other.stop()
      }
    })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
