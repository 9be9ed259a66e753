/**
 * Wire messages of protocol version 1. Every message carries `v` and `t`;
 * each is validated with these schemas after decoding. Job inputs and
 * outputs are skillset-shaped records validated again by the skillset.
 *
 * No wall-clock time crosses the wire: offers carry how long they stay
 * valid (`ttlMs`), leases how long they last (`leaseMs`), each measured
 * from when the message arrives, so clock skew between hosts does not matter.
 */
import { z } from 'zod'
import { SKILLSET_NAMES } from '../../interfaces/index.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { modelIdSchema } from '../../models/catalog.ts'
import { MAX_DIRECTORY_PEERS, MAX_STREAM_WINDOW, PROTOCOL_VERSION } from './protocol.ts'

const v = z.literal(PROTOCOL_VERSION)
export const jobIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, 'job ids are 8-64 characters of letters, digits, "_" and "-"')
const skillset = z.enum(SKILLSET_NAMES as [SkillsetName, ...SkillsetName[]])
const record = z.record(z.string().max(64), z.unknown())
const durationMs = z.number().int().nonnegative().max(24 * 3600_000)
const codeSchema = z.string().regex(/^ERR_[A-Z0-9_]{1,60}$/)
const seqSchema = z.number().int().nonnegative().max(2 ** 31)

/** What a job is, without its input: enough for a worker to decide whether to bid. */
const jobHead = {
  jobId: jobIdSchema,
  traceId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  skillset,
  /** A model id; absent means the worker's default model for the skillset. */
  model: modelIdSchema.optional(),
  /** Size of the input in cost units (texts for embed) and bytes, so workers can decline. */
  cost: z.number().int().min(1).max(1_000_000),
  inputBytes: z.number().int().min(0).max(2 ** 32)
}

/**
 * Gossip, or direct on a job link: a client offers a job. The input travels
 * with the lease. `round` counts the client's offer rounds (a fresh gossip
 * message each round).
 */
export const offerSchema = z.strictObject({
  v,
  t: z.literal('offer'),
  ...jobHead,
  /** How long the offer stands, from its arrival. */
  ttlMs: durationMs.min(1),
  round: z.number().int().min(0).max(1000)
})
export type Offer = z.infer<typeof offerSchema>

/** Worker → client: an offer to run the job, and what the worker expects it to take. */
export const bidSchema = z.strictObject({
  v,
  t: z.literal('bid'),
  jobId: jobIdSchema,
  model: modelIdSchema,
  provider: z.string().max(32),
  dtype: z.string().max(16),
  device: z.string().max(32),
  /** Cost units waiting in the model's queue before this job. */
  queuedCost: z.number().int().nonnegative().max(100_000_000),
  /** Measured items per second of this model on this worker, where known. */
  throughput: z.number().nonnegative().max(1e9).optional(),
  /** The worker's estimate of how long until the result, where known. */
  etaMs: durationMs.optional()
})
export type Bid = z.infer<typeof bidSchema>

/** Worker → client, on a direct offer it will not take now (it stays silent on gossip offers). */
export const busySchema = z.strictObject({ v, t: z.literal('busy'), jobId: jobIdSchema, reason: z.string().max(200) })

/**
 * Client → worker: the lease of the job, with its input. Self-contained (the
 * head is repeated), so a worker that forgot its bid can still take it.
 */
export const assignSchema = z.strictObject({
  v,
  t: z.literal('assign'),
  ...jobHead,
  input: record,
  params: record.optional(),
  /** The lease lasts this long from arrival; past it the client has given the job up. */
  leaseMs: durationMs.min(1),
  /** Send a progress frame at least this often while holding the job. */
  heartbeatMs: z.number().int().min(50).max(60_000),
  /** Streaming jobs only (1.1.0): unacknowledged partials the worker may have out (default 16). */
  window: z.number().int().min(1).max(MAX_STREAM_WINDOW).optional()
})
export type Assign = z.infer<typeof assignSchema>

/** Client → worker: the job went elsewhere (answer to a bid). */
export const declineSchema = z.strictObject({ v, t: z.literal('decline'), jobId: jobIdSchema })
/** Client → worker: drop the job (lease given up, or the caller cancelled). */
export const cancelSchema = z.strictObject({ v, t: z.literal('cancel'), jobId: jobIdSchema })
/**
 * Client → worker, after a link broke: what became of this job? For a
 * streaming job (1.1.0), `fromSeq` is the next partial the client wants:
 * the worker sends again from there and carries on (resume).
 */
export const querySchema = z.strictObject({ v, t: z.literal('query'), jobId: jobIdSchema, fromSeq: seqSchema.optional() })

/** Worker → client (1.1.0): one partial output of a streaming job, numbered from 0. */
export const partialSchema = z.strictObject({ v, t: z.literal('partial'), jobId: jobIdSchema, seq: seqSchema, data: record })
export type Partial = z.infer<typeof partialSchema>
/** Client → worker (1.1.0): the client's caller consumed `next` partials (credit for more; also a keep-alive). */
export const ackSchema = z.strictObject({ v, t: z.literal('ack'), jobId: jobIdSchema, next: seqSchema })

/** Worker → client: a heartbeat while it holds the job. */
export const progressSchema = z.strictObject({
  v,
  t: z.literal('progress'),
  jobId: jobIdSchema,
  state: z.enum(['queued', 'running']),
  etaMs: durationMs.optional()
})

/** Worker → client: the answer to a query about a job it does not hold and has no outcome for. */
export const statusSchema = z.strictObject({ v, t: z.literal('status'), jobId: jobIdSchema, state: z.literal('unknown') })

export const timingsSchema = z.strictObject({
  queueMs: z.number().nonnegative(),
  runMs: z.number().nonnegative(),
  batchSize: z.number().int().min(1),
  /** Every item came from an embedding cache. */
  cacheHit: z.boolean().optional(),
  /** Items answered from a cache. */
  cachedItems: z.number().int().nonnegative().optional()
})

const bytes = (min: number, max: number): z.ZodType<Uint8Array> => z.instanceof(Uint8Array).refine((b) => b.byteLength >= min && b.byteLength <= max, `expected ${min}-${max} bytes`)

/** How a result was computed, signed by the worker's key (see trust/provenance.ts). */
export const provenanceSchema = z.strictObject({
  modelCid: z.string().max(200),
  provider: z.string().max(32),
  dtype: z.string().max(16),
  inputHash: bytes(32, 32),
  /** Streaming jobs (1.1.0): sha256 over the hashes of the partials, in order (see jobs/stream-flow.ts); signed. */
  partialsHash: bytes(32, 32).optional(),
  signature: bytes(16, 1024)
})

/** Worker → client: the outcome. */
export const resultSchema = z.strictObject({
  v,
  t: z.literal('result'),
  jobId: jobIdSchema,
  model: modelIdSchema,
  output: record,
  timings: timingsSchema,
  /** Streaming jobs (1.1.0): how many partials came before this result (seq 0 … partials-1). */
  partials: seqSchema.optional(),
  provenance: provenanceSchema
})
export type Result = z.infer<typeof resultSchema>

export const errorSchema = z.strictObject({
  v,
  t: z.literal('error'),
  jobId: jobIdSchema,
  code: codeSchema,
  message: z.string().max(2000)
})
export type JobErrorMessage = z.infer<typeof errorSchema>

/** Every frame a job link carries, in either direction. */
export const linkFrameSchema = z.discriminatedUnion('t', [
  offerSchema, assignSchema, declineSchema, cancelSchema, querySchema, ackSchema,
  bidSchema, busySchema, progressSchema, statusSchema, resultSchema, errorSchema, partialSchema
])
export type LinkFrame = z.infer<typeof linkFrameSchema>
/** Frames a worker receives. */
export const TO_WORKER: ReadonlySet<LinkFrame['t']> = new Set(['offer', 'assign', 'decline', 'cancel', 'query', 'ack'])
/** Frames (and fields) only job protocol 1.1.0 carries: never sent on, and refused from, a 1.0.0 link. */
export const STREAM_ONLY: ReadonlySet<LinkFrame['t']> = new Set(['partial', 'ack'])

/** Whether a frame may travel on a link of this job protocol version (1.0.0 peers know no streaming frames or fields). */
export function frameAllowed (f: LinkFrame, streaming: boolean): boolean {
  if (streaming) return true
  if (STREAM_ONLY.has(f.t)) return false
  if (f.t === 'assign') return f.window === undefined
  if (f.t === 'query') return f.fromSeq === undefined
  if (f.t === 'result') return f.partials === undefined && f.provenance.partialsHash === undefined
  return true
}

const advertModel = z.strictObject({
  id: modelIdSchema,
  skillset,
  cid: z.string().max(200).optional(),
  provider: z.string().max(32),
  dtype: z.string().max(16),
  device: z.string().max(32),
  /** An inference thread is up and the node bids for it. */
  loaded: z.boolean(),
  /** Measured items per second, where known. */
  throughput: z.number().nonnegative().max(1e9).optional(),
  /** Cost units waiting in its queue. */
  queuedCost: z.number().int().nonnegative().max(100_000_000).optional()
})

/** Gossip: a node's heartbeat. The sender is the signed gossip `from`. */
export const advertSchema = z.strictObject({
  v,
  t: z.literal('advert'),
  /** Random per process: a new one means the peer restarted (its seq starts again). */
  bootId: z.string().regex(/^[A-Za-z0-9_-]{8,32}$/),
  seq: z.number().int().nonnegative(),
  ttlMs: z.number().int().min(1000).max(3_600_000),
  leaving: z.boolean(),
  hardware: z.strictObject({
    cpu: z.strictObject({ model: z.string().max(200), physicalCores: z.number().int().nonnegative(), logicalCores: z.number().int().nonnegative(), flags: z.array(z.string().max(32)).max(64) }),
    memoryTotalMB: z.number().nonnegative(),
    gpus: z.array(z.strictObject({ vendor: z.string().max(32), name: z.string().max(200), memoryTotalMB: z.number().nonnegative(), memoryFreeMB: z.number().nonnegative().optional() })).max(64),
    providers: z.array(z.string().max(32)).max(8)
  }),
  models: z.array(advertModel).max(256),
  /** Models whose whole weights this node holds (pinned), served or not: sources for pulls. */
  held: z.array(z.strictObject({ id: modelIdSchema, cid: z.string().max(200) })).max(256),
  queueDepth: z.number().int().nonnegative(),
  /** Where to dial the sender; each must end in /p2p/<the sender's peer id>, others are dropped. */
  addrs: z.array(z.string().max(300)).max(16),
  httpUrl: z.string().max(300).optional()
})
export type Advert = z.infer<typeof advertSchema>
export type AdvertModel = z.infer<typeof advertModel>

/**
 * Directory answer: the live workers a peer knows, as hints for whom to dial.
 * Hints are not trusted: a client only dials addresses that end in the
 * hinted peer id (the connection proves the id), and takes what a worker
 * serves from that worker's own signed adverts and bids.
 */
export const directorySchema = z.strictObject({
  v,
  t: z.literal('directory'),
  peers: z.array(z.strictObject({
    peerId: z.string().max(100),
    addrs: z.array(z.string().max(300)).max(16),
    models: z.array(advertModel).max(256)
  })).max(MAX_DIRECTORY_PEERS)
})
export type Directory = z.infer<typeof directorySchema>

/**
 * Directory request: a worker that asks names itself (its addresses and
 * models, as its advert would), so the peer it joins learns it at once; a
 * client sends no `self`. The sender is the connection's remote peer.
 */
export const directoryRequestSchema = z.strictObject({
  v,
  t: z.literal('ask'),
  self: z.strictObject({
    addrs: z.array(z.string().max(300)).max(16),
    models: z.array(advertModel).max(256)
  }).optional()
})
export type DirectoryRequest = z.infer<typeof directoryRequestSchema>
