/**
 * Wire messages of protocol version 1. Every message carries `v` and `t`;
 * each is validated with these schemas after decoding. Job inputs and
 * outputs are skillset-shaped records validated again by the skillset.
 */
import { z } from 'zod'
import { SKILLSET_NAMES } from '../interfaces/index.ts'
import type { SkillsetName } from '../interfaces/index.ts'
import { modelIdSchema } from '../models/catalog.ts'
import { PROTOCOL_VERSION } from './protocol.ts'

const v = z.literal(PROTOCOL_VERSION)
export const jobIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, 'job ids are 8-64 characters of letters, digits, "_" and "-"')
const skillset = z.enum(SKILLSET_NAMES as [SkillsetName, ...SkillsetName[]])
const record = z.record(z.string().max(64), z.unknown())
const timeMs = z.number().int().nonnegative().max(2 ** 52)

/** Gossip: a client offers a job. The input itself travels on the stream, with the assignment. */
export const offerSchema = z.strictObject({
  v,
  t: z.literal('offer'),
  jobId: jobIdSchema,
  traceId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  skillset,
  /** A model id; absent means the worker's default model for the skillset. */
  model: modelIdSchema.optional(),
  /** Size of the input in cost units (texts for embed) and bytes, so workers can decline. */
  cost: z.number().int().min(1).max(1_000_000),
  inputBytes: z.number().int().min(0).max(2 ** 32),
  deadline: timeMs,
  sentAt: timeMs
})
export type Offer = z.infer<typeof offerSchema>

/** Stream, worker → client: an offer to run the job. */
export const bidSchema = z.strictObject({
  v,
  t: z.literal('bid'),
  jobId: jobIdSchema,
  model: modelIdSchema,
  queueDepth: z.number().int().nonnegative().max(10_000_000),
  provider: z.string().max(32),
  dtype: z.string().max(16)
})
export type Bid = z.infer<typeof bidSchema>

/** Stream, client → worker: the lease of the job, with its input. */
export const assignSchema = z.strictObject({
  v,
  t: z.literal('assign'),
  jobId: jobIdSchema,
  input: record,
  params: record.optional()
})
export type Assign = z.infer<typeof assignSchema>

/** Stream, client → worker: the job went elsewhere. */
export const declineSchema = z.strictObject({ v, t: z.literal('decline'), jobId: jobIdSchema })

export const timingsSchema = z.strictObject({
  queueMs: z.number().nonnegative(),
  runMs: z.number().nonnegative(),
  batchSize: z.number().int().min(1),
  /** Every item came from an embedding cache. */
  cacheHit: z.boolean().optional(),
  /** Items answered from a cache. */
  cachedItems: z.number().int().nonnegative().optional()
})

/** Stream, worker → client: the outcome. */
export const resultSchema = z.strictObject({
  v,
  t: z.literal('result'),
  jobId: jobIdSchema,
  model: modelIdSchema,
  output: record,
  timings: timingsSchema
})
export type Result = z.infer<typeof resultSchema>

export const errorSchema = z.strictObject({
  v,
  t: z.literal('error'),
  jobId: jobIdSchema,
  code: z.string().regex(/^ERR_[A-Z0-9_]{1,60}$/),
  message: z.string().max(2000)
})
export type JobErrorMessage = z.infer<typeof errorSchema>

export const clientReplySchema = z.discriminatedUnion('t', [assignSchema, declineSchema])
export const workerOutcomeSchema = z.discriminatedUnion('t', [resultSchema, errorSchema])

/** Gossip: a node's heartbeat. The sender is the signed gossip `from`. */
export const advertSchema = z.strictObject({
  v,
  t: z.literal('advert'),
  seq: z.number().int().nonnegative(),
  ttlMs: z.number().int().min(1000).max(3_600_000),
  leaving: z.boolean(),
  hardware: z.strictObject({
    cpu: z.strictObject({ model: z.string().max(200), physicalCores: z.number().int().nonnegative(), logicalCores: z.number().int().nonnegative(), flags: z.array(z.string().max(32)).max(64) }),
    memoryTotalMB: z.number().nonnegative(),
    gpus: z.array(z.strictObject({ vendor: z.string().max(32), name: z.string().max(200), memoryTotalMB: z.number().nonnegative(), memoryFreeMB: z.number().nonnegative().optional() })).max(64),
    providers: z.array(z.string().max(32)).max(8)
  }),
  models: z.array(z.strictObject({
    id: modelIdSchema,
    skillset,
    cid: z.string().max(200).optional(),
    provider: z.string().max(32),
    dtype: z.string().max(16),
    device: z.string().max(32),
    loaded: z.boolean(),
    /** Measured items per second, where known. */
    throughput: z.number().nonnegative().optional()
  })).max(256),
  /** Models whose whole weights this node holds (pinned), served or not: sources for pulls. */
  held: z.array(z.strictObject({ id: modelIdSchema, cid: z.string().max(200) })).max(256),
  queueDepth: z.number().int().nonnegative(),
  /** Where to dial the sender (each ends in /p2p/<peer id>). */
  addrs: z.array(z.string().max(300)).max(16),
  httpUrl: z.string().max(300).optional()
})
export type Advert = z.infer<typeof advertSchema>
