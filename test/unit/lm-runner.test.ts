/**
 * The lm runner on a generated tiny decoder (demo/lm-tiny-random's shape and
 * seed): cache against recompute, canonical padding bit for bit, seeds alone / beside 7 others / in a fresh
 * runner, stop and length, emit order and text deltas, abort, chat template.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateLmModel } from '../../src/models/generate/index.ts'
import type { ExecutionPlan, JobContext, ModelLocation } from '../../src/interfaces/index.ts'
import { createLmSkillset } from '../../skillsets/lm/index.ts'
import type { LmOutput, LmPartial, LmRunner } from '../../skillsets/lm/index.ts'
import { loadLm } from '../../skillsets/lm/model.ts'
import type { LoadedLm } from '../../skillsets/lm/model.ts'
import { argmax } from '../../skillsets/lm/sampling.ts'
import { canonicalPast, EXACT_PAD_MULTIPLE } from '../../skillsets/lm/constants.ts'

const ID = 'demo/lm-tiny-random'
const plan: ExecutionPlan = { modelId: ID, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] }
const lm = createLmSkillset()
let root: string
let model: ModelLocation
let runner: LmRunner
let bare: LoadedLm

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ipfs-accelerate-lm-runner-'))
  await generateLmModel({ size: 'tiny', seed: 7, outDir: join(root, ID) })
  model = { id: ID, localModelPath: root }
  runner = await lm.loadStreaming(model, plan)
  bare = await loadLm(model, plan)
})

after(async () => {
  await runner?.dispose()
  await bare?.dispose()
  await rm(root, { recursive: true, force: true })
})

function collect (signal = new AbortController().signal): { ctx: JobContext<LmPartial>, partials: LmPartial[] } {
  const partials: LmPartial[] = []
  return { partials, ctx: { signal, emit: async (p) => { partials.push(p) } } }
}

async function gen (raw: unknown, r: LmRunner = runner): Promise<{ out: LmOutput, partials: LmPartial[] }> {
  const { ctx, partials } = collect()
  const out = await r.start(lm.parseInput(raw), ctx)
  return { out, partials }
}

test('greedy with the KV cache gives the tokens of recomputing the whole sequence at every step', async () => {
  for (const prompt of ['Hello there!', 'Write a poem about the sea.', '你好 🙂']) {
    const { out } = await gen({ prompt, max_new_tokens: 24 })
    const seq = bare.encode({ prompt })
    const want: number[] = []
    for (let i = 0; i < out.tokens.length; i++) {
      const id = argmax((await bare.prefill(seq)).logits)
      want.push(id)
      seq.push(id)
      if (bare.eos.has(id)) break
    }
    assert.deepEqual(out.tokens, want, prompt)
  }
})

test('a decode row padded to its canonical length gives the same logit bits alone and in a batch of mixed lengths', async () => {
  const prompts = ['Hi', 'Once upon a time', 'Something else entirely, longer.', 'x y z', '你好 🙂 and a much longer prompt than the others here, on purpose']
  const rows = await Promise.all(prompts.map(async (prompt) => {
    const ids = bare.encode({ prompt })
    return { kv: (await bare.prefill(ids)).kv, n: ids.length, token: 3 }
  }))
  assert.ok(new Set(rows.map((r) => r.n % EXACT_PAD_MULTIPLE)).size > 2, 'the lengths differ modulo the pad multiple')
  const longest = canonicalPast(Math.max(...rows.map((r) => r.n)))
  const batch = await bare.decode1(rows, longest)
  const wider = await bare.decode1(rows, longest + EXACT_PAD_MULTIPLE * 3)
  for (const [i, row] of rows.entries()) {
    const [alone] = await bare.decode1([row], canonicalPast(row.n))
    assert.deepEqual(batch[i]?.logits, alone?.logits, `row ${i} (n=${row.n}) in the batch`)
    assert.deepEqual(wider[i]?.logits, alone?.logits, `row ${i} (n=${row.n}) in a wider batch`)
  }
})

const sampled = { prompt: 'Once upon a time', max_new_tokens: 40, temperature: 1.1, top_k: 50, top_p: 0.95, repetition_penalty: 1.1, seed: 1234 }

test('a seed gives the same text alone, beside 7 jobs of other prompt lengths (sharing batches), and in a fresh runner', async () => {
  const alone = (await gen(sampled)).out
  const before = { ...runner.stats }
  const others = [
    { ...sampled, prompt: 'Once', seed: 1 }, { ...sampled, prompt: 'Once upon a time, far away, there', seed: 2 },
    { ...sampled, prompt: 'A long time ago in a galaxy far, far away, a story began with one word', seed: 3 },
    { prompt: 'A', max_new_tokens: 30, temperature: 0.7, seed: 5 }, { prompt: 'Something else entirely, longer.', max_new_tokens: 45 },
    { messages: [{ role: 'user' as const, content: 'hi' }], max_new_tokens: 20, temperature: 1, seed: 6 }, { prompt: 'x y z', max_new_tokens: 10, temperature: 2, seed: 7 }
  ]
  const lengths = [sampled, ...others].map((o) => bare.encode(o).length)
  assert.equal(new Set(lengths).size, lengths.length, `every prompt has its own length (${lengths.join(', ')})`)
  const all = await Promise.all([gen(sampled), ...others.map(async (o) => await gen(o))])
  assert.deepEqual(all[0]?.out, alone)
  const prefills = runner.stats.prefills - before.prefills
  const rows = runner.stats.rows - before.rows - prefills
  const runs = runner.stats.runs - before.runs - prefills
  assert.ok(rows >= 3 * runs, `decode steps were shared (${rows} rows in ${runs} runs)`)
  const fresh = await lm.loadStreaming(model, plan)
  try {
    assert.deepEqual((await gen(sampled, fresh)).out, alone)
  } finally { await fresh.dispose() }
  assert.notDeepEqual((await gen({ ...sampled, seed: 4321 })).out.tokens, alone.tokens)
})

test('max_new_tokens ends with "length"; a stop sequence with "stop", its text excluded; eos with "stop"', async () => {
  // A prompt whose greedy continuation runs 30 tokens without an eos id.
  let long: LmOutput | undefined
  let prompt = ''
  for (const p of ['The', 'Hello', 'A story', 'Write', 'Tell me', 'Once', 'one two three']) {
    const o = (await gen({ prompt: p, max_new_tokens: 30 })).out
    if (o.finishReason === 'length' && o.text.length > 8) { long = o; prompt = p; break }
  }
  assert.ok(long !== undefined, 'some prompt runs to its length')
  assert.equal(long.tokens.length, 30)
  const cut = long.text.slice(3, 6)
  assert.ok(cut.length > 0)
  const stopped = (await gen({ prompt, max_new_tokens: 30, stop: ['zzzz', cut] })).out
  assert.equal(stopped.finishReason, 'stop')
  assert.equal(stopped.text, long.text.slice(0, long.text.indexOf(cut)))
  // Find a seed whose sampling draws an end-of-sequence id early.
  let eosOut: LmOutput | undefined
  for (let seed = 0; seed < 200 && eosOut === undefined; seed++) {
    const o = (await gen({ prompt: 'a', max_new_tokens: 8, temperature: 3, seed })).out
    if (o.finishReason === 'stop') eosOut = o
  }
  assert.ok(eosOut !== undefined, 'some seed ends at an eos id')
  assert.ok(bare.eos.has(eosOut.tokens.at(-1) as number))
})

test('one partial per step, in order; text deltas join into the final text exactly', async () => {
  const { out, partials } = await gen({ prompt: 'emoji 🙂🚀 and 你好', max_new_tokens: 60, temperature: 1.5, seed: 77 })
  assert.deepEqual(partials.flatMap((p) => p.tokens), out.tokens)
  assert.equal(partials.map((p) => p.text).join(''), out.text)
})

test('a slow reader pauses its own job only; abort stops a job within one step', async () => {
  let release: (() => void) | undefined
  const slowParts: LmPartial[] = []
  const slow = runner.start(lm.parseInput({ prompt: 'slow', max_new_tokens: 5, temperature: 0.5, seed: 1 }), {
    signal: new AbortController().signal,
    emit: async (p) => { slowParts.push(p); if (slowParts.length === 2) await new Promise<void>((resolve) => { release = resolve }) }
  })
  const fast = await gen({ prompt: 'fast', max_new_tokens: 20, temperature: 1, seed: 3 })
  assert.ok(fast.out.tokens.length > 2)
  assert.equal(slowParts.length, 2, 'the slow job waited for its reader')
  release?.()
  assert.ok((await slow).tokens.length > 2)

  const ac = new AbortController()
  let seen = 0
  const job = runner.start(lm.parseInput({ prompt: 'abort me', max_new_tokens: 200, temperature: 0.3, seed: 2 }), {
    signal: ac.signal,
    emit: async () => { seen++; if (seen === 3) ac.abort(new Error('client went away')) }
  })
  await assert.rejects(job, /client went away/)
  assert.ok(seen <= 4, `${seen} partials after abort at 3`)
})

test('messages go through the chat template; a prompt is used as is', async () => {
  const messages = [{ role: 'user' as const, content: 'Hi 👋' }]
  const chat = (await gen({ messages, max_new_tokens: 12 })).out
  const asPrompt = (await gen({ prompt: '<|im_start|>user\nHi 👋<|im_end|>\n<|im_start|>assistant\n', max_new_tokens: 12 })).out
  assert.deepEqual(chat.tokens, asPrompt.tokens)
  assert.notDeepEqual((await gen({ prompt: 'Hi 👋', max_new_tokens: 12 })).out.tokens, chat.tokens)
})
