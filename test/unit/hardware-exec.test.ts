import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describeFailure, execRunner, findOnPath, firstLine } from '../../hardware/exec.ts'

const node = process.execPath

test('execRunner: exit 0 with stdout and stderr', async () => {
  const r = await execRunner(node, ['-e', 'process.stdout.write("out"); process.stderr.write("err")'], { timeoutMs: 5000 })
  assert.equal(r.kind, 'exit')
  assert.ok(r.kind === 'exit')
  assert.equal(r.code, 0)
  assert.equal(r.stdout, 'out')
  assert.equal(r.stderr, 'err')
})

test('execRunner: non-zero exit keeps the output', async () => {
  const r = await execRunner(node, ['-e', 'console.log("No devices were found"); process.exit(6)'], { timeoutMs: 5000 })
  assert.ok(r.kind === 'exit')
  assert.equal(r.code, 6)
  assert.match(describeFailure('nvidia-smi', r, 5000), /exited with code 6: No devices were found/)
})

test('execRunner: a missing binary is "missing", not an exception', async () => {
  const r = await execRunner('/nonexistent/nvidia-smi', [], { timeoutMs: 5000 })
  assert.equal(r.kind, 'missing')
  assert.match(describeFailure('nvidia-smi', r, 5000), /not installed/)
})

test('execRunner: a hung tool is killed at the time limit and partial output is kept', async () => {
  const t = performance.now()
  // sh, not node: a node child can take longer than the limit just to start on a loaded 2-core host, and then writes nothing
  const r = await execRunner('/bin/sh', ['-c', 'echo partial; exec sleep 30'], { timeoutMs: 1000 })
  const elapsed = performance.now() - t
  assert.equal(r.kind, 'timeout')
  assert.ok(r.kind === 'timeout')
  assert.equal(r.stdout, 'partial\n')
  assert.ok(elapsed < 4000, `returned after ${elapsed} ms`)
  assert.match(describeFailure('nvidia-smi', r, 1000), /did not answer within 1000 ms/)
})

test('execRunner: output over maxBuffer fails the run', async () => {
  const r = await execRunner(node, ['-e', 'process.stdout.write("x".repeat(100000))'], { timeoutMs: 5000, maxBuffer: 1000 })
  assert.equal(r.kind, 'error')
  assert.ok(r.kind === 'error')
  assert.match(r.message, /more than 1000 bytes/)
})

test('execRunner: an abort signal stops the tool', async () => {
  const ac = new AbortController()
  setTimeout(() => { ac.abort(new Error('shutdown')) }, 100)
  const r = await execRunner(node, ['-e', 'setInterval(() => {}, 1000)'], { timeoutMs: 10_000, signal: ac.signal })
  assert.equal(r.kind, 'error')
  assert.ok(r.kind === 'error')
  assert.match(r.message, /aborted/)
})

test('execRunner: never uses a shell (metacharacters are plain arguments)', async () => {
  const r = await execRunner(node, ['-e', 'console.log(process.argv[1])', '$(echo hi); ls'], { timeoutMs: 5000 })
  assert.ok(r.kind === 'exit')
  assert.equal(r.stdout.trim(), '$(echo hi); ls')
})

test('findOnPath finds the first executable file, skipping non-executables and relative dirs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hw-path-'))
  try {
    const a = join(dir, 'a')
    const b = join(dir, 'b')
    await Promise.all([mkdir(a), mkdir(b)])
    await writeFile(join(a, 'tool'), 'not executable')
    await writeFile(join(b, 'tool'), '#!/bin/sh\n')
    await chmod(join(b, 'tool'), 0o755)
    assert.equal(await findOnPath('tool', ['relative/dir', a, b].join(':')), join(b, 'tool'))
    assert.equal(await findOnPath('other', [a, b].join(':')), undefined)
    assert.equal(await findOnPath('tool', undefined), undefined)
    assert.equal(await findOnPath('tool', ''), undefined)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('firstLine takes the first non-empty line and caps it', () => {
  assert.equal(firstLine('\n\n  hello \nworld'), 'hello')
  assert.equal(firstLine('', '  \n', 'from stderr'), 'from stderr')
  assert.equal(firstLine(''), '(no output)')
  assert.equal(firstLine('x'.repeat(400)).length, 301)
})
