/**
 * `/status.json`: what a running worker tells a person about itself and the
 * swarm it sees. The status page polls it, `ipfs-accelerate status` reads
 * and validates it with this schema (a node of another version fails with
 * a clear message instead of a half-printed table).
 *
 * The route is open (no token): everything here is either what the node's
 * adverts already publish to the whole swarm (hardware summary, models,
 * CIDs, queues, peer ids) or counts and codes. It carries no token, no job
 * input or output, no client peer id and no error message (a message can
 * quote an input); jobs are named by id, skillset, model, outcome code and
 * time.
 */
import { z } from 'zod'

export const STATUS_VERSION = 1

const hardwareSchema = z.strictObject({
  cpu: z.strictObject({ model: z.string(), physicalCores: z.number(), logicalCores: z.number(), flags: z.array(z.string()) }),
  memoryTotalMB: z.number(),
  gpus: z.array(z.strictObject({ vendor: z.string(), name: z.string(), memoryTotalMB: z.number(), memoryFreeMB: z.number().optional() })),
  providers: z.array(z.string())
})

const queueSchema = z.strictObject({
  depth: z.number().int().nonnegative(),
  queuedCost: z.number().nonnegative(),
  /** Measured rate per runner; `unit` says of what. */
  throughput: z.number().nonnegative().nullable(),
  unit: z.enum(['items/s', 'tokens/s'])
})

const servedSchema = z.strictObject({
  id: z.string(),
  skillset: z.string(),
  cid: z.string(),
  loaded: z.boolean(),
  randomWeights: z.boolean(),
  loadMs: z.number().nonnegative(),
  plan: z.strictObject({
    device: z.string(),
    provider: z.string(),
    dtype: z.string(),
    threads: z.number().int().nonnegative(),
    reasons: z.array(z.string()),
    fallbacks: z.array(z.strictObject({ provider: z.string(), reason: z.string() }))
  }),
  queue: queueSchema
})

const peerSchema = z.strictObject({
  peerId: z.string(),
  /** The peer has a connection to this node now. */
  connected: z.boolean(),
  /** Seconds until its advert expires unless renewed. */
  expiresInS: z.number(),
  hardware: hardwareSchema,
  queueDepth: z.number().int().nonnegative(),
  models: z.array(z.strictObject({
    id: z.string(),
    skillset: z.string(),
    loaded: z.boolean(),
    provider: z.string(),
    dtype: z.string(),
    device: z.string(),
    throughput: z.number().nullable(),
    queuedCost: z.number().nullable()
  }))
})

export const recentJobSchema = z.strictObject({
  id: z.string(),
  skillset: z.string(),
  /** The served model that ran it; `(none)` when this node serves no such model. */
  model: z.string(),
  /** `ok`, or the error code the client got. */
  outcome: z.string(),
  ms: z.number().nonnegative(),
  /** When it ended (ISO time, this host's clock). */
  at: z.string()
})
export type RecentJob = z.infer<typeof recentJobSchema>

export const statusSchema = z.strictObject({
  v: z.literal(STATUS_VERSION),
  status: z.enum(['ok', 'starting', 'stopping']),
  node: z.strictObject({
    peerId: z.string(),
    startedAt: z.string(),
    uptimeS: z.number().nonnegative(),
    /** What the config asked for; each model's plan says what it got. */
    requested: z.strictObject({ device: z.string(), dtype: z.string() }),
    hardware: hardwareSchema.nullable(),
    models: z.array(servedSchema)
  }),
  swarm: z.strictObject({
    connectedPeers: z.number().int().nonnegative(),
    /** Workers with a live advert, this node excluded. */
    peers: z.array(peerSchema)
  }),
  jobs: z.strictObject({
    /** Jobs held now (leased, not answered). */
    inHand: z.number().int(),
    queueDepth: z.number().int().nonnegative(),
    /** Jobs ended since start, by outcome. */
    totals: z.record(z.string(), z.number().int().nonnegative()),
    /** The last jobs this node ran, newest first (a bounded ring). */
    recent: z.array(recentJobSchema)
  })
})
export type StatusDocument = z.infer<typeof statusSchema>
