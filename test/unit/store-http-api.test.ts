import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, request } from 'node:http'
import type { Server } from 'node:http'
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createGateway } from '../../src/gateway/http.ts'
import { requestGuard } from '../../src/gateway/guard.ts'
import { bearerAuth, loadOrCreateApiToken } from '../../src/gateway/token.ts'
import { forComponent } from '../../src/logger.ts'
import { StoreApiClient } from '../../src/store/api/client.ts'
import { storeRoutes } from '../../src/store/api/http-api.ts'
import type { ContentStore } from '../../src/store/content-store.ts'
import { CLI, runProc } from '../helpers/procs.ts'
import { smallModelFiles, startStore, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'

/** The store routes behind the node's gateway and guard, with the token of `tokenDir`. */
async function serve (store: ContentStore, tokenDir: string): Promise<{ url: string, token: string, server: Server }> {
  const token = await loadOrCreateApiToken(tokenDir)
  const handler = createGateway(storeRoutes(store.models), forComponent('test:http'), { guard: requestGuard({ authorize: bearerAuth(token) }) })
  const server = createServer((req, res) => { void handler(req, res) })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, token, server }
}

test('the store API: import, list, pin, verify, export, gc through HTTP, errors with their codes', async () => {
  const root = await tempDir()
  const files = await writeModelDir(join(root, 'model'), smallModelFiles())
  const store = await startStore(join(root, 'data'))
  const { url, token, server } = await serve(store, root)
  try {
    const api = new StoreApiClient(url, { token })
    const rec = await api.importDir(join(root, 'model'), { id: 'http/model', skillset: 'embed' })
    assert.equal(rec.id, 'http/model')
    assert.deepEqual((await api.list()).map((m) => [m.id, m.pinned, m.local]), [['http/model', true, true]])
    await api.exportTo('http/model', join(root, 'out'))
    for (const [p, bytes] of files) assert.ok((await readFile(join(root, 'out', p))).equals(bytes), p)
    assert.equal((await api.verify(rec.cid)).cid, rec.cid)
    assert.equal((await api.unpin('http/model')).pinned, false)
    assert.ok((await api.gc()).deletedBlocks > 0)
    await assert.rejects(api.pin('http/model'), (err: Error & { code?: string }) => err.code === 'ERR_STORE' && /pull it first/.test(err.message))
    await assert.rejects(api.verify('no/such'), (err: Error & { code?: string }) => err.code === 'ERR_MODEL_NOT_FOUND')
    const bad = await fetch(`${url}/api/v1/models/import`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ dir: 'relative/path', bogus: 1 }) })
    assert.equal(bad.status, 400)
    const body = await bad.json() as { error: { code: string, message: string } }
    assert.equal(body.error.code, 'ERR_INVALID_INPUT')
    assert.match(body.error.message, /dir: an absolute path/)
  } finally {
    server.close()
    await store.stop()
  }
})

test('the CLI talks to the node that runs on its data dir (node.json), else opens the store itself', async () => {
  const root = await tempDir()
  await writeModelDir(join(root, 'model'), { 'config.json': 10, 'onnx/model.onnx': 50_000 })
  const store = await startStore(join(root, 'node-store'))
  const cliDir = join(root, 'cli-data')
  await mkdir(cliDir)
  const { url, server } = await serve(store, cliDir) // the node's token lives in the data dir the CLI names
  try {
    // no node.json: the CLI opens cli-data's store itself
    const local = await runProc([CLI, 'models', 'import', join(root, 'model'), '--id', 'cli/local', '--json', '--data-dir', cliDir], { timeoutMs: 60_000 })
    assert.equal(local.code, 0, local.stderr)
    assert.equal((JSON.parse(local.stdout) as { id: string }).id, 'cli/local')
    // a live node.json: the same commands go to that node's API (its store is elsewhere)
    await writeFile(join(cliDir, 'node.json'), JSON.stringify({ version: 1, peerId: 'x', multiaddrs: [], httpUrl: url, pid: process.pid, startedAt: new Date().toISOString(), skillsets: [], models: [] }))
    const viaNode = await runProc([CLI, 'models', 'import', join(root, 'model'), '--id', 'cli/via-node', '--json', '--data-dir', cliDir], { timeoutMs: 60_000 })
    assert.equal(viaNode.code, 0, viaNode.stderr)
    const list = await runProc([CLI, 'models', 'list', '--json', '--data-dir', cliDir], { timeoutMs: 60_000 })
    assert.deepEqual((JSON.parse(list.stdout) as { models: Array<{ id: string }> }).models.map((m) => m.id), ['cli/via-node'])
    assert.deepEqual((await store.models.list()).map((m) => m.id), ['cli/via-node'])
    const missing = await runProc([CLI, 'models', 'export', 'no/such', join(root, 'x'), '--data-dir', cliDir], { timeoutMs: 60_000 })
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /^error ERR_MODEL_NOT_FOUND: /)
    // export through the node, with the token from the data dir; a second export into the same folder is refused
    const out = join(root, 'exported')
    const exp = await runProc([CLI, 'models', 'export', 'cli/via-node', out, '--json', '--quiet', '--data-dir', cliDir], { timeoutMs: 60_000 })
    assert.equal(exp.code, 0, exp.stderr)
    assert.deepEqual((await readdir(out)).sort(), ['config.json', 'onnx'])
    const again = await runProc([CLI, 'models', 'export', 'cli/via-node', out, '--quiet', '--data-dir', cliDir], { timeoutMs: 60_000 })
    assert.equal(again.code, 1)
    assert.match(again.stderr, /^error ERR_EXISTS: .*is not empty/)
    // a token that is not the node's: refused, and the CLI says so
    await writeFile(join(cliDir, 'api.token'), 'A'.repeat(43), { mode: 0o600 })
    const wrong = await runProc([CLI, 'models', 'list', '--data-dir', cliDir], { timeoutMs: 60_000 })
    assert.equal(wrong.code, 1)
    assert.match(wrong.stderr, /^error ERR_UNAUTHORIZED: /)
  } finally {
    server.close()
    await store.stop()
  }
})

test('a body declared past the limit is refused at once, not awaited (found by fuzzing)', async () => {
  const root = await tempDir()
  const store = await startStore(join(root, 'data'))
  const { url, token, server } = await serve(store, root)
  try {
    const { port } = new URL(url)
    const t0 = performance.now()
    const answer = await new Promise<{ status: number, body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/models/verify', agent: false, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': String(2 ** 31) } }, (res) => {
        let body = ''
        res.on('data', (d: Buffer) => { body += d.toString() })
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
      })
      req.on('error', reject)
      req.write('{"ref":"x"}') // and never the rest
    })
    assert.ok(performance.now() - t0 < 2000, 'answered before the body came')
    assert.equal(answer.status, 400)
    assert.equal((JSON.parse(answer.body) as { error: { code: string } }).error.code, 'ERR_INPUT_TOO_LARGE')
  } finally {
    server.closeAllConnections()
    server.close()
    await store.stop()
  }
})
