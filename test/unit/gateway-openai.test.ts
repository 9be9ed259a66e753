/**
 * The `/v1` routes on a stubbed backend, over a real socket: who gets in
 * (a key, or without one only by the node's own address), streaming
 * (deltas in order, a late error as a last `data: {"error"}` event, a
 * client that leaves cancels its job), embeddings as floats and base64,
 * and the warning for an open API beyond loopback.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, request } from 'node:http'
import type { Server } from 'node:http'
import { JobFailedError, JobTimeoutError } from '../../src/errors.ts'
import { createGateway } from '../../src/gateway/http.ts'
import { requestGuard } from '../../src/gateway/guard.ts'
import { openAccessWarning, openAiGuard } from '../../src/gateway/openai/access.ts'
import type { GatewayBackend, GatewayJob } from '../../src/gateway/openai/backend.ts'
import { openAiRoutes } from '../../src/gateway/openai/routes.ts'
import { forComponent, setLogLevel } from '../../src/logger.ts'
import { encodeEmbedOutput } from '../../skillsets/embed/codec.ts'
import { notReadyReason } from '../../src/node/openai-gateway.ts'
import { rawRequest } from '../helpers/http.ts'
import { Fuzzer, VALUE_MUTATIONS } from '../helpers/fuzz/mutate.ts'
import { photo } from '../helpers/images.ts'
import type { Answer } from '../helpers/http.ts'

setLogLevel('error')

const KEY = 'unit-test-key-0123456789'
const jobs: GatewayJob[] = []
let behaviour: (job: GatewayJob) => Promise<Record<string, unknown>> = async () => ({})

const ALL_MODELS: ReturnType<GatewayBackend['models']> = [
  { id: 't/lm', skillset: 'lm', workers: 1, local: true },
  { id: 't/embed', skillset: 'embed', workers: 2, local: false },
  { id: 't/detr', skillset: 'detr', workers: 1, local: false },
  { id: 't/llava', skillset: 'llava-next', workers: 1, local: false }
]
let models = ALL_MODELS
const backend: GatewayBackend = {
  models: () => models,
  submit: async (job) => {
    jobs.push(job)
    job.onLease?.('peer-x')
    return { worker: 'peer-x', model: job.model ?? '?', output: await behaviour(job) }
  }
}

const servers: Server[] = []
async function serve (apiKey?: string): Promise<number> {
  const guard = openAiGuard({ host: '127.0.0.1', ...(apiKey === undefined ? {} : { apiKey }) })
  const store = requestGuard({ authorize: () => false })
  const handler = createGateway(openAiRoutes({ backend, guard, maxImageBytes: 1 << 20 }), forComponent('test:http'), { guard: store })
  const server = createServer((req, res) => { void handler(req, res) })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  servers.push(server)
  return (server.address() as { port: number }).port
}

let open: number
let keyed: number
before(async () => { open = await serve(); keyed = await serve(KEY) })
after(async () => { for (const s of servers) { s.closeAllConnections(); s.close() } })

async function send (port: number, path: string, init: { body?: string, headers?: Record<string, string>, method?: string } = {}): Promise<Answer> {
  const json: Record<string, string> = init.body === undefined ? {} : { 'content-type': 'application/json' }
  return await rawRequest(port, { path, method: init.method ?? (init.body === undefined ? 'GET' : 'POST'), headers: { host: `127.0.0.1:${port}`, ...json, ...init.headers }, ...(init.body === undefined ? {} : { body: init.body }) })
}
const errorOf = (a: Answer): { message: string, type: string, param: string | null, code: string | null } => (JSON.parse(a.body) as { error: { message: string, type: string, param: string | null, code: string | null } }).error

test('without a key: any client by the node\'s own address; a rebound Host, a foreign Origin, a non-JSON body are refused in OpenAI\'s shape', async () => {
  assert.equal((await send(open, '/v1/models')).status, 200)
  assert.equal((await send(open, '/v1/models', { headers: { host: `localhost:${open}` } })).status, 200)
  const rebound = await send(open, '/v1/models', { headers: { host: `evil.example:${open}` } })
  assert.equal(rebound.status, 403)
  assert.equal(errorOf(rebound).type, 'permission_error')
  assert.match(errorOf(rebound).message, /not this node's address/)
  const page = await send(open, '/v1/embeddings', { body: '{"input":"x"}', headers: { origin: 'https://evil.example' } })
  assert.equal(page.status, 403)
  const form = await send(open, '/v1/embeddings', { body: '{"input":"x"}', headers: { 'content-type': 'text/plain' } })
  assert.equal(form.status, 415)
  assert.equal(errorOf(form).code, 'unsupported_media_type')
})

test('with a key: any Host with the key; 401 without it (WWW-Authenticate), and a foreign Origin still refused', async () => {
  const auth = { authorization: `Bearer ${KEY}` }
  assert.equal((await send(keyed, '/v1/models', { headers: { ...auth, host: `gpu-box.lan:${keyed}` } })).status, 200)
  for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: KEY }] as Array<Record<string, string>>) {
    const a = await send(keyed, '/v1/models', { headers })
    assert.equal(a.status, 401)
    assert.equal(a.headers['www-authenticate'], 'Bearer')
    assert.equal(errorOf(a).code, 'invalid_api_key')
    assert.match(errorOf(a).message, /--api-key/)
  }
  assert.equal((await send(keyed, '/v1/models', { headers: { ...auth, origin: 'https://evil.example' } })).status, 403)
  // Unknown paths and methods under /v1 have the /v1 guard and OpenAI's error shape, not the store API's.
  const noKey = await send(keyed, '/v1/models/demo/x')
  assert.equal(noKey.status, 401)
  assert.match(errorOf(noKey).message, /API key/)
  const unknown = await send(keyed, '/v1/models/demo/x', { headers: auth })
  assert.equal(unknown.status, 404)
  assert.equal(errorOf(unknown).code, 'unknown_url')
  const method = await send(keyed, '/v1/embeddings', { headers: auth })
  assert.equal(method.status, 405)
  assert.equal(errorOf(method).type, 'invalid_request_error')
  assert.equal((await send(keyed, '/v1/models', { headers: { ...auth, host: `gpu-box.lan:${keyed}`, origin: `http://gpu-box.lan:${keyed}` } })).status, 200, 'a same-origin page')
})

test('a body declared past the limit is refused before it is read (413)', async () => {
  const a = await new Promise<Answer>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: open, path: '/v1/embeddings', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(64 << 20) } }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) })
    })
    req.on('error', reject)
    req.write('{"input":')
  })
  assert.equal(a.status, 413)
  assert.equal(errorOf(a).code, 'request_too_large')
})

test('embeddings: floats and base64 of the same little-endian float32 values, in order; no model → the first served', async () => {
  const vectors = new Float32Array([0.5, -1.25, 3, 1 / 3, -2.5, 7e-8])
  behaviour = async () => encodeEmbedOutput({ embeddings: vectors, count: 2, dims: 3 })
  const floats = JSON.parse((await send(open, '/v1/embeddings', { body: JSON.stringify({ input: ['a', 'b'] }) })).body) as { data: Array<{ index: number, embedding: number[] }>, model: string }
  assert.equal(jobs.at(-1)?.model, 't/embed')
  assert.deepEqual(jobs.at(-1)?.input, { texts: ['a', 'b'] })
  assert.equal(floats.model, 't/embed')
  assert.deepEqual(floats.data.map((d) => d.index), [0, 1])
  assert.deepEqual(floats.data.flatMap((d) => d.embedding), Array.from(vectors))
  const b64 = await send(open, '/v1/embeddings', { body: JSON.stringify({ model: 't/embed', input: 'a', encoding_format: 'base64' }) })
  assert.equal(b64.headers['x-ipfs-accelerate-worker'], 'peer-x')
  const rows = (JSON.parse(b64.body) as { data: Array<{ embedding: string }> }).data.map((d) => { const buf = Buffer.from(d.embedding, 'base64'); return Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4)) })
  assert.deepEqual(rows.flat(), Array.from(vectors))
  const unknown = await send(open, '/v1/embeddings', { body: JSON.stringify({ model: 'x/y', input: 'a' }) })
  assert.equal(unknown.status, 404)
  assert.match(errorOf(unknown).message, /serves t\/embed/)
  models = ALL_MODELS.filter((m) => m.skillset !== 'detr')
  const none = await send(open, '/v1/detections', { body: JSON.stringify({ image: 'AAAA' }) })
  models = ALL_MODELS
  assert.equal(none.status, 503, 'no detr model anywhere: no capacity, not an unknown model')
  assert.equal(errorOf(none).code, 'no_worker')
})

test('streaming: deltas in order after a role chunk; an error after output is a last data: {"error"} event without [DONE]; one before output keeps its status', async () => {
  behaviour = async (job) => {
    for (const text of ['Hel', '', 'lo']) await job.onPartial!({ tokens: [1], text }, 0)
    throw new JobFailedError('the worker fell over')
  }
  const a = await send(open, '/v1/chat/completions', { body: JSON.stringify({ messages: [{ role: 'developer', content: 'be brief' }, { role: 'user', content: 'hi' }], stream: true, max_tokens: 5, temperature: 0.5, stop: 'x', seed: 3 }) })
  assert.equal(a.status, 200)
  assert.equal(a.headers['x-ipfs-accelerate-worker'], 'peer-x')
  assert.deepEqual(jobs.at(-1)?.input, { messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }], max_new_tokens: 5, temperature: 0.5, stop: ['x'], seed: 3 })
  const events = a.body.split('\n\n').filter((e) => e !== '').map((e) => e.replace(/^data: /, ''))
  assert.ok(!events.includes('[DONE]'))
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { object: string, choices: Array<{ delta: { role?: string, content?: string } }> })
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'))
  assert.deepEqual(chunks.map((c) => c.choices[0]!.delta), [{ role: 'assistant', content: '' }, { content: 'Hel' }, { content: 'lo' }])
  assert.deepEqual((JSON.parse(events.at(-1)!) as { error: { code: string } }).error.code, 'job_failed')
  behaviour = async () => { throw new JobTimeoutError('no result within 1 s') }
  const early = await send(open, '/v1/completions', { body: JSON.stringify({ prompt: 'x', stream: true }) })
  assert.equal(early.status, 504)
  assert.equal(errorOf(early).type, 'timeout_error')
})

test('a client that leaves mid-stream cancels its job', async () => {
  let cancelled: (() => void) | undefined
  const gone = new Promise<void>((resolve) => { cancelled = resolve })
  behaviour = async (job) => {
    job.signal.addEventListener('abort', () => { cancelled!() }, { once: true })
    await job.onPartial!({ tokens: [1], text: 'first' }, 0)
    await gone
    throw new Error('cancelled')
  }
  const ac = new AbortController()
  const res = await fetch(`http://127.0.0.1:${open}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], stream: true }), signal: ac.signal })
  const reader = res.body!.getReader()
  await reader.read()
  ac.abort()
  await Promise.race([gone, new Promise((_resolve, reject) => setTimeout(() => { reject(new Error('the job was not cancelled within 5 s')) }, 5000))])
})

test('a warning for an API open beyond loopback, none on loopback or with a key', () => {
  assert.match(openAccessWarning({ host: '0.0.0.0' }) ?? '', /answers anyone .* --api-key KEY/)
  assert.ok(openAccessWarning({ host: '192.168.1.5' }) !== undefined)
  for (const host of ['127.0.0.1', 'localhost', '::1']) assert.equal(openAccessWarning({ host }), undefined, host)
  assert.equal(openAccessWarning({ host: '0.0.0.0', apiKey: KEY }), undefined)
})

test('/readyz: ready only when started, not stopping, with a model whose inference thread is up', () => {
  const up = [{ loaded: false }, { loaded: true }]
  assert.equal(notReadyReason({ started: true, stopping: false }, up), undefined)
  assert.match(notReadyReason({ started: false, stopping: false }, up) ?? '', /starting/)
  assert.match(notReadyReason({ started: true, stopping: true }, up) ?? '', /stopping/)
  assert.match(notReadyReason({ started: true, stopping: false }, [{ loaded: false }]) ?? '', /no model has an inference thread up/)
})

test('600 mutated bodies (wrong types, dropped and extra keys, huge and deep values): each a 2xx or a typed 4xx/501 in OpenAI\'s shape, never a 5xx or a hang', async () => {
  const image = `data:image/webp;base64,${Buffer.from(photo('rocket.webp')).toString('base64')}`
  const valid: Array<[string, Record<string, unknown>]> = [
    ['/v1/embeddings', { model: 't/embed', input: ['a', 'b'], encoding_format: 'float' }],
    ['/v1/chat/completions', { model: 't/lm', messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], max_tokens: 4, temperature: 0.7, top_p: 0.9, seed: 1, stop: ['x'], stream: false }],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'text', text: 'see ' }, { type: 'image_url', image_url: { url: image } }] }] }],
    ['/v1/completions', { model: 't/lm', prompt: 'x', max_tokens: 4, stream: true, stream_options: { include_usage: true } }],
    ['/v1/detections', { image, threshold: 0.5, top_k: 3 }]
  ]
  behaviour = async (job) => {
    if (job.skillset === 'embed') { const n = (job.input.texts as string[]).length; return encodeEmbedOutput({ embeddings: new Float32Array(n * 2), count: n, dims: 2 }) }
    if (job.skillset === 'detr') return { detections: [{ label: 'cat', score: 0.9, box: { xmin: 1, ymin: 1, xmax: 2, ymax: 2 } }], width: 4, height: 4 }
    if (job.onPartial !== undefined) await job.onPartial({ tokens: [1], text: 'a' }, 0)
    return { text: 'a', tokens: [1], finishReason: 'length' }
  }
  const fuzz = new Fuzzer(11)
  const statuses = new Map<number, number>()
  for (let i = 0; i < 600; i++) {
    const [path, base] = fuzz.pick(valid)
    const body = JSON.stringify(fuzz.mutateValue(base, fuzz.pick(VALUE_MUTATIONS)))
    const a = await send(open, path, { body })
    statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1)
    assert.ok(a.status < 500 || a.status === 501, `${a.status} for ${path} ${body.slice(0, 300)}: ${a.body.slice(0, 300)}`)
    if (a.status >= 400) {
      const e = errorOf(a)
      assert.ok(typeof e.message === 'string' && e.message.length > 0 && typeof e.type === 'string', a.body.slice(0, 300))
    }
  }
  // The mutations exercise refusals mostly, and some still pass.
  assert.ok((statuses.get(400) ?? 0) > 100 && (statuses.get(200) ?? 0) > 20, JSON.stringify([...statuses]))
})
