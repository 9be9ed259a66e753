/**
 * The OpenAI-compatible gateway of a running node, driven by the official
 * `openai` client: node B serves demo/tiny-random (embed) and
 * demo/lm-tiny-random (lm) and asks for an API key; node A serves only the
 * embed model, has no key, and joined through B. Requests to B run on B
 * itself (a node cannot dial itself: the local path); a chat request to A
 * is served by B through the swarm, and the worker header says so.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { CLI, runProc, startWorker, stopProc } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'

const EMBED = 'demo/tiny-random'
const LM = 'demo/lm-tiny-random'
const KEY = 'test-key-0123456789abcdef'
const WORKER_HEADER = 'x-ipfs-accelerate-worker'
let a: WorkerProc
let b: WorkerProc
let client: OpenAI

before(async () => {
  b = await startWorker({ models: `${EMBED},${LM}`, config: { apiKey: KEY, store: { embeddingCache: false } } })
  a = await startWorker({ models: EMBED, bootstrap: [b.multiaddrs[0]!] })
  client = new OpenAI({ baseURL: `${b.httpUrl}/v1`, apiKey: KEY, maxRetries: 0, timeout: 120_000 })
})

after(async () => {
  await Promise.all([a, b].filter((w) => w !== undefined).map(async (w) => await stopProc(w.proc)))
})

test('/readyz says ready once a model is loaded; /healthz stays as it was', async () => {
  for (const w of [a, b]) {
    const r = await fetch(`${w.httpUrl}/readyz`)
    assert.equal(r.status, 200)
    const body = await r.json() as { ready: boolean, models: Array<{ id: string, loaded: boolean }> }
    assert.equal(body.ready, true)
    assert.ok(body.models.every((m) => m.loaded))
    assert.equal((await fetch(`${w.httpUrl}/healthz`)).status, 200)
  }
})

test('embeddings equal `submit embed`, as base64 (the client default) and as floats, for one text and several', async () => {
  const texts = ['hello world', 'the swarm embeds this', 'a third text']
  const cli = await runProc([CLI, 'submit', 'embed', ...texts.flatMap((t) => ['--text', t]), '--model', EMBED, '--json', '--bootstrap', b.multiaddrs[0]!, '--no-mdns', '--timeout', '60'], { timeoutMs: 90_000 })
  assert.equal(cli.code, 0, cli.stderr)
  const want = (JSON.parse(cli.stdout) as { output: { embeddings: number[][] } }).output.embeddings
  const { data: res, response } = await client.embeddings.create({ model: EMBED, input: texts }).withResponse()
  assert.equal(response.headers.get(WORKER_HEADER), b.peerId, 'B ran it itself')
  assert.equal(res.object, 'list')
  assert.equal(res.model, EMBED)
  assert.deepEqual(res.data.map((d) => d.index), [0, 1, 2])
  assert.deepEqual(res.data.map((d) => Array.from(d.embedding)), want)
  const floats = await client.embeddings.create({ model: EMBED, input: texts[1]!, encoding_format: 'float' })
  assert.ok(Array.isArray(floats.data[0]!.embedding))
  assert.deepEqual(floats.data[0]!.embedding, want[1])
  // No model: the node's default embed model.
  const dflt = await client.embeddings.create({ input: 'hello world' } as unknown as OpenAI.EmbeddingCreateParams)
  assert.equal(dflt.model, EMBED)
  assert.deepEqual(Array.from(dflt.data[0]!.embedding), want[0])
})

test('chat completions: streamed deltas join into the non-streamed text, greedy and seeded; stop and max_tokens apply', async () => {
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say something about swarms.' }]
  for (const sampling of [{}, { temperature: 0.9, top_p: 0.95, seed: 1234 }]) {
    const { data: full, response } = await client.chat.completions.create({ model: LM, messages, max_tokens: 20, ...sampling }).withResponse()
    assert.equal(response.headers.get(WORKER_HEADER), b.peerId)
    assert.equal(full.object, 'chat.completion')
    assert.equal(full.model, LM)
    const choice = full.choices[0]!
    assert.equal(choice.message.role, 'assistant')
    assert.ok(['stop', 'length'].includes(choice.finish_reason))
    assert.ok(full.usage!.completion_tokens >= 1 && full.usage!.completion_tokens <= 20)
    const { data: stream, response: sres } = await client.chat.completions.create({ model: LM, messages, max_tokens: 20, ...sampling, stream: true, stream_options: { include_usage: true } }).withResponse()
    assert.equal(sres.headers.get(WORKER_HEADER), b.peerId)
    assert.match(sres.headers.get('content-type') ?? '', /^text\/event-stream/)
    let text = ''
    let finish: string | null = null
    let usage: OpenAI.CompletionUsage | undefined
    let chunks = 0
    for await (const c of stream) {
      assert.equal(c.object, 'chat.completion.chunk')
      chunks++
      if (c.usage != null) usage = c.usage
      const ch = c.choices[0]
      if (ch === undefined) continue
      text += ch.delta.content ?? ''
      if (ch.finish_reason !== null) finish = ch.finish_reason
    }
    assert.equal(text, choice.message.content, `streamed text equals the full answer (${JSON.stringify(sampling)})`)
    assert.equal(finish, choice.finish_reason)
    assert.equal(usage?.completion_tokens, full.usage!.completion_tokens)
    assert.ok(chunks >= 3, 'role chunk, content chunks, finish chunk')
  }
  const free = await client.chat.completions.create({ model: LM, messages, max_tokens: 24 })
  const content = free.choices[0]!.message.content ?? ''
  assert.ok(content.length > 6, 'enough text to pick a stop sequence from')
  const stop = content.slice(3, 6)
  const stopped = await client.chat.completions.create({ model: LM, messages, max_tokens: 24, stop })
  assert.equal(stopped.choices[0]!.finish_reason, 'stop')
  assert.equal(stopped.choices[0]!.message.content, content.slice(0, content.indexOf(stop)))
  const short = await client.chat.completions.create({ model: LM, messages, max_completion_tokens: 2 })
  assert.equal(short.usage!.completion_tokens, 2)
})

test('completions: prompt → lm, streamed equal to non-streamed', async () => {
  const full = await client.completions.create({ model: LM, prompt: 'Once upon a time', max_tokens: 16 })
  assert.equal(full.object, 'text_completion')
  const text = full.choices[0]!.text
  assert.ok(full.usage!.completion_tokens >= 1)
  let streamed = ''
  for await (const c of await client.completions.create({ model: LM, prompt: 'Once upon a time', max_tokens: 16, stream: true })) streamed += c.choices[0]?.text ?? ''
  assert.equal(streamed, text)
})

test('/v1/models lists every model in the swarm: B\'s own, and on A the lm model only B serves', async () => {
  const onB = await client.models.list()
  assert.deepEqual(onB.data.map((m) => m.id).sort(), [EMBED, LM].sort())
  assert.ok(onB.data.every((m) => m.object === 'model' && m.owned_by === 'ipfs-accelerate'))
  const onA = new OpenAI({ baseURL: `${a.httpUrl}/v1`, apiKey: 'none-needed', maxRetries: 0 })
  const until = Date.now() + 30_000
  let ids: string[] = []
  while (Date.now() < until) {
    ids = (await onA.models.list()).data.map((m) => m.id)
    if (ids.includes(LM)) break
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  assert.ok(ids.includes(LM) && ids.includes(EMBED), `A lists ${ids.join(', ')}`)
})

test('a chat request that enters node A, which does not serve the lm model, is served by node B', async () => {
  const onA = new OpenAI({ baseURL: `${a.httpUrl}/v1`, apiKey: 'none-needed', maxRetries: 0, timeout: 120_000 })
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Hello from A' }]
  const { data, response } = await onA.chat.completions.create({ model: LM, messages, max_tokens: 12 }).withResponse()
  assert.equal(response.headers.get(WORKER_HEADER), b.peerId)
  const direct = await client.chat.completions.create({ model: LM, messages, max_tokens: 12 })
  assert.equal(data.choices[0]!.message.content, direct.choices[0]!.message.content, 'the same greedy text as asking B directly')
  const { data: stream, response: sres } = await onA.chat.completions.create({ model: LM, messages, max_tokens: 12, stream: true }).withResponse()
  assert.equal(sres.headers.get(WORKER_HEADER), b.peerId)
  let text = ''
  for await (const c of stream) text += c.choices[0]?.delta.content ?? ''
  assert.equal(text, direct.choices[0]!.message.content)
  // A's own model runs on A, and is recorded there like any job it ran (/status.json, /metrics).
  const okJobs = async (): Promise<number> => ((await (await fetch(`${a.httpUrl}/status.json`)).json()) as { jobs: { totals: Record<string, number> } }).jobs.totals.ok ?? 0
  const before = await okJobs()
  const { response: eres } = await onA.embeddings.create({ model: EMBED, input: 'local' }).withResponse()
  assert.equal(eres.headers.get(WORKER_HEADER), a.peerId)
  assert.equal(await okJobs(), before + 1)
})

test('errors in OpenAI\'s shape: unknown model 404, bad bodies 400, too large 413, no key 401, a web page 403', async () => {
  await assert.rejects(client.embeddings.create({ model: 'nobody/serves-this', input: 'x' }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.NotFoundError)
    assert.equal(err.status, 404)
    assert.equal(err.code, 'model_not_found')
    assert.equal(err.type, 'invalid_request_error')
    return true
  })
  await assert.rejects(client.chat.completions.create({ model: EMBED, messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.BadRequestError)
    assert.equal(err.param, 'model')
    return true
  })
  const raw = async (path: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number, error: { message: string, type: string, param: string | null, code: string | null } }> => {
    const r = await fetch(`${b.httpUrl}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...headers } })
    return { status: r.status, error: (await r.json() as { error: { message: string, type: string, param: string | null, code: string | null } }).error }
  }
  const bad: Array<[string, string, string | null]> = [
    ['/v1/chat/completions', '{"model":"demo/lm-tiny-random"}', 'messages'],
    ['/v1/chat/completions', '{"model":"demo/lm-tiny-random","messages":[{"role":"user","content":"x"}],"tools":[]}', null],
    ['/v1/chat/completions', '{"messages":[{"role":"user","content":"x"}],"n":2}', 'n'],
    ['/v1/chat/completions', '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}', 'messages.0.content.0.image_url.url'],
    ['/v1/embeddings', '{"input":[]}', 'input'],
    ['/v1/embeddings', '{"input":"x"', null],
    ['/v1/completions', '{"prompt":"x","max_tokens":0}', 'max_tokens']
  ]
  for (const [path, body, param] of bad) {
    const r = await raw(path, body)
    assert.equal(r.status, 400, `${path} ${body}: ${r.error.message}`)
    assert.equal(r.error.type, 'invalid_request_error')
    assert.ok(r.error.message.length > 0)
    if (param !== null) assert.equal(r.error.param, param, r.error.message)
  }
  const big = await raw('/v1/embeddings', JSON.stringify({ input: 'x'.repeat(1024 * 1024 + 10) }))
  assert.equal(big.status, 413)
  assert.equal(big.error.code, 'request_too_large')
  const noKey = new OpenAI({ baseURL: `${b.httpUrl}/v1`, apiKey: 'wrong-key-wrong-key-wrong', maxRetries: 0 })
  await assert.rejects(noKey.models.list(), (err: unknown) => {
    assert.ok(err instanceof OpenAI.AuthenticationError)
    assert.equal(err.status, 401)
    assert.equal(err.code, 'invalid_api_key')
    return true
  })
  const page = await raw('/v1/embeddings', '{"input":"x"}', { origin: 'http://evil.example' })
  assert.equal(page.status, 403)
  // The store API keeps its own token: the /v1 key does not open it.
  const store = await fetch(`${b.httpUrl}/api/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })
  assert.equal(store.status, 401)
})
