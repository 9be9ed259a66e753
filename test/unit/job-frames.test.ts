/**
 * The job link's framing (src/p2p/jobs/frames.ts) on its own: frames survive any
 * split of the byte stream; a body over its job's limit is skipped without
 * being buffered, only that job hears of it, and the frame after it reads
 * correctly; a body that is not CBOR still reaches frame() (decoding is the
 * link's job); a header the reader cannot parse ends the link.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decode } from 'cborg'
import { Uint8ArrayList } from 'uint8arraylist'
import { ProtocolError } from '../../src/errors.ts'
import { encodeFrame, FrameReader } from '../../src/p2p/jobs/frames.ts'
import { MAX_FRAME_BYTES } from '../../src/p2p/wire/protocol.ts'
import { rawFrame } from '../helpers/p2p-nodes.ts'

interface Sunk { frames: Array<{ jobId: string, body: Uint8Array }>, oversize: Array<{ jobId: string, bytes: number, limit: number }>, reader: FrameReader }

function sink (limitFor: (jobId: string) => number = () => 4096): Sunk {
  const frames: Sunk['frames'] = []
  const oversize: Sunk['oversize'] = []
  const reader = new FrameReader({
    limitFor,
    frame: (jobId, body) => { frames.push({ jobId, body: body.slice() }) },
    oversize: (jobId, bytes, limit) => { oversize.push({ jobId, bytes, limit }) }
  })
  return { frames, oversize, reader }
}

const msgs = [
  { jobId: 'aaaaaaaa', t: 'cancel', v: 1 },
  { jobId: 'job_with-dash_0123456789', t: 'query', v: 1, note: 'x'.repeat(300) },
  { jobId: 'b'.repeat(64), t: 'bid', v: 1, n: [1, 2, 3], bytes: new Uint8Array([0, 255, 7]) },
  { jobId: 'cccccccc', t: 'progress', v: 1, big: 'y'.repeat(2000) }
]
const wire = new Uint8ArrayList(...msgs.map((m) => encodeFrame(m))).subarray()

function assertDecoded (frames: Sunk['frames']): void {
  assert.deepEqual(frames.map((f) => f.jobId), msgs.map((m) => m.jobId))
  assert.deepEqual(frames.map((f) => decode(f.body)), msgs)
}

test('frames round trip fed one byte at a time', () => {
  const s = sink()
  for (const b of wire) s.reader.push(Uint8Array.of(b))
  assertDecoded(s.frames)
  assert.equal(s.reader.buffered, 0)
  assert.equal(s.oversize.length, 0)
})

test('frames round trip fed in big chunks, in odd splits and as one Uint8ArrayList', () => {
  const whole = sink()
  whole.reader.push(new Uint8ArrayList(...msgs.map((m) => encodeFrame(m))))
  assertDecoded(whole.frames)
  for (const size of [3, 7, 100, 1000, wire.byteLength - 1]) {
    const s = sink()
    for (let i = 0; i < wire.byteLength; i += size) s.reader.push(wire.subarray(i, i + size))
    assertDecoded(s.frames)
    assert.equal(s.reader.buffered, 0, `chunks of ${size}`)
  }
})

test('a part frame is held until the rest arrives', () => {
  const s = sink()
  const one = encodeFrame(msgs[1]!).subarray()
  s.reader.push(one.subarray(0, one.byteLength - 1))
  assert.equal(s.frames.length, 0)
  assert.ok(s.reader.buffered > 0)
  s.reader.push(one.subarray(one.byteLength - 1))
  assert.equal(s.frames.length, 1)
  assert.deepEqual(decode(s.frames[0]!.body), msgs[1])
})

test('a 5 MiB body over its job\'s limit is skipped without buffering; the next frame reads', () => {
  const big = 'bigbigbig-1'
  const s = sink((jobId) => jobId === big ? 1024 : 4096)
  const body = new Uint8Array(5 * 1024 * 1024).fill(0xaa)
  const frame = rawFrame(big, body)
  const next = encodeFrame(msgs[0]!).subarray()
  let maxBuffered = 0
  const chunk = 64 * 1024
  for (let i = 0; i < frame.byteLength; i += chunk) {
    const piece = frame.subarray(i, i + chunk)
    // the frame after it shares the last chunk, as it would on the wire
    s.reader.push(i + chunk >= frame.byteLength ? new Uint8ArrayList(piece, next) : piece)
    maxBuffered = Math.max(maxBuffered, s.reader.buffered)
  }
  assert.ok(maxBuffered < 64, `at most a header is held while skipping (held ${maxBuffered} bytes)`)
  assert.deepEqual(s.oversize, [{ jobId: big, bytes: body.byteLength, limit: 1024 }])
  assert.equal(s.frames.length, 1, 'the skipped body is never handed on')
  assert.equal(s.frames[0]!.jobId, msgs[0]!.jobId)
  assert.deepEqual(decode(s.frames[0]!.body), msgs[0])
})

test('a body at its limit passes; one byte over is skipped; the limit never exceeds MAX_FRAME_BYTES', () => {
  const s = sink(() => 100)
  s.reader.push(rawFrame('exactly-100', new Uint8Array(100)))
  s.reader.push(rawFrame('over-by-one', new Uint8Array(101)))
  assert.deepEqual(s.frames.map((f) => [f.jobId, f.body.byteLength]), [['exactly-100', 100]])
  assert.deepEqual(s.oversize.map((o) => o.jobId), ['over-by-one'])
  const huge = sink(() => Number.MAX_SAFE_INTEGER)
  // only the header of a body just over the hard cap: it is declared oversize before any of it arrives
  const head = rawFrame('hard-capped', new Uint8Array(0)).subarray(0, 12)
  const len = MAX_FRAME_BYTES + 1
  huge.reader.push(Uint8Array.from([...head, (len & 0x7f) | 0x80, ((len >> 7) & 0x7f) | 0x80, ((len >> 14) & 0x7f) | 0x80, (len >> 21) & 0x7f]))
  assert.deepEqual(huge.oversize, [{ jobId: 'hard-capped', bytes: len, limit: MAX_FRAME_BYTES }])
})

test('a body that is not CBOR still reaches frame(): decoding is the link\'s job', () => {
  const s = sink()
  const garbage = Uint8Array.of(0xff, 0xfe, 0x00, 0x1c, 0x5f)
  s.reader.push(rawFrame('garbage-1', garbage))
  s.reader.push(encodeFrame(msgs[0]!))
  assert.equal(s.frames.length, 2)
  assert.deepEqual([...s.frames[0]!.body], [...garbage])
  assert.deepEqual(decode(s.frames[1]!.body), msgs[0])
})

test('a header the reader cannot parse throws ProtocolError', () => {
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['a job id of 3 bytes', rawFrame('abc', Uint8Array.of(0xa0)), /job id of 3 bytes/],
    ['a job id of 65 bytes', rawFrame('a'.repeat(65), Uint8Array.of(0xa0)), /job id of 65 bytes/],
    ['a non-id character', rawFrame('abc!defgh', Uint8Array.of(0xa0)), /invalid job id/],
    ['a space in the id', rawFrame('abc defgh', Uint8Array.of(0xa0)), /invalid job id/],
    ['a job id length over one varint byte', Uint8Array.of(0x80, 0x01), /malformed length/],
    ['a body length over four varint bytes', Uint8Array.from([...rawFrame('aaaaaaaa', new Uint8Array(0)).subarray(0, 9), 0xff, 0xff, 0xff, 0xff, 0x01]), /malformed length/]
  ]
  for (const [what, bytes, message] of cases) {
    const s = sink()
    assert.throws(() => { s.reader.push(bytes) }, (err: unknown) => err instanceof ProtocolError && err.code === 'ERR_PROTOCOL' && message.test(err.message), what)
    assert.equal(s.frames.length, 0, what)
  }
})

test('encodeFrame refuses a body over the given limit', () => {
  const msg = { jobId: 'aaaaaaaa', pad: 'z'.repeat(200) }
  assert.throws(() => encodeFrame(msg, 100), { code: 'ERR_MESSAGE_TOO_LARGE' })
  assert.ok(encodeFrame(msg, 300).byteLength > 200)
})
