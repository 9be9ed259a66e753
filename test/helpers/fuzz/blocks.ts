/**
 * Fuzzing `/ipfs-accelerate/blocks/1.0.0`: one malformed request per
 * stream (the protocol's own rule), a few at a time. Request bodies are
 * mutations of valid `dag`, `blocks`, `has`, `manifest` and `cache`
 * requests inside a well-formed control frame; frame faults (unknown kind,
 * zero or huge length, a block frame as the request, a bad length varint,
 * random bytes) break the framing itself. Afterwards `dagRequest` checks
 * that a valid request still streams every block, each matching its CID.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import { decode, encode } from 'cborg'
import { CID } from 'multiformats/cid'
import { Uint8ArrayList } from 'uint8arraylist'
import { blockMatches } from '../../../src/store/blocks/cid.ts'
import { BLOCKS_PROTOCOL, KIND_BLOCK, KIND_CONTROL, controlFrame, parseControl, replySchema, requestSchema } from '../../../src/store/exchange/wire.ts'
import type { Reply } from '../../../src/store/exchange/wire.ts'
import { concat, Fuzzer, Tally, varint } from './mutate.ts'
import type { FuzzInput } from './mutate.ts'
import { oneShot, shoot } from './streams.ts'

export interface BlocksReport { tally: Tally, errorReplies: number, ms: number }

function payloadFrame (kind: number, body: Uint8Array): Uint8Array {
  return concat(varint(body.byteLength + 1), Uint8Array.of(kind), body)
}

function validRequests (root: CID, f: Fuzzer): Array<Record<string, unknown>> {
  const other = CID.parse('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')
  return [
    { v: 1, t: 'dag', roots: [root.bytes] },
    { v: 1, t: 'blocks', roots: [root.bytes, other.bytes] },
    { v: 1, t: 'has', roots: [other.bytes] },
    { v: 1, t: 'manifest', ref: 'demo/stand-in' },
    { v: 1, t: 'cache', keys: [Buffer.from(f.bytes(32)).toString('hex')] }
  ]
}

function isValid (body: Uint8Array): boolean {
  try {
    parseControl(decode(body, { useMaps: false, rejectDuplicateMapKeys: true, allowUndefined: false }), requestSchema)
    return true
  } catch (err) {
    void err // malformed, as intended
    return false
  }
}

function frameFault (f: Fuzzer, root: CID): FuzzInput {
  const req = encode({ v: 1, t: 'has', roots: [root.bytes] })
  const faults: Array<() => Uint8Array> = [
    () => payloadFrame(2 + f.int(254), req), // unknown kind
    () => Uint8Array.of(0x00), // zero length
    () => concat(varint(64 * 1024 * 1024), Uint8Array.of(KIND_CONTROL), req), // over the frame limit
    () => concat(new Uint8Array(6).fill(0xff), req), // a length varint past 28 bits
    () => payloadFrame(KIND_BLOCK, concat(varint(root.bytes.byteLength), root.bytes, f.bytes(f.size(1024)))), // a block where a request goes
    () => payloadFrame(KIND_BLOCK, concat(varint(2 ** 21), f.bytes(8))), // a block frame with a bad CID length
    () => concat(varint(req.byteLength + 100), Uint8Array.of(KIND_CONTROL), req), // ends inside the frame
    () => f.bytes(f.size(8192)) // random
  ]
  return { kind: 'random', bytes: f.pick(faults)() }
}

export async function fuzzBlocks (node: Libp2p, peer: PeerId, root: CID, opts: { count: number, seed: number }): Promise<BlocksReport> {
  const t0 = performance.now()
  const f = new Fuzzer(opts.seed)
  const report: BlocksReport = { tally: new Tally(), errorReplies: 0, ms: 0 }
  const inputs: FuzzInput[] = []
  while (inputs.length < opts.count) {
    if (f.chance(0.2)) { inputs.push(frameFault(f, root)); continue }
    const input = f.input(validRequests(root, f))
    if (isValid(input.bytes)) { report.tally.validByChance++; continue }
    inputs.push({ kind: input.kind, bytes: payloadFrame(KIND_CONTROL, input.bytes) })
  }
  await shoot(node, peer, BLOCKS_PROTOCOL, inputs, report.tally, {
    width: 8,
    timeoutMs: 5000,
    onResult: (r) => {
      if (r.answer.byteLength === 0) return
      report.tally.answered++
      if (readFrames(r.answer).some((x) => x.kind === 'control' && x.reply.t === 'error')) report.errorReplies++
    }
  })
  report.tally.rejected = report.tally.resets + report.errorReplies
  report.ms = Math.round(performance.now() - t0)
  return report
}

type Answer = { kind: 'control', reply: Reply } | { kind: 'block', cid: CID, bytes: Uint8Array }

/** Split an answer into frames (throws on anything a client could not read). */
export function readFrames (data: Uint8ArrayList): Answer[] {
  const buf = data.subarray()
  const out: Answer[] = []
  let pos = 0
  while (pos < buf.byteLength) {
    let len = 0
    let shift = 0
    for (;;) {
      const b = buf[pos++]
      if (b === undefined) throw new Error('answer ends inside a length')
      len += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) break
      shift += 7
    }
    const payload = buf.subarray(pos, pos + len)
    if (payload.byteLength < len) throw new Error('answer ends inside a frame')
    pos += len
    if (payload[0] === KIND_CONTROL) {
      out.push({ kind: 'control', reply: parseControl(decode(payload.subarray(1), { useMaps: false }), replySchema) })
    } else {
      let p = 1
      let cidLen = 0
      for (let s = 0; ; s += 7) {
        const b = payload[p++] as number
        cidLen += (b & 0x7f) << s
        if ((b & 0x80) === 0) break
      }
      out.push({ kind: 'block', cid: CID.decode(payload.subarray(p, p + cidLen)), bytes: payload.subarray(p + cidLen) })
    }
  }
  return out
}

/** A valid `dag` request for `root`: the number of blocks it streamed, each checked against its CID. */
export async function dagRequest (node: Libp2p, peer: PeerId, root: CID): Promise<number> {
  const r = await oneShot(node, peer, BLOCKS_PROTOCOL, controlFrame({ v: 1, t: 'dag', roots: [root.bytes] }), 15_000)
  if (r.reset || r.timedOut || r.openError !== undefined) throw new Error(`the dag request failed: ${JSON.stringify({ reset: r.reset, timedOut: r.timedOut, openError: r.openError })}`)
  const frames = readFrames(new Uint8ArrayList(r.answer))
  const blocks = frames.filter((x) => x.kind === 'block')
  for (const b of blocks) if (b.kind === 'block' && !blockMatches(b.cid, b.bytes)) throw new Error(`block ${b.cid.toString()} does not match its CID`)
  const last = frames.at(-1)
  if (last?.kind !== 'control' || last.reply.t !== 'end' || last.reply.blocks !== blocks.length) throw new Error(`the dag answer did not end with \`end\` for ${blocks.length} blocks: ${JSON.stringify(last?.kind === 'control' ? last.reply : last?.kind)}`)
  return blocks.length
}
