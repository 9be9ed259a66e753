/**
 * The models a node serves: their weights made ready in the content store
 * (already there, pulled from peers, generated and imported, or downloaded
 * from the hub once and imported), their
 * inference threads started with files read from the store, one batching
 * queue each.
 */
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { ensureGeneratedModel } from '../models/generate/index.ts'
import { downloadFromHub } from '../models/hub.ts'
import { dtypesOffered } from '../models/onnx-files.ts'
import { getSkillset } from '../../skillsets/index.ts'
import { isStreamingSkillset } from '../interfaces/index.ts'
import type { AnySkillset, Dtype, ExecutionPlan, ModelEntry, SkillsetName } from '../interfaces/index.ts'
import { ConfigError, ModelIntegrityError, ModelNotFoundError, errorMessage } from '../errors.ts'
import type { Logger } from '../logger.ts'
import type { ModelCatalog } from '../models/catalog.ts'
import { ModelQueue } from '../scheduler/model-queue.ts'
import { InferenceThread } from '../scheduler/thread.ts'
import { LocalRunner } from '../scheduler/local-runner.ts'
import { LocalStreamRunner } from '../scheduler/local-stream-runner.ts'
import { StreamingQueue } from '../scheduler/streaming-queue.ts'
import type { NodeConfig } from '../config/schema.ts'
import { imageLimits } from '../config/schema.ts'
import type { ModelStore, StoredModelLocation } from '../store/models/model-store.ts'
import type { ModelRecord } from '../store/models/records.ts'
import { parseCid } from '../store/blocks/cid.ts'
import { openModelReader } from '../store/models/reader.ts'
import { folderCid } from '../store/models/files.ts'

export interface ServedModel {
  entry: ModelEntry
  plan: ExecutionPlan
  skillset: AnySkillset
  /** A batching queue, or for a streaming skillset a StreamingQueue (jobs admitted by KV-cache tokens). */
  queue: ModelQueue | StreamingQueue
  /** One runner per `scheduler.threadsPerModel`: inference threads, or main-thread runners for `inProcess` skillsets. */
  threads: Array<InferenceThread | LocalRunner | LocalStreamRunner>
  /** Root CID of the weights in the content store. */
  cid: string
  randomWeights: boolean
  loadMs: number
  /** An embed model's vector width, from its config.json (what cached vectors are checked against); undefined: no cache for it. */
  embedDims?: number
}

/** Weight formats whose files the stored model holds, for every session (a hub download holds the planned one only). */
export function storedDtypes (location: Pick<StoredModelLocation, 'files'>): Dtype[] {
  return dtypesOffered(location.files.map((f) => f.path))
}

/**
 * Refuse a stored model that holds none of the planned dtypes' weights (a
 * copy pulled from a peer, or downloaded for another plan), with what to do:
 * the plan would otherwise fail at load with a missing-file error.
 */
export function requirePlannedWeights (entry: ModelEntry, location: Pick<StoredModelLocation, 'files'>, planned: readonly Dtype[]): void {
  const held = storedDtypes(location)
  if (planned.some((d) => held.includes(d))) return
  throw new ModelNotFoundError(`the stored copy of ${entry.id} holds ${held.join(', ') || 'no'} weights, and this host plans ${planned.join(' or ')}: start with --dtype ${held[0] ?? 'D'}, or pull the model from a peer that holds the ${planned[0] ?? ''} files`)
}

/** A catalog-like entry for a model that exists only in the store (imported or pulled under its own id). */
export function entryFromRecord (r: ModelRecord): ModelEntry {
  if (r.skillset === undefined) throw new ConfigError(`model ${r.id} in the store has no skillset: import it again with --skillset`)
  const dtypes = storedDtypes(r)
  if (dtypes.length === 0) throw new ConfigError(`model ${r.id} in the store has no ONNX weights (onnx/*.onnx) for all of its sessions`)
  const bytes = r.files.reduce((s, f) => s + f.size, 0)
  return { id: r.id, skillset: r.skillset, source: { kind: 'hub', repo: r.id }, dtypes, sizeMB: Math.max(1, Math.round(bytes / 1e6)), cid: r.cid }
}

/** Which models to serve: the configured ids (catalog, else the store), else each built skillset's offline default. */
export async function selectModels (configured: readonly string[], catalog: ModelCatalog, models: ModelStore, built: readonly SkillsetName[]): Promise<ModelEntry[]> {
  if (configured.length === 0) return built.map((s) => catalog.offlineDefault(s)).filter((m): m is ModelEntry => m !== undefined)
  return await Promise.all(configured.map(async (id) => {
    const known = catalog.find(id)
    if (known !== undefined) return known
    const record = await models.find(id)
    if (record === undefined) throw new ModelNotFoundError(`unknown model "${id}": not in models.json (${catalog.models.map((m) => m.id).join(', ')}) nor in this node's store: import it with \`ipfs-accelerate models import DIR --id ${id} --skillset S\` or pull it with \`models pull\``)
    return entryFromRecord(record)
  }))
}

export interface EnsureContext {
  models: ModelStore
  dataDir: string
  /** Peers to ask first for weights this node lacks (bootstrap addresses). */
  peers: string[]
  /** The planned dtype: the one ONNX file a hub download fetches. */
  dtype: Dtype
  log: Logger
}

/**
 * Make a model's weights whole in the store and return where they are:
 * already here (at the CID models.json pins, where it pins one) → pull from
 * peers (by CID, or by id) → for a generated model, generate it, check it
 * is the pinned CID (every host generates the same bytes) and import it →
 * for a hub model, download it from the hub once and import it.
 */
export async function ensureModel (entry: ModelEntry, ctx: EnsureContext): Promise<StoredModelLocation> {
  const { models, log } = ctx
  const record = await models.find(entry.id)
  const pinMismatch = record !== undefined && entry.cid !== undefined && record.cid !== entry.cid
  if (pinMismatch) log.warn(`${entry.id}: this store holds it as ${record.cid}, but models.json pins ${entry.cid}; taking the pinned one`)
  if (record !== undefined && !pinMismatch && await models.isWhole(parseCid(record.cid))) return await models.locate(entry.id)
  const ref = entry.cid ?? entry.id
  let pullError: unknown
  if (entry.source.kind !== 'generated' || entry.cid !== undefined) {
    try {
      await pullFromPeers(models, ref, { id: entry.id, skillset: entry.skillset, peers: ctx.peers }, log)
      return await models.locate(entry.id)
    } catch (err) {
      pullError = err
      log.info(`${entry.id}: no peer could give it`, { error: errorMessage(err) })
    }
  }
  if (entry.source.kind === 'generated') {
    const staging = join(ctx.dataDir, 'staging')
    await mkdir(staging, { recursive: true })
    let lastStep = ''
    const dir = await ensureGeneratedModel(entry, staging, {
      onProgress: (p) => {
        if (p.step !== lastStep) log.info(`generating ${entry.id}: ${p.step}`, { detail: p.detail })
        lastStep = p.step
      }
    })
    if (entry.cid !== undefined) {
      const cid = (await folderCid(dir)).toString()
      if (cid !== entry.cid) {
        await rm(dir, { recursive: true, force: true })
        throw new ModelIntegrityError(`${entry.id}: this build generates ${cid}, but models.json pins ${entry.cid}: the generator changed without models.json (\`ipfs-accelerate models generate --json\` prints the CIDs to pin), or this models.json belongs to another version`)
      }
    }
    const imported = await models.importDir(dir, { id: entry.id, skillset: entry.skillset })
    await rm(dir, { recursive: true, force: true })
    log.info(`${entry.id} generated and imported`, { cid: imported.cid })
    return await models.locate(entry.id)
  }
  // No peer has it: download it from the hub once; from then on this node is a source for its peers.
  const staging = join(ctx.dataDir, 'staging', `hub-${process.pid}`)
  try {
    log.info(`${entry.id}: no peer holds it, downloading it from the hub once`, { repo: entry.source.repo, dtype: ctx.dtype })
    const got = await downloadFromHub({
      repo: entry.source.repo,
      ...(entry.source.revision === undefined ? {} : { revision: entry.source.revision }),
      dtype: ctx.dtype,
      skillset: entry.skillset,
      dest: join(staging, entry.id),
      onProgress: progressLog(log, (p) => `downloading ${entry.id} ${p.file}`)
    })
    if (entry.source.revision === undefined) log.warn(`${entry.id}: models.json names no revision, so the hub's main branch was taken; pin it with "revision": "${got.revision}"`)
    const imported = await models.importDir(got.dir, { id: entry.id, skillset: entry.skillset, hub: { repo: entry.source.repo, revision: got.revision } })
    log.info(`${entry.id} downloaded from the hub and imported`, { cid: imported.cid, revision: got.revision, files: got.files.length })
    return await models.locate(entry.id)
  } catch (err) {
    throw new ModelNotFoundError(`model ${entry.id} is not in this node's store, no peer gave it (${errorMessage(pullError)}), and the hub download failed (${errorMessage(err)}): on a host that has it, run \`ipfs-accelerate models import DIR --id ${entry.id} --skillset ${entry.skillset}\`, then start this node with --bootstrap to that host`, { cause: err })
  } finally {
    await rm(staging, { recursive: true, force: true })
  }
}

/** A progress callback that logs every 32 MB: `what` names the transfer. */
function progressLog<P extends { bytes: number, totalBytes?: number }> (log: Logger, what: (p: P) => string): (p: P) => void {
  let last = 0
  return (p) => {
    if (p.bytes - last < 32 * 1024 * 1024) return
    last = p.bytes
    log.info(`${what(p)}: ${(p.bytes / 1e6).toFixed(0)}${p.totalBytes === undefined ? '' : ` of ${(p.totalBytes / 1e6).toFixed(0)}`} MB`)
  }
}

/** Fetch a model from peers into the store (nothing when it is whole already), logging progress and the outcome. */
export async function pullFromPeers (models: ModelStore, ref: string, options: { id: string, skillset?: SkillsetName, peers: string[] }, log: Logger): Promise<void> {
  const res = await models.pull(ref, { ...options, onProgress: progressLog(log, () => `fetching ${options.id}`) })
  log.info(`${options.id} fetched from peers`, { cid: res.record.cid, MB: (res.fetched.bytes / 1e6).toFixed(1), ms: res.fetched.totalMs, via: res.fetched.via })
}

export interface ServedModelHooks {
  /** The model lost its last ready runner (false: drop it from adverts, stop bidding), or has one again (true). */
  onReadyChange?: (ready: boolean) => void
  /** Items/s per runner measured at start-up (calibration): the queue's throughput until jobs have run. */
  initialThroughput?: number
  /** A runner of this plan already started (by calibration): serves as the first of `threadsPerModel`. */
  started?: InferenceThread | LocalRunner
}

/**
 * One runner of a model on a plan, not started: an inference thread reading
 * the weights from the content store, or a main-thread runner for an
 * `inProcess` skillset. Serving and start-up calibration both build theirs here.
 */
export function createRunner (entry: ModelEntry, plan: ExecutionPlan, location: StoredModelLocation, config: Readonly<NodeConfig>, log: Logger): InferenceThread | LocalRunner | LocalStreamRunner {
  const skillset = getSkillset(entry.skillset)
  // transformers.js reads every file through the store's reader; the local path stays empty.
  const localModelPath = join(config.dataDir, 'store', 'no-local-files')
  const model = { id: entry.id, localModelPath, store: { blocksDir: location.blocksDir, cid: location.cid, files: location.files } }
  const images = skillset.images === undefined ? {} : { images: imageLimits(config) }
  if (skillset.inProcess !== true) return new InferenceThread({ skillset: entry.skillset, model, plan, loadOptions: { ...(isStreamingSkillset(skillset) ? { kvBudgetTokens: config.scheduler.kvBudgetTokens } : {}), ...images } }, log)
  return isStreamingSkillset(skillset)
    ? new LocalStreamRunner({ skillset, model, plan, loadOptions: { nodeConfig: config, kvBudgetTokens: config.scheduler.kvBudgetTokens }, log })
    : new LocalRunner({ skillset, model, plan, loadOptions: { nodeConfig: config }, log })
}

/**
 * Start a model's runners (inference threads, or main-thread runners for an
 * `inProcess` skillset) and its queue. Threads that crash restart on their
 * own; the queue's watchdog restarts a stuck one.
 */
export async function startServedModel (entry: ModelEntry, plan: ExecutionPlan, location: StoredModelLocation, config: Readonly<NodeConfig>, log: Logger, hooks: ServedModelHooks = {}): Promise<ServedModel> {
  const skillset = getSkillset(entry.skillset)
  const threads: Array<InferenceThread | LocalRunner | LocalStreamRunner> = []
  const t0 = performance.now()
  if (hooks.started !== undefined) threads.push(hooks.started)
  try {
    for (let i = threads.length; i < config.scheduler.threadsPerModel; i++) {
      const runner = createRunner(entry, plan, location, config, log)
      threads.push(runner)
      await runner.start()
    }
  } catch (err) {
    await Promise.all(threads.map(async (t) => { await t.stop() }))
    throw err
  }
  const onReady = hooks.onReadyChange === undefined ? {} : { onReadyChange: hooks.onReadyChange }
  const queue = isStreamingSkillset(skillset)
    ? new StreamingQueue({
      modelId: entry.id,
      skillset,
      runners: threads.filter((t): t is InferenceThread | LocalStreamRunner => !(t instanceof LocalRunner)),
      budget: config.scheduler.kvBudgetTokens,
      maxQueuedJobs: config.scheduler.maxQueuedJobs,
      maxQueuedCost: config.scheduler.maxQueuedCost,
      stallMs: config.scheduler.stallMinMs,
      ...onReady,
      log
    })
    : new ModelQueue({
    modelId: entry.id,
    skillset,
    runners: threads.filter((t): t is InferenceThread | LocalRunner => !(t instanceof LocalStreamRunner)),
    maxBatchCost: config.scheduler.maxBatchCost,
    maxQueuedJobs: config.scheduler.maxQueuedJobs,
    maxQueuedCost: config.scheduler.maxQueuedCost,
    stallMinMs: config.scheduler.stallMinMs,
    ...onReady,
    ...(hooks.initialThroughput === undefined ? {} : { initialThroughput: hooks.initialThroughput }),
    log
  })
  // The stand-in's generated folder holds no weights at all: the generated BERTs and LMs have random ones.
  const randomWeights = entry.source.kind === 'generated' && entry.source.generator !== 'stand-in'
  const embedDims = entry.skillset === 'embed' ? await embeddingWidth(entry, location, log) : undefined
  return { entry, plan, skillset, queue, threads, cid: location.cid, randomWeights, loadMs: performance.now() - t0, ...(embedDims === undefined ? {} : { embedDims }) }
}

/** config.json keys that name a transformer's hidden width, in the order models use them. */
const WIDTH_KEYS = ['hidden_size', 'd_model', 'dim', 'n_embd'] as const

/** An embedding model's vector width from its config.json, read (and verified) from the store; undefined, logged, when it names none. */
async function embeddingWidth (entry: ModelEntry, location: StoredModelLocation, log: Logger): Promise<number | undefined> {
  const reader = await openModelReader({ blocksDir: location.blocksDir, root: location.cid, id: entry.id, files: location.files })
  const info = await reader.stat('config.json')
  if (info === undefined || info.size > 1024 * 1024) {
    log.warn(`${entry.id}: no config.json of at most 1 MiB, so its vector width is unknown and its embeddings are not cached`)
    return undefined
  }
  let config: Record<string, unknown>
  try {
    config = JSON.parse(Buffer.from(await reader.readFile('config.json')).toString('utf8')) as Record<string, unknown>
  } catch (err) {
    throw new ModelNotFoundError(`${entry.id}: its config.json is not JSON (${errorMessage(err)}): re-import the model`, { cause: err })
  }
  for (const k of WIDTH_KEYS) {
    const v = config[k]
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v
  }
  log.warn(`${entry.id}: its config.json names no hidden width (${WIDTH_KEYS.join(', ')}), so its embeddings are not cached`)
  return undefined
}
