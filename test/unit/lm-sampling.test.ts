/** lm skillset, pure parts: the seeded generator, the logits processors, stop matching, input validation and cost. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { applyRepetitionPenalty, candidates, JobRandom, nextToken } from '../../skillsets/lm/sampling.ts'
import { StopMatcher } from '../../skillsets/lm/stop.ts'
import { createLmSkillset, lmCost } from '../../skillsets/lm/index.ts'
import { InputTooLargeError, InvalidInputError } from '../../src/errors.ts'

const greedy = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 }

test('JobRandom: a seed gives one stream, another seed another, floats in [0, 1)', () => {
  const a = new JobRandom(42); const b = new JobRandom(42); const c = new JobRandom(43)
  const xs = Array.from({ length: 100 }, () => a.nextFloat())
  assert.deepEqual(xs, Array.from({ length: 100 }, () => b.nextFloat()))
  assert.notDeepEqual(xs, Array.from({ length: 100 }, () => c.nextFloat()))
  assert.ok(xs.every((x) => x >= 0 && x < 1))
  assert.ok(Math.abs(xs.reduce((s, x) => s + x, 0) / 100 - 0.5) < 0.15)
})

test('repetition penalty divides positive and multiplies negative scores of seen ids, once each', () => {
  const s = Float64Array.from([2, -2, 1])
  applyRepetitionPenalty(s, [0, 1, 0], 2)
  assert.deepEqual([...s], [1, -4, 1])
})

test('greedy takes the highest score (lowest id on ties); the penalty applies in greedy mode too', () => {
  assert.equal(nextToken([1, 3, 3, 2], [], greedy, new JobRandom(0)), 1)
  assert.equal(nextToken([1, 3, 2.9, 2], [1], { ...greedy, repetitionPenalty: 1.5 }, new JobRandom(0)), 2)
})

test('top_k keeps ties with the k-th; top_p keeps the smallest prefix reaching p; temperature sharpens', () => {
  const s = Float64Array.from([0, 5, 5, 1, 4])
  assert.deepEqual(candidates(s, { temperature: 1, topK: 1, topP: 1, repetitionPenalty: 1 }).ids, [1, 2])
  const p = candidates(Float64Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]), { temperature: 1, topK: 0, topP: 0.75, repetitionPenalty: 1 })
  assert.deepEqual(p.ids, [0, 1])
  assert.ok(Math.abs((p.probs[0] as number) - 0.625) < 1e-12)
  const cold = candidates(Float64Array.from([1, 0]), { temperature: 0.1, topK: 0, topP: 1, repetitionPenalty: 1 })
  assert.ok((cold.probs[0] as number) > 0.9999)
})

test('sampling follows the distribution and is reproducible per seed', () => {
  const logits = [Math.log(0.7), Math.log(0.2), Math.log(0.1)]
  const p = { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 }
  const rng = new JobRandom(9)
  const counts = [0, 0, 0]
  for (let i = 0; i < 5000; i++) counts[nextToken(logits, [], p, rng)]!++
  assert.ok(Math.abs(counts[0]! / 5000 - 0.7) < 0.03, String(counts))
  const again = new JobRandom(9)
  const first = Array.from({ length: 20 }, () => nextToken(logits, [], p, again))
  const third = new JobRandom(9)
  assert.deepEqual(Array.from({ length: 20 }, () => nextToken(logits, [], p, third)), first)
})

/** A fake decoder over UTF-8 bytes: one id per byte. */
const bytesDecode = (ids: number[]): string => new TextDecoder().decode(Uint8Array.from(ids))
const ids = (s: string): number[] => [...new TextEncoder().encode(s)]

function run (stops: string[], text: string): { deltas: string[], stopped: boolean, flushed: string } {
  const m = new StopMatcher(stops, bytesDecode)
  const deltas: string[] = []
  let stopped = false
  for (const id of ids(text)) {
    const s = m.push(id)
    deltas.push(s.delta)
    if (s.stopped) { stopped = true; break }
  }
  return { deltas, stopped, flushed: m.flush() }
}

test('stop: the text before a stop sequence is released, the stop sequence and what follows are not', () => {
  const r = run(['END'], 'abc EN dEND more')
  assert.equal(r.stopped, true)
  assert.equal(r.deltas.join('') + r.flushed, 'abc EN d')
})

test('stop: a possible start of a stop sequence is held back until it cannot be one', () => {
  const m = new StopMatcher(['\n\n'], bytesDecode)
  assert.equal(m.push(ids('a')[0]!).delta, 'a')
  assert.equal(m.push(10).delta, '')
  assert.equal(m.push(ids('b')[0]!).delta, '\nb')
})

test('stop: a character split across tokens is released whole; deltas join into the text', () => {
  const text = 'é🙂 done'
  const r = run([], text)
  assert.ok(r.deltas.every((d) => !d.includes('\ufffd')))
  assert.equal(r.deltas.join('') + r.flushed, text)
  assert.equal(r.stopped, false)
  const s = run(['🙂'], text)
  assert.equal(s.deltas.join('') + s.flushed, 'é')
})

const lm = createLmSkillset()

test('input: prompt xor messages, defaults, bounds, unknown keys refused', () => {
  const p = lm.parseInput({ prompt: 'hi' })
  assert.deepEqual(p, { prompt: 'hi', maxNewTokens: 128, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0, stop: [] })
  assert.equal(lm.parseInput({ messages: [{ role: 'user', content: 'x' }], seed: 2 ** 32 - 1 }).seed, 2 ** 32 - 1)
  for (const bad of [
    {}, { prompt: 'a', messages: [{ role: 'user', content: 'b' }] }, { prompt: 'a', extra: 1 }, { prompt: '' },
    { prompt: 'a', max_new_tokens: 0 }, { prompt: 'a', max_new_tokens: 1e6 }, { prompt: 'a', temperature: -1 },
    { prompt: 'a', top_p: 0 }, { prompt: 'a', top_p: 1.5 }, { prompt: 'a', top_k: 1.5 }, { prompt: 'a', seed: -1 },
    { prompt: 'a', seed: 2 ** 32 }, { prompt: 'a', repetition_penalty: 0 }, { prompt: 'a', stop: ['a', 'b', 'c', 'd', 'e'] },
    { prompt: 'a', stop: [''] }, { prompt: 'a', stop: ['x'.repeat(65)] }, { messages: [{ role: 'robot', content: 'x' }] },
    { messages: [{ role: 'user', content: 'x', name: 'n' }] }, { messages: [] }
  ]) assert.throws(() => lm.parseInput(bad), InvalidInputError, JSON.stringify(bad))
  assert.throws(() => lm.parseInput({ prompt: 'x'.repeat(16385) }), InputTooLargeError)
})

test('cost: UTF-8 bytes of the prompt (+ the chat template bound) + max_new_tokens, without a tokenizer', () => {
  assert.equal(lmCost(lm.parseInput({ prompt: 'hé', max_new_tokens: 10 })), 3 + 10)
  assert.equal(lmCost(lm.parseInput({ messages: [{ role: 'user', content: 'hi' }], max_new_tokens: 5 })), 4 + 2 + 8 + 8 + 5)
  assert.equal(lm.cost(lm.parseInput({ prompt: 'abc' })), 131)
})

test('codec: output and partial round-trip; malformed wire values are refused', () => {
  const out = { text: 'a', tokens: [1, 2], finishReason: 'length' as const }
  assert.deepEqual(lm.decodeOutput(lm.encodeOutput(out)), out)
  assert.deepEqual(lm.decodePartial(lm.encodePartial({ tokens: [3], text: 'b' })), { tokens: [3], text: 'b' })
  assert.throws(() => lm.decodeOutput({ text: 'a', tokens: [-1], finishReason: 'stop' }))
  assert.throws(() => lm.decodeOutput({ text: 'a', tokens: [], finishReason: 'eos' }))
})
