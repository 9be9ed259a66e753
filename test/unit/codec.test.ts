import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encode } from 'cborg'
import { decodeMessage, encodeMessage } from '../../src/p2p/wire/codec.ts'
import { advertSchema, assignSchema, bidSchema, linkFrameSchema, offerSchema, resultSchema } from '../../src/p2p/wire/messages.ts'
import { MAX_GOSSIP_BYTES, MAX_FRAME_BYTES } from '../../src/p2p/wire/protocol.ts'

const offer = { v: 1, t: 'offer', jobId: 'abcdefgh1234', traceId: 'trace1', skillset: 'embed', model: 'demo/tiny-random', cost: 2, inputBytes: 40, ttlMs: 1000, round: 0 }

test('an offer survives the round trip', () => {
  const back = decodeMessage(encodeMessage(offer, MAX_GOSSIP_BYTES), offerSchema, MAX_GOSSIP_BYTES)
  assert.deepEqual(back, offer)
})

test('float32 embeddings travel as bytes, bit-exact', () => {
  const floats = new Float32Array([0.1, -2.5, Math.PI, 1e-30, -0])
  const bytes = new Uint8Array(floats.buffer.slice(0))
  const msg = { v: 1, t: 'result', jobId: 'abcdefgh1234', model: 'demo/tiny-random', output: { embeddings: bytes, count: 1, dims: 5 }, timings: { queueMs: 0, runMs: 1, batchSize: 1 }, provenance: { modelCid: 'bafy', provider: 'cpu', dtype: 'fp32', inputHash: new Uint8Array(32), signature: new Uint8Array(64) } }
  const enc = encodeMessage(msg, MAX_FRAME_BYTES)
  // 5 floats cost their 20 bytes (and a length byte), not number text
  const empty = encodeMessage({ ...msg, output: { ...msg.output, embeddings: new Uint8Array(0) } }, MAX_FRAME_BYTES)
  assert.ok(enc.byteLength - empty.byteLength <= 21, `the 5 floats took ${enc.byteLength - empty.byteLength} bytes`)
  const back = decodeMessage(enc, resultSchema, MAX_FRAME_BYTES)
  const out = back.output.embeddings as Uint8Array
  assert.ok(out instanceof Uint8Array)
  const f = new Float32Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength))
  assert.deepEqual([...f], [...floats])
})

test('a wrong version, unknown key or bad field is rejected with the field named', () => {
  assert.throws(() => decodeMessage(encode({ ...offer, v: 2 }), offerSchema, MAX_GOSSIP_BYTES), { code: 'ERR_PROTOCOL', message: /v:/ })
  assert.throws(() => decodeMessage(encode({ ...offer, extra: 1 }), offerSchema, MAX_GOSSIP_BYTES), { code: 'ERR_PROTOCOL' })
  assert.throws(() => decodeMessage(encode({ ...offer, jobId: 'x' }), offerSchema, MAX_GOSSIP_BYTES), { code: 'ERR_PROTOCOL', message: /jobId/ })
  assert.throws(() => decodeMessage(encode({ ...offer, skillset: 'nope' }), offerSchema, MAX_GOSSIP_BYTES), { code: 'ERR_PROTOCOL', message: /skillset/ })
  assert.throws(() => decodeMessage(encode({ v: 1, t: 'bid', jobId: 'abcdefgh1234' }), bidSchema, MAX_GOSSIP_BYTES), { code: 'ERR_PROTOCOL' })
})

test('garbage bytes are a protocol error, not a crash', () => {
  assert.throws(() => decodeMessage(new Uint8Array([0xff, 0x00, 0x13]), offerSchema, MAX_GOSSIP_BYTES), { code: 'ERR_PROTOCOL' })
  assert.throws(() => decodeMessage(new Uint8Array(0), offerSchema, MAX_GOSSIP_BYTES), { code: 'ERR_PROTOCOL' })
})

test('size limits hold on both sides', () => {
  const big = { v: 1, t: 'assign', jobId: 'abcdefgh1234', traceId: 't1', skillset: 'embed', cost: 1, inputBytes: 2010, input: { texts: ['x'.repeat(2000)] }, leaseMs: 5000, heartbeatMs: 1000 }
  assert.throws(() => encodeMessage(big, 1000), { code: 'ERR_MESSAGE_TOO_LARGE' })
  const bytes = encodeMessage(big, 10_000)
  assert.throws(() => decodeMessage(bytes, assignSchema, 1000), { code: 'ERR_MESSAGE_TOO_LARGE' })
  assert.equal(decodeMessage(bytes, assignSchema, 10_000).jobId, 'abcdefgh1234')
})

test('the link frame union tells results from errors', () => {
  const err = { v: 1, t: 'error', jobId: 'abcdefgh1234', code: 'ERR_INVALID_INPUT', message: 'bad' }
  assert.equal(decodeMessage(encode(err), linkFrameSchema, 1000).t, 'error')
  assert.throws(() => decodeMessage(encode({ ...err, code: 'nope' }), linkFrameSchema, 1000), { code: 'ERR_PROTOCOL' })
})

test('no wall-clock time on the wire: an offer with an absolute deadline is refused', () => {
  const { ttlMs, round, ...rest } = offer
  void ttlMs; void round
  assert.throws(() => decodeMessage(encode({ ...rest, deadline: Date.now() + 1000, sentAt: Date.now() }), offerSchema, MAX_GOSSIP_BYTES), { code: 'ERR_PROTOCOL' })
})

test('adverts validate their hardware summary and addresses', () => {
  const advert = {
    v: 1, t: 'advert', bootId: 'boot-1234', seq: 0, ttlMs: 15000, leaving: false,
    hardware: { cpu: { model: 'x', physicalCores: 1, logicalCores: 2, flags: ['avx2'] }, memoryTotalMB: 1000, gpus: [], providers: ['cpu'] },
    models: [{ id: 'demo/tiny-random', skillset: 'embed', provider: 'cpu', dtype: 'fp32', device: 'cpu', loaded: true }],
    held: [{ id: 'demo/tiny-random', cid: 'bafyfake' }], queueDepth: 0, addrs: ['/ip4/127.0.0.1/tcp/1/p2p/12D3KooWAvyrjuWTVJoDJ3ep4YBXhnHAAGGKRU4fQvoff425THaV']
  }
  assert.deepEqual(decodeMessage(encode(advert), advertSchema, MAX_GOSSIP_BYTES), advert)
  assert.throws(() => decodeMessage(encode({ ...advert, ttlMs: 5 }), advertSchema, MAX_GOSSIP_BYTES), { code: 'ERR_PROTOCOL' })
})
