/**
 * Images through the OpenAI-compatible gateway of a running node (the
 * generated detr and llava-next models): `/v1/detections` with a data: URL
 * or bare base64, and a chat message with an `image_url` part, which goes
 * to llava-next with `<image>` where the part stood. Results equal an
 * in-process run of the same models; broken or misplaced images are 400s
 * with OpenAI's error shape.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { getBatchSkillset, getStreamingSkillset } from '../../skillsets/index.ts'
import { startWorker, stopProc } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'
import { noise, photo } from '../helpers/images.ts'
import { DETR, LLAVA, loadDirectImageModels } from '../helpers/image-models.ts'
import type { DirectImageModels } from '../helpers/image-models.ts'

const WORKER_HEADER = 'x-ipfs-accelerate-worker'
const detr = getBatchSkillset('detr')
const llava = getStreamingSkillset('llava-next')
let worker: WorkerProc
let direct: DirectImageModels
let client: OpenAI

interface Detection { label: string, score: number, box: Record<string, number> }

before(async () => {
  worker = await startWorker({ models: `${DETR},${LLAVA}`, timeoutMs: 120_000 })
  direct = await loadDirectImageModels()
  client = new OpenAI({ baseURL: `${worker.httpUrl}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 })
})

after(async () => {
  await direct?.stop()
  if (worker !== undefined) await stopProc(worker.proc)
})

function dataUrl (bytes: Uint8Array, type: string): string {
  return `data:${type};base64,${Buffer.from(bytes).toString('base64')}`
}

async function post (path: string, body: unknown): Promise<{ status: number, headers: Headers, json: Record<string, unknown> }> {
  const r = await fetch(`${worker.httpUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: r.status, headers: r.headers, json: await r.json() as Record<string, unknown> }
}

test('/v1/detections gives the direct run\'s detections, for a data: URL and for bare base64', async () => {
  const image = photo('chelsea.jpg')
  const [out] = await direct.detrRunner.run([detr.parseInput({ image, threshold: 0, top_k: 10 })])
  if (out instanceof Error) throw out
  const want = detr.encodeOutput(out) as { detections: Detection[], width: number, height: number }
  assert.ok(want.detections.length > 0)
  for (const img of [dataUrl(image, 'image/jpeg'), Buffer.from(image).toString('base64')]) {
    const r = await post('/v1/detections', { model: DETR, image: img, threshold: 0, top_k: 10 })
    assert.equal(r.status, 200, JSON.stringify(r.json))
    assert.equal(r.headers.get(WORKER_HEADER), worker.peerId)
    assert.equal(r.json.object, 'list')
    assert.equal(r.json.model, DETR)
    assert.equal(r.json.width, want.width)
    assert.equal(r.json.height, want.height)
    const got = r.json.data as Detection[]
    assert.equal(got.length, want.detections.length)
    got.forEach((d, i) => {
      const w = want.detections[i]!
      assert.equal(d.label, w.label)
      assert.ok(Math.abs(d.score - w.score) < 1e-4, `#${i} score`)
      for (const k of ['xmin', 'ymin', 'xmax', 'ymax']) assert.ok(Math.abs(d.box[k]! - w.box[k]!) < 0.05, `#${i} ${k}`)
    })
  }
  const bad = await post('/v1/detections', { image: Buffer.from(noise(4096)).toString('base64') })
  assert.equal(bad.status, 400)
  assert.equal((bad.json.error as { param: string }).param, 'image')
})

test('a chat message with an image_url part runs on llava-next, <image> where the part stood, streamed and not', async () => {
  const image = photo('coffee.jpg')
  const want = await direct.llavaRunner.start(llava.parseInput({ image, messages: [{ role: 'user', content: 'Describe the <image> briefly.' }], max_new_tokens: 10 }), { signal: new AbortController().signal, emit: async () => {} }) as { tokens: number[], text: string }
  const messages: OpenAI.ChatCompletionMessageParam[] = [{
    role: 'user',
    content: [{ type: 'text', text: 'Describe the ' }, { type: 'image_url', image_url: { url: dataUrl(image, 'image/jpeg') } }, { type: 'text', text: ' briefly.' }]
  }]
  const { data, response } = await client.chat.completions.create({ messages, max_tokens: 10 } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming).withResponse()
  assert.equal(response.headers.get(WORKER_HEADER), worker.peerId)
  assert.equal(data.model, LLAVA, 'no model named: the image picks llava-next')
  assert.equal(data.choices[0]!.message.content, want.text)
  assert.equal(data.usage!.completion_tokens, want.tokens.length)
  let streamed = ''
  for await (const c of await client.chat.completions.create({ model: LLAVA, messages, max_tokens: 10, stream: true })) streamed += c.choices[0]?.delta.content ?? ''
  assert.equal(streamed, want.text)
})

test('image mistakes are 400s naming the field: two images, text only for llava-next, a broken image', async () => {
  const url = dataUrl(photo('coffee.jpg'), 'image/jpeg')
  const two = await post('/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'image_url', image_url: { url } }] }] })
  assert.equal(two.status, 400)
  assert.equal((two.json.error as { param: string }).param, 'messages.0.content.1.image_url.url')
  const textOnly = await post('/v1/chat/completions', { model: LLAVA, messages: [{ role: 'user', content: 'hello' }] })
  assert.equal(textOnly.status, 400)
  assert.equal((textOnly.json.error as { param: string }).param, 'model')
  const broken = await post('/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(noise(2048), 'image/png') } }] }] })
  assert.equal(broken.status, 400)
  assert.match((broken.json.error as { message: string }).message, /not a PNG, JPEG or WebP/)
})
