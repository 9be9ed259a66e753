/**
 * Streaming through the whole platform, in separate processes on
 * 127.0.0.1: one worker serving the streaming stand-in and a tiny embed
 * model; `submit stand-in-stream --stream` processes; a ClientNode reading
 * partials through its async iterator; a `submit` killed mid-stream; and a
 * client process that speaks only job protocol 1.0.0.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { expectedText } from '../../skillsets/stand-in-stream/index.ts'
import { ClientNode } from '../../src/node/client-node.ts'
import { JOB_PROTOCOL } from '../../src/p2p/wire/protocol.ts'
import { CLI, health, ROOT, runProc, startWorker, stopProc } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'

const MODEL = 'demo/stand-in-stream'
let worker: WorkerProc

before(async () => {
  worker = await startWorker({ models: `${MODEL},demo/tiny-random`, dtype: 'fp32' })
})

after(async () => {
  assert.equal(await stopProc(worker.proc), 0, `the worker did not stop cleanly:\n${worker.stderr().slice(-2000)}`)
})

const submitArgs = (steps: number, tag: string, extra: string[] = []): string[] => [CLI, 'submit', 'stand-in-stream', '--steps', String(steps), '--tag', tag, '--bootstrap', worker.multiaddrs[0]!, '--no-mdns', '--timeout', '60', ...extra]

test('submit --stream: partials arrive in order and join into the final output', async () => {
  const run = await runProc(submitArgs(200, 'itest', ['--stream', '--json']), { timeoutMs: 90_000 })
  assert.equal(run.code, 0, run.stderr)
  const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  const result = lines.pop() as { output: { text: string, steps: number }, partials: number, timings: { firstPartialMs: number, totalMs: number } }
  const partials = lines as Array<{ seq: number, partial: { text: string } }>
  assert.deepEqual(partials.map((p) => p.seq), Array.from({ length: 200 }, (_, i) => i), 'in order, none lost or repeated')
  assert.equal(partials.map((p) => p.partial.text).join(''), result.output.text)
  assert.equal(result.output.text, expectedText({ steps: 200, tag: 'itest' }))
  assert.equal(result.partials, 200)
  assert.ok(result.timings.firstPartialMs <= result.timings.totalMs)
})

test('ClientNode.submitStream: an async iterator over the partials, then the result', async () => {
  const client = new ClientNode({ bootstrap: [worker.multiaddrs[0]!], mdns: false })
  try {
    await client.start()
    const { partials, result } = client.submitStream({ skillset: 'stand-in-stream', model: MODEL, input: { steps: 50, tag: 'iter' }, cost: 50, timeoutMs: 30_000, window: 4 })
    let text = ''
    let seq = 0
    for await (const p of partials) {
      assert.equal(p.seq, seq++)
      text += p.partial.text as string
    }
    const res = await result
    assert.equal(text, expectedText({ steps: 50, tag: 'iter' }))
    assert.deepEqual(res.output, { text, steps: 50 })
  } finally {
    await client.stop()
  }
})

test('a submit process killed mid-stream stops the generation on the worker', async () => {
  const start = (await health(worker.httpUrl))!
  const before = start.jobs
  const proc = spawn(process.execPath, submitArgs(4000, 'killed', ['--ms-per-step', '5', '--stream', '--json']), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let lines = 0
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('no partials from the submit process')) }, 30_000)
    proc.stdout.on('data', (d: Buffer) => {
      lines += d.toString().split('\n').length - 1
      if (lines >= 10) { clearTimeout(timer); resolve() }
    })
  })
  proc.kill('SIGKILL')
  const until = performance.now() + 20_000
  let h = start
  while (performance.now() < until) {
    h = (await health(worker.httpUrl))!
    if ((h.jobs.orphaned ?? 0) > (before.orphaned ?? 0)) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  assert.equal(h.jobs.orphaned, (before.orphaned ?? 0) + 1, `the worker cancelled the job of the client that went away: ${JSON.stringify(h.jobs)}`)
  // In the same reading: cancelling the job ended it in its queue at once (the queue counts no partial of an ended
  // job, so a later reading could not show more steps: this one is what the worker can be asked).
  const q = h.queues[MODEL]!
  const q0 = start.queues[MODEL]!
  assert.equal(q.cancelled, (q0.cancelled as number) + 1, `the queue ended the job as cancelled: ${JSON.stringify(q)}`)
  assert.equal(q.depth, 0, 'nothing left running')
  assert.ok((q.partials as number) - (q0.partials as number) < 4000, 'the generation stopped well before its end')
})

test('an embed client that speaks only job protocol 1.0.0 still gets answers', async () => {
  const run = await runProc([join(ROOT, 'test/helpers/old-client.ts'), worker.multiaddrs[0]!, 'an old client'], { timeoutMs: 60_000 })
  assert.equal(run.code, 0, run.stderr)
  const out = JSON.parse(run.stdout) as { worker: string, dims: number, protocol: string }
  assert.equal(out.worker, worker.peerId)
  assert.ok(out.dims > 0)
  assert.equal(out.protocol, JOB_PROTOCOL)
})
