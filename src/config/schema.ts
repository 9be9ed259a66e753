/**
 * The node's configuration schema: one zod schema, strict (unknown keys are
 * errors), with every default in one place.
 */
import { homedir } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { modelIdSchema } from '../models/catalog.ts'
import { DTYPES } from '../interfaces/index.ts'
import type { ImageLimits } from '../interfaces/index.ts'

const multiaddrSchema = z.string().max(1000).superRefine((s, ctx) => {
  try {
    multiaddr(s)
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a multiaddr (${(err as Error).message}); example: /ip4/127.0.0.1/tcp/4101` })
  }
})

const hostPortSchema = z.string().max(300).regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected HOST:PORT, e.g. 127.0.0.1:8080')
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port must be 0..65535')

/** A libp2p peer id (`12D3KooW...`, or its CID form), kept in its canonical string form. */
export const peerIdSchema = z.string().max(200).transform((s, ctx) => {
  try {
    return peerIdFromString(s.trim()).toString()
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(s.slice(0, 80))} is not a peer id (${(err as Error).message}); a peer id looks like 12D3KooW... (a worker prints its own when it starts)` })
    return z.NEVER
  }
})

export const deviceSchema = z.string().regex(/^(auto|cpu|webgpu|cuda(:\d{1,2})?|tensorrt(:\d{1,2})?)$/, 'expected auto, cpu, cuda, cuda:N, tensorrt, tensorrt:N or webgpu')

export function defaultDataDir (): string {
  return join(homedir(), '.ipfs-accelerate')
}

export const configSchema = z.strictObject({
  dataDir: z.string().min(1).max(4096).default(defaultDataDir),
  listen: z.array(multiaddrSchema).max(32).default(['/ip4/0.0.0.0/tcp/4101']),
  bootstrap: z.array(multiaddrSchema).max(256).default([]),
  mdns: z.boolean().default(true),
  http: z.union([hostPortSchema, z.literal(false)]).default('127.0.0.1:8080'),
  /**
   * The bearer key the OpenAI-compatible `/v1` routes ask for (absent: none;
   * a node that listens beyond loopback without one warns at start).
   */
  apiKey: z.string().min(16, 'at least 16 characters').max(512).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces (it travels in an Authorization header)').optional(),
  /**
   * Model ids to serve; empty: per built skillset, the models.json
   * `onlineDefault` where the store holds it, the hub answers or a trusted
   * peer gives it, else the `offlineDefault` demo model (node/default-models.ts).
   */
  models: z.array(modelIdSchema).max(64).default([]),
  device: deviceSchema.default('auto'),
  /**
   * Weight format; auto: among the model's batch-independent dtypes, the
   * fastest device measured at start-up (scheduler.calibrate) with its first
   * dtype (static int8 on capable CPUs where the model has one, else fp32;
   * fp16 on CUDA). A batch-dependent dtype (q8) only when named here.
   */
  dtype: z.enum(['auto', ...DTYPES] as [string, ...string[]]).default('auto'),
  catalog: z.string().min(1).max(4096).optional(),
  /** A private swarm's key file (swarm.key format): only peers with the same key can connect. */
  swarmKey: z.string().min(1).max(4096).optional(),
  /** Peers whose jobs this worker takes; empty: any peer's. */
  allowPeers: z.array(peerIdSchema).max(4096).default([]),
  /** Peers believed for model manifests by id and asked for cached embeddings; empty: none. */
  trustedPeers: z.array(peerIdSchema).max(4096).default([]),
  scheduler: z.strictObject({
    /** Texts (or other cost units) merged into one inference call at most. */
    maxBatchCost: z.number().int().min(1).max(4096).default(64),
    /** Jobs waiting per model before the node stops bidding. */
    maxQueuedJobs: z.number().int().min(1).max(100_000).default(1024),
    /** Cost units (texts, items) waiting per model before the node stops bidding. */
    maxQueuedCost: z.number().int().min(1).max(10_000_000).default(4096),
    /** A batch running longer than max(this, 20 × its expected time) is declared stuck and its thread replaced. */
    stallMinMs: z.number().int().min(10).max(3_600_000).default(30_000),
    /** Streaming skillsets (lm): KV-cache tokens (prompt + max new tokens) one runner holds at once; jobs past it wait. */
    kvBudgetTokens: z.number().int().min(1).max(100_000_000).default(16_384),
    /** Inference threads per model. */
    threadsPerModel: z.number().int().min(1).max(64).default(1),
    /** At start-up, measure each model on its candidate plans (provider × dtype) and serve the fastest. */
    calibrate: z.boolean().default(true)
  }).prefault({}),
  adverts: z.strictObject({
    /** The shortest gap between adverts that only report load (queued cost, throughput), and between adverts for new subscribers. */
    intervalMs: z.number().int().min(100).max(600_000).default(5000),
    /** An unchanged advert is re-sent about this often (±25 %; longer in a swarm of more than refreshMs/4000 peers: about one advert every 4 s reaches each node); adverts live three refreshes. */
    refreshMs: z.number().int().min(1000).max(1_200_000).default(60_000)
  }).prefault({}),
  store: z.strictObject({
    /** Unpinned cache blocks (embeddings) are kept under this many MB, least recently used evicted first. */
    cacheBudgetMB: z.number().int().min(0).max(10_000_000).default(1024),
    /** Look embed inputs up in this node's and peers' caches before computing. */
    embeddingCache: z.boolean().default(true),
    /** The largest model a pull from peers takes, in MB (its root's claimed size, and what arrives). */
    maxPullMB: z.number().int().min(1).max(100_000_000).default(65_536)
  }).prefault({}),
  /** Images as job inputs (detr, llava-next): refused past these before they are decoded. */
  images: z.strictObject({
    /**
     * Encoded size of one image, in MB. `submit` sends an image over 4 MiB
     * by CID, fetched from the client; the HTTP API takes images inline only,
     * up to 15 MiB or this, whichever is less.
     */
    maxMB: z.number().positive().max(256).default(32),
    /** Width × height of one image, in millions of pixels (a decompression bomb is refused from its header). */
    maxMegapixels: z.number().positive().max(268).default(40),
    /** Width or height of one image, in pixels. */
    maxSide: z.number().int().min(16).max(65_500).default(16_384)
  }).prefault({}),
  /** The stand-in skillset (tests, benchmarks): a batch takes msPerItem × slowdown × items ms on a timer. */
  standIn: z.strictObject({
    msPerItem: z.number().min(0).max(60_000).default(1),
    slowdown: z.number().min(0).max(1_000_000).default(1),
    /** Chance that a batch fails with ERR_INFERENCE. */
    failRate: z.number().min(0).max(1).default(0)
  }).prefault({}),
  logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info')
})

export type NodeConfig = z.infer<typeof configSchema>

/** The image limits a node applies (config `images`), in the form skillsets take. */
export function imageLimits (config: Pick<NodeConfig, 'images'>): ImageLimits {
  return {
    maxBytes: Math.floor(config.images.maxMB * 1024 * 1024),
    maxPixels: Math.floor(config.images.maxMegapixels * 1_000_000),
    maxSide: config.images.maxSide
  }
}
export type ConfigInput = z.input<typeof configSchema>
