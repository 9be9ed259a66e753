import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ModelQueue } from '../../src/scheduler/model-queue.ts'
import type { Runner } from '../../src/scheduler/runner.ts'
import type { Skillset } from '../../src/interfaces/index.ts'
import { forComponent } from '../../src/logger.ts'

interface In { texts: string[], key: string }

const skillset = {
  batchKey: (i: In) => i.key,
  cost: (i: In) => i.texts.length
} as unknown as Skillset

/** A runner that records its batches and answers after a tick. */
function recordingRunner (): Runner & { batches: In[][] } {
  const r = {
    busy: false,
    ready: true,
    restart: async () => {},
    batches: [] as In[][],
    async run (inputs: unknown[]) {
      r.batches.push(inputs as In[])
      await new Promise((resolve) => setTimeout(resolve, 5))
      return { outputs: (inputs as In[]).map((i) => i.texts.map((t) => t.toUpperCase())), runMs: 5 }
    }
  }
  return r
}

const log = forComponent('test')

test('jobs that pile up while the runner works go in one batch, each gets its own output', async () => {
  const runner = recordingRunner()
  const q = new ModelQueue({ modelId: 'm', skillset, runners: [runner], maxBatchCost: 64, maxQueuedJobs: 100, log })
  const deadline = { deadline: performance.now() + 10_000 }
  const results = await Promise.all(Array.from({ length: 10 }, async (_, i) => await q.submit({ texts: [`t${i}`], key: 'a' }, deadline)))
  assert.deepEqual(results.map((r) => r.output), Array.from({ length: 10 }, (_, i) => [`T${i}`]))
  assert.equal(runner.batches[0]!.length, 1, 'the first job runs at once')
  assert.equal(runner.batches[1]!.length, 9, 'the rest waited and went together')
  assert.equal(results[5]!.batchSize, 9)
})

test('batches respect the cost cap and the batch key', async () => {
  const runner = recordingRunner()
  const q = new ModelQueue({ modelId: 'm', skillset, runners: [runner], maxBatchCost: 4, maxQueuedJobs: 100, log })
  const d = { deadline: performance.now() + 10_000 }
  const jobs = [
    q.submit({ texts: ['a'], key: 'x' }, d),
    q.submit({ texts: ['b', 'c'], key: 'x' }, d),
    q.submit({ texts: ['d'], key: 'y' }, d),
    q.submit({ texts: ['e', 'f', 'g'], key: 'x' }, d),
    q.submit({ texts: ['h'], key: 'x' }, d)
  ]
  await Promise.all(jobs)
  for (const b of runner.batches) {
    assert.equal(new Set(b.map((i) => i.key)).size, 1, 'one key per batch')
    const cost = b.reduce((s, i) => s + i.texts.length, 0)
    assert.ok(cost <= 4 || b.length === 1, `batch cost ${cost} over the cap`)
  }
  assert.equal(runner.batches.flat().length, 5)
})

test('a full queue and a drained queue refuse with typed errors', async () => {
  const runner = recordingRunner()
  const q = new ModelQueue({ modelId: 'm', skillset, runners: [runner], maxBatchCost: 1, maxQueuedJobs: 2, log })
  const d = { deadline: performance.now() + 10_000 }
  const a = q.submit({ texts: ['a'], key: 'x' }, d)
  const b = q.submit({ texts: ['b'], key: 'x' }, d)
  const c = q.submit({ texts: ['c'], key: 'x' }, d)
  await assert.rejects(q.submit({ texts: ['d'], key: 'x' }, d), { code: 'ERR_QUEUE_FULL' })
  await q.drain(5000)
  await Promise.all([a, b, c])
  await assert.rejects(q.submit({ texts: ['e'], key: 'x' }, d), { code: 'ERR_SHUTTING_DOWN' })
})

test('expired jobs fail with a timeout instead of running', async () => {
  const runner = recordingRunner()
  const q = new ModelQueue({ modelId: 'm', skillset, runners: [runner], maxBatchCost: 64, maxQueuedJobs: 10, log })
  const first = q.submit({ texts: ['a'], key: 'x' }, { deadline: performance.now() + 10_000 })
  // A waiting job fails at its deadline (its own timer), not only when a batch is next taken.
  const late = assert.rejects(q.submit({ texts: ['b'], key: 'x' }, { deadline: performance.now() + 1 }), { code: 'ERR_JOB_TIMEOUT' })
  await new Promise((resolve) => setTimeout(resolve, 3))
  await first
  await late
  assert.equal(runner.batches.flat().length, 1)
})

test('a failed batch fails each of its jobs with the error', async () => {
  const runner: Runner = { busy: false, ready: true, restart: async () => {}, run: async () => { throw Object.assign(new Error('boom'), { code: 'ERR_X' }) } }
  const q = new ModelQueue({ modelId: 'm', skillset, runners: [runner], maxBatchCost: 64, maxQueuedJobs: 10, log })
  await assert.rejects(q.submit({ texts: ['a'], key: 'x' }, { deadline: performance.now() + 1000 }), /boom/)
})

test('an Error in one output slot fails that job only; the rest of its batch succeed', async () => {
  const { InvalidInputError } = await import('../../src/errors.ts')
  const runner = recordingRunner()
  const plain = runner.run.bind(runner)
  runner.run = async (inputs: unknown[]) => {
    const r = await plain(inputs)
    return { ...r, outputs: r.outputs.map((o, i) => (inputs[i] as In).texts[0] === 'bad' ? new InvalidInputError('image: not a PNG, JPEG or WebP image') : o) }
  }
  const q = new ModelQueue({ modelId: 'm', skillset, runners: [runner], maxBatchCost: 64, maxQueuedJobs: 100, log })
  const d = { deadline: performance.now() + 10_000 }
  const settled = await Promise.allSettled(['a', 'bad', 'c', 'd'].map(async (t) => await q.submit({ texts: [t], key: 'k' }, d)))
  assert.equal(runner.batches[1]!.length, 3, 'bad, c and d shared a batch')
  assert.equal(settled[1]!.status, 'rejected')
  assert.equal(((settled[1] as PromiseRejectedResult).reason as { code: string }).code, 'ERR_INVALID_INPUT')
  for (const i of [0, 2, 3]) assert.equal(settled[i]!.status, 'fulfilled', `job ${i}`)
  assert.deepEqual((settled[2] as PromiseFulfilledResult<{ output: unknown }>).value.output, ['C'])
  assert.equal(q.stats.failedBatches, 0)
})
