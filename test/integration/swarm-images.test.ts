/**
 * Image jobs through the swarm, the way users send them: a worker process
 * serves the generated detr and llava-next models; separate `submit`
 * processes send real photographs (inline, and one over the inline limit
 * that travels by CID and is fetched back from the submitting process);
 * results equal an in-process run of the same models. Broken images
 * (random bytes, a truncated PNG, a decompression bomb) sent by a client
 * that skips the CLI's own checks get clear errors, and the node keeps
 * serving.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import sharp from 'sharp'
import type { SkillsetRunner, StreamingRunner } from '../../src/interfaces/index.ts'
import { getBatchSkillset, getStreamingSkillset } from '../../skillsets/index.ts'
import { ClientNode } from '../../src/node/client-node.ts'
import { CLI, runProc, startWorker, stopProc, tempDir } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'
import { greyPng, noise, PHOTOS_DIR, photo, pngBomb, truncated } from '../helpers/images.ts'
import { DETR, LLAVA, loadDirectImageModels } from '../helpers/image-models.ts'
import type { DirectImageModels } from '../helpers/image-models.ts'

const detr = getBatchSkillset('detr')
const llava = getStreamingSkillset('llava-next')
let worker: WorkerProc
let direct: DirectImageModels
let detrRunner: SkillsetRunner
let llavaRunner: StreamingRunner
let client: ClientNode

interface Detection { label: string, score: number, box: Record<string, number> }

before(async () => {
  worker = await startWorker({ models: `${DETR},${LLAVA}`, timeoutMs: 120_000 })
  direct = await loadDirectImageModels()
  ;({ detrRunner, llavaRunner } = direct)
  client = new ClientNode({ bootstrap: [worker.multiaddrs[0]!], mdns: false, joinMs: 30_000 })
  await client.start()
})

after(async () => {
  await client?.stop()
  await direct?.stop()
  await stopProc(worker.proc)
})

async function directDetr (raw: Record<string, unknown>): Promise<Record<string, unknown>> {
  const [out] = await detrRunner.run([detr.parseInput(raw)])
  if (out instanceof Error) throw out
  return detr.encodeOutput(out)
}

function sameDetections (got: Detection[], want: Detection[], what: string): void {
  assert.equal(got.length, want.length, `${what}: detection count`)
  got.forEach((d, i) => {
    const w = want[i]!
    assert.equal(d.label, w.label, `${what} #${i} label`)
    assert.ok(Math.abs(d.score - w.score) < 1e-4, `${what} #${i} score ${d.score} vs ${w.score}`)
    for (const k of ['xmin', 'ymin', 'xmax', 'ymax']) assert.ok(Math.abs(d.box[k]! - w.box[k]!) < 0.05, `${what} #${i} ${k} ${d.box[k]} vs ${w.box[k]}`)
  })
}

async function submitDetr (file: string): Promise<{ worker: string, output: { detections: Detection[], width: number, height: number } }> {
  const r = await runProc([CLI, 'submit', 'detr', '--image', file, '--threshold', '0', '--top-k', '10', '--json', '--bootstrap', worker.multiaddrs[0]!, '--no-mdns', '--timeout', '60'], { timeoutMs: 90_000 })
  assert.equal(r.code, 0, r.stderr)
  return JSON.parse(r.stdout) as { worker: string, output: { detections: Detection[], width: number, height: number } }
}

test('detr on a real photograph through the swarm gives the direct run\'s detections', async () => {
  const got = await submitDetr(join(PHOTOS_DIR, 'chelsea.jpg'))
  assert.equal(got.worker, worker.peerId)
  assert.deepEqual([got.output.width, got.output.height], [451, 300])
  const want = await directDetr({ image: photo('chelsea.jpg'), threshold: 0, top_k: 10 })
  assert.equal(got.output.detections.length, 10)
  sameDetections(got.output.detections, want.detections as Detection[], 'chelsea.jpg')
})

test('an image over the inline limit travels by CID, fetched from the submitting process', async () => {
  const dir = await tempDir('ia-big-image-')
  try {
    // Over the 16 MiB input frame too: it can only have travelled by CID.
    const w = 2500; const h = 2400
    const big = await sharp(Buffer.from(noise(w * h * 3, 5)), { raw: { width: w, height: h, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer()
    assert.ok(big.byteLength > 16 * 1024 * 1024, `the image is ${big.byteLength} bytes`)
    const file = join(dir, 'big.png')
    await writeFile(file, big)
    const got = await submitDetr(file)
    assert.deepEqual([got.output.width, got.output.height], [w, h])
    sameDetections(got.output.detections, (await directDetr({ image: new Uint8Array(big), threshold: 0, top_k: 10 })).detections as Detection[], 'big.png')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('random bytes, a truncated PNG and a decompression bomb get clear errors, and the node keeps serving', async () => {
  const cases: Array<[string, Uint8Array, string]> = [
    ['random bytes', noise(5000), 'ERR_INVALID_INPUT'],
    ['a truncated PNG', truncated(greyPng(400, 300, 9), 200), 'ERR_INVALID_INPUT'],
    ['a decompression bomb', pngBomb(100_000), 'ERR_INPUT_TOO_LARGE']
  ]
  for (const [what, image, code] of cases) {
    await assert.rejects(client.submit({ skillset: 'detr', model: DETR, input: { image }, cost: 1, timeoutMs: 30_000 }), (err: Error & { code?: string }) => {
      assert.equal(err.code, code, `${what}: ${err.message}`)
      return true
    }, what)
    const raw = { image, prompt: 'What is this?', max_new_tokens: 4 }
    await assert.rejects(client.submit({ skillset: 'llava-next', model: LLAVA, input: raw, cost: llava.cost(llava.parseInput({ ...raw, image: photo('rocket.webp') })), timeoutMs: 30_000, stream: { onPartial: () => {} } }), (err: Error & { code?: string }) => {
      assert.equal(err.code, code, `llava-next, ${what}: ${err.message}`)
      return true
    }, `llava-next, ${what}`)
  }
  // Still serving: a good image right after.
  const ok = await client.submit({ skillset: 'detr', model: DETR, input: { image: photo('rocket.webp'), threshold: 0, top_k: 3 }, cost: 1, timeoutMs: 30_000 })
  assert.equal((detr.decodeOutput(ok.output) as { detections: unknown[] }).detections.length, 3)
})

test('llava-next through the swarm gives the direct run\'s tokens, streamed in order', async () => {
  const raw = { image: photo('coffee.jpg'), prompt: 'Describe the <image> briefly.', max_new_tokens: 12 }
  const want = await llavaRunner.start(llava.parseInput(raw), { signal: new AbortController().signal, emit: async () => {} }) as { tokens: number[], text: string }
  const r = await runProc([CLI, 'submit', 'llava-next', '--image', join(PHOTOS_DIR, 'coffee.jpg'), '--prompt', raw.prompt, '--max-tokens', '12', '--stream', '--json', '--bootstrap', worker.multiaddrs[0]!, '--no-mdns', '--timeout', '60'], { timeoutMs: 90_000 })
  assert.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  const result = lines.at(-1) as { output: { tokens: number[], text: string }, partials: number, timings: { firstTokenMs: number } }
  const parts = lines.slice(0, -1) as Array<{ seq: number, partial: { text: string } }>
  assert.deepEqual(parts.map((p) => p.seq), parts.map((_, i) => i), 'partials arrive in order')
  assert.ok(parts.length >= 1 && result.partials === parts.length)
  assert.deepEqual(result.output.tokens, want.tokens)
  assert.equal(result.output.text, want.text)
  assert.equal(parts.map((p) => p.partial.text).join(''), result.output.text, 'the streamed text joins into the final text')
  assert.ok(result.timings.firstTokenMs > 0)
})
