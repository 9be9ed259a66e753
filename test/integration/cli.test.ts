/**
 * The CLI as a user meets it: help everywhere, one-line errors with codes,
 * exit statuses, and a worker that stops cleanly with a job in hand.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { CLI, runProc, startWorker, stopProc, tempDir } from '../helpers/procs.ts'

test('every command and sub-command answers --help', async () => {
  for (const cmd of [[], ['start'], ['submit'], ['submit', 'embed'], ['hardware'], ['models'], ['models', 'generate'], ['swarm-key'], ['swarm-key', 'generate'], ['status']]) {
    const r = await runProc([CLI, ...cmd, '--help'], { timeoutMs: 30_000 })
    assert.equal(r.code, 0, `${cmd.join(' ')} --help: ${r.stderr}`)
    assert.match(r.stdout, /Usage: ipfs-accelerate/)
  }
})

test('bad usage exits 2 with one line that says what to do', async () => {
  const r1 = await runProc([CLI, 'submit', 'embed'], { timeoutMs: 30_000 })
  assert.equal(r1.code, 2)
  assert.match(r1.stderr, /^error ERR_USAGE: give at least one --text/)
  const r2 = await runProc([CLI, 'start', '--bogus'], { timeoutMs: 30_000 })
  assert.equal(r2.code, 2)
  assert.match(r2.stderr, /ERR_USAGE.*--bogus.*--help/)
  const r3 = await runProc([CLI, 'frobnicate'], { timeoutMs: 30_000 })
  assert.equal(r3.code, 2)
})

test('invalid input and invalid config are refused before any network', async () => {
  const dir = await tempDir('ia-cli-')
  const r1 = await runProc([CLI, 'submit', 'embed', '--text', '', '--no-mdns', '--data-dir', dir], { timeoutMs: 30_000 })
  assert.equal(r1.code, 1)
  assert.match(r1.stderr, /^error ERR_INVALID_INPUT: /)
  assert.equal(r1.stderr.trim().split('\n').length, 1)
  const r2 = await runProc([CLI, 'start', '--data-dir', dir, '--http', 'nowhere', '--listen', 'nope', '--no-mdns'], { timeoutMs: 30_000 })
  assert.equal(r2.code, 1)
  assert.match(r2.stderr, /ERR_CONFIG: invalid configuration: listen\.0: not a multiaddr.*http: expected HOST:PORT/)
})

test('no worker within the timeout: exit 1 and ERR_NO_WORKER', async () => {
  const dir = await tempDir('ia-cli-')
  const t0 = Date.now()
  const r = await runProc([CLI, 'submit', 'embed', '--text', 'hello', '--no-mdns', '--data-dir', dir, '--timeout', '1', '--json'], { timeoutMs: 30_000 })
  assert.equal(r.code, 1)
  assert.equal(r.stdout, '')
  assert.match(r.stderr, /^error ERR_NO_WORKER: no peer found: start a worker node/)
  assert.ok(Date.now() - t0 < 15_000)
})

test('submit finds the local node through node.json, and the node stops cleanly', async () => {
  const w = await startWorker({ dtype: 'fp32' })
  const info = JSON.parse(await readFile(join(w.dataDir, 'node.json'), 'utf8')) as Record<string, unknown>
  assert.equal(info.peerId, w.peerId)
  assert.equal(info.pid, w.proc.pid)
  assert.deepEqual(info.skillsets, ['embed'])
  for (const a of info.multiaddrs as string[]) assert.ok(a.endsWith(`/p2p/${w.peerId}`), a)
  assert.equal((info.models as Array<{ id: string }>)[0]!.id, 'demo/tiny-random')

  const r = await runProc([CLI, 'submit', 'embed', '--text', 'hello world', '--text', 'second', '--no-mdns', '--data-dir', w.dataDir, '--json'], { timeoutMs: 60_000 })
  assert.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { worker: string, skillset: string, model: string, output: { embeddings: number[][], dims: number }, jobId: string, timings: Record<string, number> }
  assert.equal(out.worker, w.peerId)
  assert.equal(out.skillset, 'embed')
  assert.equal(out.model, 'demo/tiny-random')
  assert.equal(out.output.embeddings.length, 2)
  assert.equal(out.output.embeddings[0]!.length, out.output.dims)
  for (const v of out.output.embeddings) assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5)
  assert.ok(out.timings.totalMs! > 0)

  // A text past the model's token limit: embedded from its beginning, and said so.
  const long = 'the swarm shares model weights and embeddings '.repeat(40)
  const r2 = await runProc([CLI, 'submit', 'embed', '--text', 'short', '--text', long, '--no-mdns', '--data-dir', w.dataDir, '--json'], { timeoutMs: 60_000 })
  assert.equal(r2.code, 0, r2.stderr)
  assert.deepEqual((JSON.parse(r2.stdout) as { output: { truncated?: number[] } }).output.truncated, [1])
  assert.match(r2.stderr, /warning: text\(s\) #1 passed the model's token limit/)

  // The models commands go through the node's local API, with the token from the data dir; a web page gets nothing.
  assert.equal((await stat(join(w.dataDir, 'api.token'))).mode & 0o777, 0o600)
  const list = await runProc([CLI, 'models', 'list', '--json', '--data-dir', w.dataDir], { timeoutMs: 60_000 })
  assert.equal(list.code, 0, list.stderr)
  assert.ok((JSON.parse(list.stdout) as { models: Array<{ id: string }> }).models.some((m) => m.id === 'demo/tiny-random'))
  const exportDir = join(await tempDir('ia-cli-'), 'export')
  const exp = await runProc([CLI, 'models', 'export', 'demo/tiny-random', exportDir, '--json', '--quiet', '--data-dir', w.dataDir], { timeoutMs: 60_000 })
  assert.equal(exp.code, 0, exp.stderr)
  assert.ok((JSON.parse(exp.stdout) as { files: number }).files > 0)
  const again = await runProc([CLI, 'models', 'export', 'demo/tiny-random', exportDir, '--quiet', '--data-dir', w.dataDir], { timeoutMs: 60_000 })
  assert.match(again.stderr, /^error ERR_EXISTS: /)
  const page = await fetch(`${w.httpUrl}/api/v1/models/gc`, { method: 'POST', headers: { 'content-type': 'text/plain', origin: 'https://evil.example' }, body: '{}' })
  assert.equal(page.status, 403)
  assert.equal((await fetch(`${w.httpUrl}/api/v1/models`)).status, 401)
  assert.equal((await fetch(`${w.httpUrl}/healthz`)).status, 200)

  assert.equal(await stopProc(w.proc), 0, w.stderr())
  assert.match(w.stderr(), /stopped/)
  await assert.rejects(readFile(join(w.dataDir, 'node.json')), { code: 'ENOENT' }, 'node.json is removed on a clean stop')
})

test('a second node on the same data dir is refused', async () => {
  const w = await startWorker({ dtype: 'fp32' })
  try {
    const r = await runProc([CLI, 'start', '--data-dir', w.dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--http', 'off', '--models', 'demo/tiny-random'], { timeoutMs: 60_000 })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /ERR_CONFIG: a node already runs from/)
  } finally {
    await stopProc(w.proc)
  }
})

test('forcing a device this host lacks is a start-up error, never a silent CPU run', async () => {
  const dir = await tempDir('ia-cli-')
  const r = await runProc([CLI, 'start', '--device', 'cuda', '--data-dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--http', 'off', '--models', 'demo/tiny-random'], { timeoutMs: 60_000 })
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^error ERR_DEVICE_UNAVAILABLE: model demo\/tiny-random: device "cuda" was requested, but .*Run `ipfs-accelerate hardware`/m)
  await assert.rejects(readFile(join(dir, 'node.json')), { code: 'ENOENT' })
})
