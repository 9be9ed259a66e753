/**
 * The llava-next skillset on the generated tiny model (demo/llava-next-random's
 * generator): input validation, image tokens against the hand-worked anyres
 * counts, greedy determinism, the same tokens alone and beside others
 * (jobs that arrive together share one vision-encoder run, then lm's exact
 * step-level batching), partials that join into the text, and bad images
 * that reject their own job while the runner keeps serving.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ExecutionPlan, JobContext } from '../../src/interfaces/index.ts'
import { errorCode } from '../../src/errors.ts'
import { generateLlavaModel, LLAVA_SHAPES, llavaSpecialIds } from '../../src/models/generate/index.ts'
import type { LlavaNextInput, LlavaNextRunner } from '../../skillsets/llava-next/index.ts'
import { createLlavaNextSkillset } from '../../skillsets/llava-next/index.ts'
import { llavaNextGeometry } from '../../skillsets/llava-next/model.ts'
import type { LmOutput, LmPartial } from '../../skillsets/lm/index.ts'
import { lmCost } from '../../skillsets/lm/index.ts'
import { greyPng, noise, photo, pngBomb, truncated } from '../helpers/images.ts'

const ID = 'demo/llava-next-tiny'
const plan: ExecutionPlan = { modelId: ID, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] }
/** The tiny model's worst case: 16 base features + a 2 × 2 grid of 4 × 4 kept whole with its newlines, 8 · 9. */
const llava = createLlavaNextSkillset({ maxImageTokens: 16 + 8 * 9 })
const IMAGE_ID = llavaSpecialIds(LLAVA_SHAPES.tiny).image
let root: string
let runner: LlavaNextRunner

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ipfs-accelerate-llava-'))
  await generateLlavaModel({ size: 'tiny', seed: 42, outDir: join(root, ID) })
  runner = await llava.loadStreaming({ id: ID, localModelPath: root }, plan)
})

after(async () => {
  await runner?.dispose()
  await rm(root, { recursive: true, force: true })
})

function collect (): { ctx: JobContext<LmPartial>, partials: LmPartial[] } {
  const partials: LmPartial[] = []
  return { partials, ctx: { signal: new AbortController().signal, emit: async (p) => { partials.push(p) } } }
}

async function gen (input: LlavaNextInput): Promise<{ out: LmOutput, partials: LmPartial[] }> {
  const { ctx, partials } = collect()
  return { out: await runner.start(input, ctx), partials }
}

const chelsea = (): LlavaNextInput => llava.parseInput({ image: photo('chelsea.jpg'), prompt: 'Describe the cat.', max_new_tokens: 12 })

test('input: an image and lm\'s fields; the image goes first unless <image> places it; one image only', () => {
  const bytes = photo('coffee.jpg')
  const a = llava.parseInput({ image: bytes, prompt: 'What is this?' })
  assert.equal(a.prompt, '<image>\nWhat is this?')
  assert.equal(a.maxNewTokens, 128)
  assert.equal(llava.parseInput({ image: bytes, prompt: 'Look: <image> what?' }).prompt, 'Look: <image> what?')
  const m = llava.parseInput({ image: bytes, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], top_k: 5, seed: 3 })
  assert.deepEqual(m.messages, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: '<image>\nHi' }])
  assert.deepEqual([m.topK, m.seed], [5, 3])
  assert.equal(llava.cost(a), lmCost(a) + 88)
  assert.deepEqual(llava.images.list(a), [{ bytes }])
  assert.deepEqual(llava.images.withBytes(llava.parseInput({ image: { cid: 'bafkqaaa', size: 10 }, prompt: 'x' }), [bytes]).image, { bytes })
  const invalid: Array<[unknown, RegExp]> = [
    [{ prompt: 'no image' }, /image: required/],
    [{ image: bytes, prompt: 'x', messages: [{ role: 'user', content: 'y' }] }, /exactly one of prompt and messages/],
    [{ image: bytes, prompt: 'x', colour: 'red' }, /colour|Unrecognized/],
    [{ image: noise(64), prompt: 'x' }, /not a PNG, JPEG or WebP/],
    [{ image: { cid: 'not-a-cid', size: 3 }, prompt: 'x' }, /is not a CID/],
    [{ image: bytes, prompt: '<image> and <image>' }, /2 <image> tags/],
    [{ image: bytes, messages: [{ role: 'system', content: 'x' }] }, /no user message/],
    [{ image: bytes, prompt: 'x', max_new_tokens: 0 }, /max_new_tokens/]
  ]
  for (const [raw, message] of invalid) {
    assert.throws(() => llava.parseInput(raw), (err: unknown) => errorCode(err) === 'ERR_INVALID_INPUT' && message.test((err as Error).message), JSON.stringify(raw, (_, v: unknown) => v instanceof Uint8Array ? `<${v.length} bytes>` : v))
  }
  const small = createLlavaNextSkillset({ images: { maxBytes: 1000, maxPixels: 1e6, maxSide: 1000 } })
  assert.throws(() => small.parseInput({ image: bytes, prompt: 'x' }), (err: unknown) => errorCode(err) === 'ERR_INPUT_TOO_LARGE')
})

test('image tokens: the prompt holds one image token per packed feature, as many as the hand-worked count', async () => {
  // chelsea.jpg is 451×300: 64×64 keeps the most (64·42 pixels); 2×2 grid of 4×4; new height int(300·8/451) = 5, padding 1: 6 rows of 8 + 1.
  const p = await runner.prompts.prepare(chelsea(), new AbortController().signal)
  assert.equal(p.ids.filter((id) => id === IMAGE_ID).length, 16 + 6 * 9)
  assert.equal(p.state.layout.tiles, 5)
  // A 30×90 grey image: 96×32 keeps all 2700 pixels; 3×1; nothing cut: 12 rows of 4 + 1.
  const tall = await runner.prompts.prepare(llava.parseInput({ image: greyPng(30, 90, 128), prompt: 'x' }), new AbortController().signal)
  assert.equal(tall.ids.filter((id) => id === IMAGE_ID).length, 16 + 12 * 5)
  assert.equal(tall.state.pixels.length, 4 * 3 * 32 * 32)
  // The image tokens are one run, where <image> was (the prompt's first token).
  assert.equal(tall.ids.indexOf(IMAGE_ID), tall.state.at)
  assert.equal(tall.ids.lastIndexOf(IMAGE_ID), tall.state.at + 75)
  assert.equal(tall.cost, tall.ids.length + 128)
})

test('greedy generation is deterministic, and partials join into the final text', async () => {
  const a = await gen(chelsea())
  const b = await gen(chelsea())
  assert.equal(a.out.tokens.length, 12)
  assert.equal(a.out.finishReason, 'length')
  assert.deepEqual(a.out.tokens, b.out.tokens)
  assert.equal(a.partials.map((p) => p.text).join(''), a.out.text)
  assert.deepEqual(a.partials.flatMap((p) => p.tokens), a.out.tokens)
  // The image matters: another photo, the same prompt, other tokens.
  const coffee = await gen(llava.parseInput({ image: photo('coffee.jpg'), prompt: 'Describe the cat.', max_new_tokens: 12 }))
  assert.notDeepEqual(coffee.out.tokens, a.out.tokens)
})

test('four jobs that arrive together share one vision-encoder run, and each gives the tokens it gives alone', async () => {
  const inputs = [
    chelsea(),
    llava.parseInput({ image: photo('coffee.jpg'), prompt: 'What is in the cup?', max_new_tokens: 9 }),
    llava.parseInput({ image: photo('rocket.webp'), messages: [{ role: 'user', content: 'Where is it going?' }], max_new_tokens: 15 }),
    llava.parseInput({ image: greyPng(30, 90, 200), prompt: 'Grey?', max_new_tokens: 6, temperature: 0.9, top_k: 20, seed: 7 })
  ]
  const alone: number[][] = []
  for (const input of inputs) alone.push((await gen(input)).out.tokens)
  const before = { ...runner.prompts.stats }
  const beforeRuns = { ...runner.stats }
  const together = await Promise.all(inputs.map(async (input) => (await gen(input)).out.tokens))
  assert.deepEqual(together, alone)
  assert.equal(runner.prompts.stats.visionRuns - before.visionRuns, 1, 'one vision run for the four jobs')
  assert.equal(runner.prompts.stats.tiles - before.tiles, 5 + 5 + 5 + 4)
  // Decode steps were shared: fewer decoder runs than rows.
  const runs = runner.stats.runs - beforeRuns.runs
  const rows = runner.stats.rows - beforeRuns.rows
  assert.ok(runs < rows, `${runs} runs for ${rows} rows`)
})

test('a broken image rejects its own job (invalid or too large) and the runner serves the next', async () => {
  const expected = (await gen(chelsea())).out.tokens
  const base = chelsea()
  const bad: Array<[Uint8Array, string]> = [
    [noise(500), 'ERR_INVALID_INPUT'],
    [truncated(photo('coffee.jpg')), 'ERR_INVALID_INPUT'],
    [pngBomb(), 'ERR_INPUT_TOO_LARGE']
  ]
  for (const [bytes, code] of bad) {
    await assert.rejects(gen({ ...base, image: { bytes } }), (err: unknown) => errorCode(err) === code, code)
  }
  // Beside a failing job, a good one still runs, with its own tokens.
  const [broken, good] = await Promise.allSettled([gen({ ...base, image: { bytes: truncated(photo('chelsea.jpg')) } }), gen(chelsea())])
  assert.equal(broken.status, 'rejected')
  assert.equal(good.status === 'fulfilled' ? good.value.out.tokens.join() : 'rejected', expected.join())
})

test('model configs: LLaVA-OneVision, other feature strategies and mismatched tile sizes are refused at load, with why', () => {
  const config = { model_type: 'llava_next', image_token_index: 512, image_grid_pinpoints: [[32, 64]], vision_config: { image_size: 32, patch_size: 8 }, text_config: {} }
  const pre = { crop_size: { height: 32, width: 32 }, size: { shortest_edge: 32 }, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] }
  assert.deepEqual(llavaNextGeometry(config, pre, 'x').geometry, { gridPinpoints: [[32, 64]], tileSize: 32, patchSize: 8 })
  const refused: Array<[unknown, unknown, RegExp]> = [
    [{ ...config, model_type: 'llava_onevision' }, pre, /LLaVA-OneVision.*not implemented/],
    [{ ...config, vision_feature_select_strategy: 'full' }, pre, /vision_feature_select_strategy "full"/],
    [config, { ...pre, size: { shortest_edge: 48 } }, /tiles must be square and one size/],
    [{ ...config, image_grid_pinpoints: [[40, 64]] }, pre, /multiple of the 32-pixel tile/],
    [{ ...config, image_token_index: undefined }, pre, /image_token_index/]
  ]
  for (const [c, p, message] of refused) {
    assert.throws(() => llavaNextGeometry(c, p, 'x'), (err: unknown) => errorCode(err) === 'ERR_MODEL_LOAD' && message.test((err as Error).message), String(message))
  }
})
