/**
 * The local API answers only its owner: the attacks a web page can make
 * (a cross-site "simple" POST, DNS rebinding, a guessed or missing token)
 * are refused before anything runs, and an export never overwrites.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { IncomingMessage, Server } from 'node:http'
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createGateway, sendJson } from '../../src/gateway/http.ts'
import { requestGuard } from '../../src/gateway/guard.ts'
import { apiTokenPath, bearerAuth, loadOrCreateApiToken, readApiToken } from '../../src/gateway/token.ts'
import { forComponent, setLogLevel } from '../../src/logger.ts'
import { storeRoutes } from '../../src/store/api/http-api.ts'
import type { ContentStore } from '../../src/store/content-store.ts'
import { smallModelFiles, startStore, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'
import { rawRequest } from '../helpers/http.ts'
import type { Answer } from '../helpers/http.ts'

setLogLevel('error') // refusals are logged at warn: expected here

const send = rawRequest

function errorOf (a: Answer): { code: string, message: string } {
  return (JSON.parse(a.body) as { error: { code: string, message: string } }).error
}

async function exists (p: string): Promise<boolean> {
  return await stat(p).then(() => true, (err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return false; throw err })
}

async function setup (): Promise<{ root: string, store: ContentStore, server: Server, port: number, token: string, files: Map<string, Uint8Array> }> {
  const root = await tempDir()
  const files = await writeModelDir(join(root, 'model'), smallModelFiles())
  const store = await startStore(join(root, 'data'))
  await store.models.importDir(join(root, 'model'), { id: 'guard/model', skillset: 'embed' })
  const token = await loadOrCreateApiToken(join(root, 'data'))
  const open = { method: 'GET' as const, path: '/healthz', open: true, handler: (_req: IncomingMessage, res: Parameters<typeof sendJson>[0]) => { sendJson(res, 200, { status: 'ok' }) } }
  const handler = createGateway([open, ...storeRoutes(store.models)], forComponent('test:http'), { guard: requestGuard({ authorize: bearerAuth(token) }) })
  const server = createServer((req, res) => { void handler(req, res) })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  return { root, store, server, port: (server.address() as { port: number }).port, token, files }
}

test('a cross-site POST, a rebound Host, a missing or wrong token, a non-JSON body: refused, nothing written', async () => {
  const { root, store, server, port, token } = await setup()
  const here = `127.0.0.1:${port}`
  const target = join(root, 'out-evil')
  const body = JSON.stringify({ ref: 'guard/model', dir: target })
  const auth = `Bearer ${token}`
  try {
    // what a page's form or fetch sends: text/plain, its own Origin (with and without the token: the Origin alone is enough)
    for (const extra of [{}, { authorization: auth }] as Array<Record<string, string>>) {
      const a = await send(port, { method: 'POST', path: '/api/v1/models/export', headers: { host: here, origin: 'https://evil.example', 'content-type': 'text/plain', ...extra }, body })
      assert.equal(a.status, 403)
      assert.equal(errorOf(a).code, 'ERR_FORBIDDEN')
      assert.match(errorOf(a).message, /web pages.*evil\.example.*use the ipfs-accelerate CLI/)
    }
    // DNS rebinding: the page's own name, resolving to 127.0.0.1; even a same-"origin" page of that name
    const rebind = await send(port, { method: 'POST', path: '/api/v1/models/export', headers: { host: `rebind.evil.example:${port}`, origin: `http://rebind.evil.example:${port}`, 'content-type': 'application/json', authorization: auth }, body })
    assert.equal(rebind.status, 403)
    assert.match(errorOf(rebind).message, /Host "rebind\.evil\.example:\d+" is not this node's address: call it as http:\/\/127\.0\.0\.1:\d+/)
    const wrongPort = await send(port, { path: '/api/v1/models', headers: { host: `127.0.0.1:${port + 1}`, authorization: auth } })
    assert.equal(wrongPort.status, 403)
    const noHost = await send(port, { path: '/api/v1/models', headers: { authorization: auth } })
    assert.ok([400, 403].includes(noHost.status), `no Host: ${noHost.status}`) // Node's server refuses an HTTP/1.1 request without Host itself
    const nullOrigin = await send(port, { path: '/api/v1/models', headers: { host: here, origin: 'null', authorization: auth } })
    assert.equal(nullOrigin.status, 403)
    // no token, a wrong one, a wrong scheme
    for (const authorization of [undefined, `Bearer ${'A'.repeat(43)}`, `Bearer ${token}x`, `Basic ${token}`, token]) {
      const a = await send(port, { method: 'POST', path: '/api/v1/models/export', headers: { host: here, 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) }, body })
      assert.equal(a.status, 401, String(authorization))
      assert.equal(errorOf(a).code, 'ERR_UNAUTHORIZED')
      assert.equal(a.headers['www-authenticate'], 'Bearer')
    }
    // the right token but not JSON: 415, for every route that takes a body
    for (const type of [undefined, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1']) {
      const a = await send(port, { method: 'POST', path: '/api/v1/models/export', headers: { host: here, authorization: auth, ...(type === undefined ? {} : { 'content-type': type }) }, body })
      assert.equal(a.status, 415, String(type))
      assert.equal(errorOf(a).code, 'ERR_MEDIA_TYPE')
    }
    assert.equal(await exists(target), false, 'no refused request wrote anything')
    // CORS stays off: a preflight gets no Access-Control-* header
    const pre = await send(port, { method: 'OPTIONS', path: '/api/v1/models/export', headers: { host: here, origin: 'https://evil.example', 'access-control-request-method': 'POST' } })
    assert.equal(pre.status, 403)
    assert.deepEqual(Object.keys(pre.headers).filter((h) => h.startsWith('access-control-')), [])
    // the open route needs nothing
    const health = await send(port, { path: '/healthz', headers: { host: `whatever.example:${port}` } })
    assert.equal(health.status, 200)
  } finally {
    server.close()
    await store.stop()
  }
})

test('the owner gets through: loopback names, same origin, the token, JSON; export never overwrites', async () => {
  const { root, store, server, port, token, files } = await setup()
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json; charset=utf-8' }
  try {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`]) {
      const a = await send(port, { path: '/api/v1/models', headers: { host, authorization: headers.authorization } })
      assert.equal(a.status, 200, host)
      assert.deepEqual((JSON.parse(a.body) as { models: Array<{ id: string }> }).models.map((m) => m.id), ['guard/model'])
    }
    const out = join(root, 'out')
    const ok = await send(port, { method: 'POST', path: '/api/v1/models/export', headers: { ...headers, host: `localhost:${port}`, origin: `http://localhost:${port}` }, body: JSON.stringify({ ref: 'guard/model', dir: out }) })
    assert.equal(ok.status, 200, ok.body)
    const last = JSON.parse(ok.body.trim().split('\n').at(-1)!) as { type: string, result: { files: number } }
    assert.deepEqual([last.type, last.result.files], ['result', files.size])
    for (const [p, bytes] of files) assert.ok((await readFile(join(out, p))).equals(bytes), p)

    // a non-empty folder: refused, its file untouched, nothing added
    const busy = join(root, 'busy')
    await mkdir(busy)
    await writeFile(join(busy, 'config.json'), 'mine')
    const refused = await send(port, { method: 'POST', path: '/api/v1/models/export', headers: { ...headers, host: `127.0.0.1:${port}` }, body: JSON.stringify({ ref: 'guard/model', dir: busy }) })
    const line = JSON.parse(refused.body.trim()) as { type: string, code: string, message: string }
    assert.deepEqual([line.type, line.code], ['error', 'ERR_EXISTS'])
    assert.match(line.message, /is not empty.*new or empty folder; nothing was written/)
    assert.equal(await readFile(join(busy, 'config.json'), 'utf8'), 'mine')
    assert.deepEqual(await readdir(busy), ['config.json'])
    // the same without a node (the CLI's local path), and a path that is a file
    await assert.rejects(store.models.exportTo('guard/model', busy), (err: Error & { code?: string }) => err.code === 'ERR_EXISTS')
    assert.equal(await readFile(join(busy, 'config.json'), 'utf8'), 'mine')
    await assert.rejects(store.models.exportTo('guard/model', join(busy, 'config.json')), (err: Error & { code?: string }) => err.code === 'ERR_EXISTS' && /not a folder/.test(err.message))
    // an empty folder is fine
    const empty = join(root, 'empty')
    await mkdir(empty)
    assert.equal((await store.models.exportTo('guard/model', empty)).files, files.size)
  } finally {
    server.close()
    await store.stop()
  }
})

test('a failed (cancelled) export removes what it wrote, and the folder it created', async () => {
  const { root, store, server } = await setup()
  server.close()
  try {
    const out = join(root, 'cancelled')
    const ac = new AbortController()
    let aborted = false
    await assert.rejects(store.models.exportTo('guard/model', out, { signal: ac.signal, onProgress: (p) => { if (!aborted && p.bytes > 1_000_000) { aborted = true; ac.abort(new Error('stop')) } } }))
    assert.ok(aborted)
    assert.equal(await exists(out), false, 'the folder the export created is gone again')
  } finally {
    await store.stop()
  }
})

test('api.token: 32 random bytes, mode 0600, kept while valid, replaced when not; the CLI side reads it', { skip: process.platform === 'win32' }, async () => {
  const dir = await tempDir()
  const t1 = await loadOrCreateApiToken(dir)
  assert.match(t1, /^[A-Za-z0-9_-]{43}$/)
  assert.equal(Buffer.from(t1, 'base64url').byteLength, 32)
  assert.equal((await stat(apiTokenPath(dir))).mode & 0o777, 0o600)
  assert.equal(await loadOrCreateApiToken(dir), t1, 'kept across restarts')
  assert.equal(await readApiToken(dir), t1)
  assert.equal((await readdir(dir)).length, 1, 'no temporary file left')
  await chmod(apiTokenPath(dir), 0o644)
  const t2 = await loadOrCreateApiToken(dir)
  assert.notEqual(t2, t1, 'readable by others: replaced')
  assert.equal((await stat(apiTokenPath(dir))).mode & 0o777, 0o600)
  await writeFile(apiTokenPath(dir), 'short', { mode: 0o600 })
  assert.notEqual(await loadOrCreateApiToken(dir), t2, 'malformed: replaced')
  await assert.rejects(readApiToken(await tempDir()), (err: Error & { code?: string }) => err.code === 'ERR_CONFIG' && /restart the node/.test(err.message))
})

test('the guard alone: a client off the host is refused; the bound host name is accepted', () => {
  const token = 'B'.repeat(43)
  const guard = requestGuard({ authorize: bearerAuth(token), hostNames: ['0.0.0.0', 'node.lan'] })
  const req = (remoteAddress: string, host: string, extra: Record<string, string> = {}): IncomingMessage => ({ method: 'GET', socket: { remoteAddress, localAddress: '192.168.1.5', localPort: 8080 }, headers: { host, authorization: `Bearer ${token}`, ...extra } }) as unknown as IncomingMessage
  assert.equal(guard(req('192.168.1.9', '192.168.1.5:8080'))?.status, 403)
  assert.equal(guard(req('127.0.0.1', '192.168.1.5:8080')), undefined, 'the address the socket was accepted on')
  assert.equal(guard(req('127.0.0.1', '0.0.0.0:8080')), undefined, 'the address the node was bound as')
  assert.equal(guard(req('::ffff:127.0.0.1', 'node.lan:8080', { origin: 'http://node.lan:8080' })), undefined)
  assert.equal(guard(req('127.0.0.1', 'node.lan:8080', { origin: 'https://node.lan:8080' }))?.status, 403, 'another scheme is another origin')
  assert.equal(guard(req('127.0.0.1', 'node.lan:8080', { origin: 'http://node.lan:8080/x' }))?.status, 403)
  assert.equal(guard(req('127.0.0.1', 'node.lan'))?.status, 403, 'no port means 80')
  assert.equal(guard({ ...req('127.0.0.1', 'localhost:8080'), method: 'GET', headers: { host: 'localhost:8080', authorization: `Bearer ${token}`, 'content-length': '5' } } as unknown as IncomingMessage)?.status, 415, 'a GET with a body must be JSON too')
  const remote = requestGuard({ authorize: bearerAuth(token), loopbackOnly: false })
  assert.equal(remote(req('192.168.1.9', '192.168.1.5:8080')), undefined, 'a gateway may open itself to the LAN, its auth still applies')
  assert.equal(remote(req('192.168.1.9', '192.168.1.5:8080', { authorization: 'Bearer nope' }))?.status, 401)
})

test('a request target starting with // is a path, never a host: it cannot reach another route', async () => {
  const { requestPath } = await import('../../src/gateway/http.ts')
  assert.equal(requestPath('//api/v1/models'), '//api/v1/models')
  assert.equal(requestPath('/v1/models?x=1'), '/v1/models')
  assert.equal(requestPath(undefined), '/')
})
