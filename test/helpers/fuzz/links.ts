/**
 * Fuzzing `/ipfs-accelerate/job/1.0.0` and `/ipfs-accelerate/directory/1.0.0`.
 *
 * Job link, two kinds of input:
 *  - body faults (the header names a job, the body is malformed or over its
 *    limit): all sent on ONE link, which must stay up; before some of them a
 *    valid offer makes the job known, so the worker answers its bad frame
 *    with an `error` frame. At the end a valid `query` must get a `status`
 *    answer on the same link.
 *  - header faults (a job id of a wrong length or characters, a length
 *    varint too long, random bytes): one link each; the worker ends it.
 * Directory: one malformed `ask` per stream; the worker resets it.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { encode } from 'cborg'
import { decodeMessage } from '../../../src/p2p/wire/codec.ts'
import { FrameReader } from '../../../src/p2p/jobs/frames.ts'
import { directoryRequestSchema, linkFrameSchema, TO_WORKER } from '../../../src/p2p/wire/messages.ts'
import type { LinkFrame } from '../../../src/p2p/wire/messages.ts'
import { DIRECTORY_PROTOCOL, JOB_PROTOCOL, MAX_DIRECTORY_BYTES, MAX_FRAME_BYTES } from '../../../src/p2p/wire/protocol.ts'
import { concat, Fuzzer, Tally, text, varint } from './mutate.ts'
import type { FuzzInput } from './mutate.ts'
import { collect, shoot } from './streams.ts'

export interface LinkReport {
  body: Tally
  header: Tally
  directory: Tally
  /** Answers the worker sent on the body-fault link, by type. */
  answers: Record<string, number>
  /** Valid offers sent before a bad body (each makes its job known: the worker bids, then answers the bad body with an error). */
  knownJobs: number
  /** A valid query after the body faults was answered on the same link. */
  linkSurvived: boolean
  ms: number
}

const HEADER_MUTATIONS = ['id-length', 'id-chars', 'length-varint', 'random'] as const
type HeaderMutation = typeof HEADER_MUTATIONS[number]

function frame (jobId: string, body: Uint8Array): Uint8Array {
  const id = text(jobId)
  return concat(varint(id.byteLength), id, varint(body.byteLength), body)
}

function job (n: number): string { return `fuzzlink-${n.toString().padStart(6, '0')}` }

function toWorker (jobId: string, n: number): Array<Record<string, unknown>> {
  const head = { jobId, traceId: 'fuzz', skillset: 'stand-in', model: 'demo/stand-in', cost: 1, inputBytes: 16 }
  return [
    { v: 1, t: 'offer', ...head, ttlMs: 5000, round: n % 3 },
    { v: 1, t: 'assign', ...head, input: { items: 1, tag: `t${n}` }, leaseMs: 5000, heartbeatMs: 1000 },
    { v: 1, t: 'decline', jobId },
    { v: 1, t: 'cancel', jobId },
    { v: 1, t: 'query', jobId }
  ]
}

/** Whether a body would pass: a valid frame for a worker about this job. */
function validBody (jobId: string, body: Uint8Array): boolean {
  try {
    const f = decodeMessage(body, linkFrameSchema, MAX_FRAME_BYTES)
    return f.jobId === jobId && TO_WORKER.has(f.t)
  } catch (err) {
    void err // malformed, as intended
    return false
  }
}

function headerFault (f: Fuzzer, n: number): { kind: HeaderMutation, bytes: Uint8Array } {
  const kind = f.pick(HEADER_MUTATIONS)
  const body = encode(toWorker(job(n), n)[4])
  switch (kind) {
    case 'id-length': {
      const len = f.pick([0, 1, 7, 65, 200, 2 ** 20, 2 ** 35])
      return { kind, bytes: concat(varint(len), f.bytes(Math.min(len, 300)), varint(body.byteLength), body) }
    }
    case 'id-chars': {
      const id = Uint8Array.from(text(job(n)))
      id[f.int(id.byteLength)] = f.pick([0x00, 0x20, 0x2f, 0x2e, 0x7f, 0xff, 0xc3])
      return { kind, bytes: concat(varint(id.byteLength), id, varint(body.byteLength), body) }
    }
    case 'length-varint': {
      const id = text(job(n))
      return { kind, bytes: concat(varint(id.byteLength), id, new Uint8Array(5 + f.int(6)).fill(0xff), body) }
    }
    case 'random': {
      // a first byte that is no job id length (0-7 or 65-127), then noise
      const first = f.chance(0.5) ? f.int(8) : 65 + f.int(63)
      return { kind, bytes: concat(Uint8Array.of(first), f.bytes(f.size(4096))) }
    }
  }
}

/** Frames the worker sends back on the body-fault link, decoded as they come. */
function answers (stream: Stream, into: Record<string, number>, onFrame: (f: LinkFrame) => void): void {
  const reader = new FrameReader({
    limitFor: () => MAX_FRAME_BYTES,
    oversize: () => { into.oversize = (into.oversize ?? 0) + 1 },
    frame: (_jobId, body) => {
      let f: LinkFrame
      try {
        f = decodeMessage(body, linkFrameSchema, MAX_FRAME_BYTES)
      } catch (err) {
        void err // the worker sent something no client could read: counted, the test fails on it
        into.undecodable = (into.undecodable ?? 0) + 1
        return
      }
      into[f.t] = (into[f.t] ?? 0) + 1
      onFrame(f)
    }
  })
  stream.addEventListener('message', (evt) => {
    try {
      reader.push(evt.data)
    } catch (err) {
      void err // a header no client could parse: counted, the test fails on it
      into.undecodable = (into.undecodable ?? 0) + 1
    }
  })
}

export async function fuzzLinks (node: Libp2p, peer: PeerId, opts: { count: number, seed: number, headerCount?: number, directoryCount?: number }): Promise<LinkReport> {
  const t0 = performance.now()
  const f = new Fuzzer(opts.seed)
  const report: LinkReport = { body: new Tally(), header: new Tally(), directory: new Tally(), answers: {}, knownJobs: 0, linkSurvived: false, ms: 0 }

  // 1. body faults on one link
  const stream = await node.dialProtocol(peer, JOB_PROTOCOL, { signal: AbortSignal.timeout(5000) })
  let resolveStatus: (() => void) | undefined
  const statusSeen = new Promise<void>((resolve) => { resolveStatus = resolve })
  const finalJob = 'fuzzlink-final-query'
  answers(stream, report.answers, (fr) => { if (fr.jobId === finalJob && fr.t === 'status') resolveStatus?.() })
  const ended = collect(stream, 120_000)
  const send = async (bytes: Uint8Array): Promise<void> => {
    if (!stream.send(bytes)) await stream.onDrain({ signal: AbortSignal.timeout(10_000) })
  }
  for (let n = 0; report.body.sent < opts.count; n++) {
    const jobId = job(n)
    const bases = toWorker(jobId, n)
    let input: FuzzInput
    if (f.chance(0.03)) {
      // over the job's limit (stand-in input 64 KiB + 4 KiB): skipped as it streams by
      input = { kind: 'huge-value', bytes: f.bytes(80 * 1024 + f.int(64 * 1024)) }
    } else {
      input = f.input(bases)
      if (validBody(jobId, input.bytes)) { report.body.validByChance++; continue }
    }
    // a known job (bid on) gets its bad frame answered with an error frame
    if (n % 4 === 0) { await send(frame(jobId, encode(bases[0]))); report.knownJobs++ }
    await send(frame(jobId, input.bytes))
    report.body.count(input.kind)
  }
  await send(frame(finalJob, encode({ v: 1, t: 'query', jobId: finalJob })))
  const survived = await Promise.race([statusSeen.then(() => true), ended.then(() => false), new Promise<boolean>((resolve) => setTimeout(() => { resolve(false) }, 20_000))])
  report.linkSurvived = survived
  report.body.answered = Object.values(report.answers).reduce((a, b) => a + b, 0)
  report.body.rejected = report.answers.error ?? 0
  await stream.close({ signal: AbortSignal.timeout(5000) }).catch((err: unknown) => { stream.abort(err as Error) })
  const end = await ended
  if (end.reset) report.body.resets++

  // 2. header faults, one link each
  const headerInputs = Array.from({ length: opts.headerCount ?? opts.count }, (_, n) => headerFault(f, n))
  await shoot(node, peer, JOB_PROTOCOL, headerInputs, report.header, { width: 6, timeoutMs: 5000 })

  // 3. directory asks, one stream each
  const dirInputs: FuzzInput[] = []
  while (dirInputs.length < (opts.directoryCount ?? opts.count)) {
    const input = f.input([{ v: 1, t: 'ask' }, { v: 1, t: 'ask', self: { addrs: [`/ip4/127.0.0.1/tcp/1/p2p/${node.peerId.toString()}`], models: [] } }])
    try {
      decodeMessage(input.bytes, directoryRequestSchema, MAX_DIRECTORY_BYTES)
      report.directory.validByChance++
    } catch (err) {
      void err // malformed: keep it
      dirInputs.push(input)
    }
  }
  await shoot(node, peer, DIRECTORY_PROTOCOL, dirInputs, report.directory, { width: 8, timeoutMs: 7000, onResult: (r) => { if (r.answer.byteLength > 0) report.directory.answered++ } })
  report.ms = Math.round(performance.now() - t0)
  return report
}
