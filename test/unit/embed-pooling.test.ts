import { test } from 'node:test'
import assert from 'node:assert/strict'
import { clsPoolRow, l2NormalizeRows, meanPoolRow, pool } from '../../skillsets/embed/pooling.ts'
import { createEmbedSkillset, embedSkillset } from '../../skillsets/embed/index.ts'
import { getSkillset, SKILLSETS } from '../../skillsets/index.ts'
import { AccelerateError } from '../../src/errors.ts'

// [batch 2, seq 3, dims 2]
const hidden = Float32Array.from([1, 2, 3, 4, 100, 100, /* row 1 */ -1, 0, 5, 5, 9, 9])
const mask = BigInt64Array.from([1n, 1n, 0n, 1n, 1n, 1n])

function hasCode (code: string): (err: unknown) => boolean {
  return (err) => err instanceof AccelerateError && err.code === code
}

test('mean pooling averages the unmasked tokens only', () => {
  const out = pool(hidden, mask, 2, 3, 2, 'mean')
  assert.deepEqual(Array.from(out), [2, 3, 13 / 3, 14 / 3].map(Math.fround))
  const one = new Float32Array(4)
  meanPoolRow(hidden, [1, 0, 0, 0, 0, 0], 3, 2, 0, one, 2)
  assert.deepEqual(Array.from(one), [0, 0, 1, 2])
})

test('cls pooling takes the first token, mask or not', () => {
  assert.deepEqual(Array.from(pool(hidden, mask, 2, 3, 2, 'cls')), [1, 2, -1, 0])
  const out = new Float32Array(2)
  clsPoolRow(hidden, 3, 2, 1, out, 0)
  assert.deepEqual(Array.from(out), [-1, 0])
})

test('an all-masked row pools to zeros, not NaN', () => {
  const out = pool(hidden, [0, 0, 0, 1, 1, 1], 2, 3, 2, 'mean')
  assert.deepEqual(Array.from(out.subarray(0, 2)), [0, 0])
})

test('pool checks shapes', () => {
  assert.throws(() => pool(hidden, mask, 2, 3, 3, 'mean'), RangeError)
  assert.throws(() => pool(hidden, [1, 1], 2, 3, 2, 'mean'), RangeError)
})

test('l2 normalisation gives unit rows and leaves zero rows at zero', () => {
  const data = Float32Array.from([3, 4, 0, 0, -2, 0])
  l2NormalizeRows(data, 3, 2)
  assert.deepEqual(Array.from(data), [0.6, 0.8, 0, 0, -1, 0].map(Math.fround))
  assert.throws(() => l2NormalizeRows(data, 2, 2), RangeError)
})

test('encodeOutput / decodeOutput round trip, little-endian bytes', () => {
  const embeddings = Float32Array.from([1.5, -2, 0.25, 1e-7, 3, 4])
  const wire = embedSkillset.encodeOutput({ embeddings, count: 2, dims: 3 })
  assert.ok(wire.embeddings instanceof Uint8Array)
  assert.equal(wire.embeddings.byteLength, 24)
  assert.equal(new DataView(wire.embeddings.buffer, wire.embeddings.byteOffset).getFloat32(0, true), 1.5)
  // A copy at an odd offset, as a decoder may hand it over.
  const shifted = new Uint8Array(25)
  shifted.set(wire.embeddings, 1)
  const back = embedSkillset.decodeOutput({ ...wire, embeddings: shifted.subarray(1) })
  assert.deepEqual(back, { embeddings, count: 2, dims: 3 })
})

test('decodeOutput refuses malformed wire outputs with ERR_PROTOCOL', () => {
  const ok = { embeddings: new Uint8Array(24), count: 2, dims: 3 }
  const bad: unknown[] = [
    null, 'x', [], {},
    { ...ok, embeddings: new Uint8Array(20) },
    { ...ok, embeddings: Array.from(new Uint8Array(24)) },
    { ...ok, count: 0, embeddings: new Uint8Array(0) },
    { ...ok, count: 2.5 },
    { ...ok, dims: -3 },
    { ...ok, count: 257, dims: 1, embeddings: new Uint8Array(257 * 4) },
    { ...ok, extra: true }
  ]
  for (const wire of bad) assert.throws(() => embedSkillset.decodeOutput(wire), hasCode('ERR_PROTOCOL'), JSON.stringify(wire))
  assert.throws(() => embedSkillset.encodeOutput({ embeddings: new Float32Array(5), count: 2, dims: 3 }), hasCode('ERR_PROTOCOL'))
})

test('parseInput fills defaults', () => {
  assert.deepEqual(embedSkillset.parseInput({ texts: ['a'] }), { texts: ['a'], pooling: 'mean', normalize: true })
  assert.deepEqual(embedSkillset.parseInput({ texts: ['a', 'b'], pooling: 'cls', normalize: false }), { texts: ['a', 'b'], pooling: 'cls', normalize: false })
})

test('parseInput: malformed inputs are ERR_INVALID_INPUT with a message that says what is wrong', () => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /invalid embed input/],
    ['hello', /invalid embed input/],
    [{}, /texts/],
    [{ texts: [] }, /at least one text/],
    [{ texts: [''] }, /texts\.0: a text must not be empty/],
    [{ texts: ['a', 3] }, /texts\.1/],
    [{ texts: 'a' }, /texts/],
    [{ texts: ['a'], pooling: 'max' }, /pooling/],
    [{ texts: ['a'], normalize: 'yes' }, /normalize/],
    [{ texts: ['a'], model: 'x' }, /model/]
  ]
  for (const [raw, msg] of cases) {
    assert.throws(() => embedSkillset.parseInput(raw), (err: unknown) => hasCode('ERR_INVALID_INPUT')(err) && msg.test((err as Error).message), JSON.stringify(raw))
  }
})

test('parseInput: inputs over a limit are ERR_INPUT_TOO_LARGE', () => {
  assert.throws(() => embedSkillset.parseInput({ texts: Array(257).fill('a') }), hasCode('ERR_INPUT_TOO_LARGE'))
  assert.equal(embedSkillset.parseInput({ texts: Array(256).fill('a') }).texts.length, 256)
  assert.throws(() => embedSkillset.parseInput({ texts: ['a', 'x'.repeat(8193)] }), (err: unknown) => hasCode('ERR_INPUT_TOO_LARGE')(err) && /texts\[1\] has 8193/.test((err as Error).message))
  assert.equal(embedSkillset.parseInput({ texts: ['x'.repeat(8192)] }).texts[0]?.length, 8192)
  const small = createEmbedSkillset({ maxTexts: 4, maxTextChars: 10, maxTotalChars: 25 })
  assert.throws(() => small.parseInput({ texts: ['0123456789', '0123456789', '0123456789'] }), (err: unknown) => hasCode('ERR_INPUT_TOO_LARGE')(err) && /30 characters in all/.test((err as Error).message))
  assert.throws(() => small.parseInput({ texts: ['a', 'b', 'c', 'd', 'e'] }), hasCode('ERR_INPUT_TOO_LARGE'))
  assert.throws(() => createEmbedSkillset({ maxTexts: 0 }), RangeError)
})

test('batchKey groups by pooling and normalisation; cost is the number of texts', () => {
  const a = embedSkillset.parseInput({ texts: ['a', 'b'] })
  const b = embedSkillset.parseInput({ texts: ['c'], pooling: 'mean', normalize: true })
  const c = embedSkillset.parseInput({ texts: ['c'], pooling: 'cls' })
  const d = embedSkillset.parseInput({ texts: ['c'], normalize: false })
  assert.equal(embedSkillset.batchKey(a), embedSkillset.batchKey(b))
  assert.equal(new Set([a, c, d].map((i) => embedSkillset.batchKey(i))).size, 3)
  assert.equal(embedSkillset.cost(a), 2)
})

test('the registry has embed, lm, detr, llava-next and the stand-ins, frozen, and refuses unknown names', () => {
  assert.equal(getSkillset('embed'), embedSkillset)
  assert.ok(Object.isFrozen(SKILLSETS))
  assert.deepEqual(Object.keys(SKILLSETS), ['embed', 'lm', 'detr', 'llava-next', 'stand-in', 'stand-in-stream'])
  for (const name of ['toString', '__proto__', '']) {
    assert.throws(() => getSkillset(name), hasCode('ERR_SKILLSET_NOT_FOUND'), name)
  }
})
