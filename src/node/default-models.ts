/**
 * What a node serves when `models` names nothing: for each skillset, the
 * real model models.json marks `onlineDefault` where it can be had, else
 * the generated demo model (`offlineDefault`). It can be had when this
 * store already holds it, when the hub answers for its repo (one short,
 * bounded probe per model, run together, its result logged), or when a
 * peer gives it (a pull by id, which believes trusted peers' manifests
 * only). Otherwise the demo model is served, and the node says so once.
 * If the real model then fails to arrive (a download that breaks), the
 * node logs why and serves the demo model for that skillset instead.
 */
import type { ModelEntry, SkillsetName } from '../interfaces/index.ts'
import { errorMessage } from '../errors.ts'
import type { Logger } from '../logger.ts'
import type { ModelCatalog } from '../models/catalog.ts'
import { hubUrl, revisionInfoUrl } from '../models/hub.ts'
import type { ModelStore, StoredModelLocation } from '../store/models/model-store.ts'
import { parseCid } from '../store/blocks/cid.ts'
import { ConfigError } from '../errors.ts'
import type { NodeConfig } from '../config/schema.ts'
import { SKILLSETS } from '../../skillsets/index.ts'
import { pullFromPeers, selectModels } from './served-models.ts'

/** How long the hub may take to answer the probe. */
export const HUB_PROBE_MS = 3000

/** A model to serve, and the demo model to serve instead if it cannot be had. */
export interface ModelChoice { entry: ModelEntry, fallback?: ModelEntry }

/** Whether the hub answers for this model's repo and revision: undefined when it does, else why not. */
export async function probeHub (entry: ModelEntry, timeoutMs = HUB_PROBE_MS): Promise<string | undefined> {
  if (entry.source.kind !== 'hub') return 'not a hub model'
  const url = revisionInfoUrl(entry.source.repo, entry.source.revision ?? 'main')
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' })
    await res.body?.cancel()
    return res.ok ? undefined : `${url} answered HTTP ${res.status}`
  } catch (err) {
    const e = err as Error
    return `${url}: ${e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : errorMessage(e.cause ?? e)}`
  }
}

export interface DefaultsDeps {
  catalog: ModelCatalog
  models: ModelStore
  /** Ask peers for a model by id and fetch it (rejects when none gives it). */
  pullFromPeers: (entry: ModelEntry) => Promise<void>
  probe?: (entry: ModelEntry) => Promise<string | undefined>
  log: Logger
}

async function held (models: ModelStore, id: string): Promise<boolean> {
  const record = await models.find(id)
  return record !== undefined && await models.isWhole(parseCid(record.cid))
}

/** Each built skillset's default model, real where it can be had. */
export async function chooseDefaults (built: readonly SkillsetName[], deps: DefaultsDeps): Promise<ModelChoice[]> {
  const probe = deps.probe ?? probeHub
  const choices = await Promise.all(built.map(async (skillset): Promise<(ModelChoice & { why?: string }) | undefined> => {
    const online = deps.catalog.onlineDefault(skillset)
    const offline = deps.catalog.offlineDefault(skillset)
    if (online === undefined) return offline === undefined ? undefined : { entry: offline }
    const fallback = offline === undefined ? {} : { fallback: offline }
    if (await held(deps.models, online.id)) return { entry: online, ...fallback }
    const why = await probe(online)
    if (why === undefined) {
      deps.log.info(`the model hub answers for ${online.id}: serving it (downloaded once, then shared with peers)`)
      return { entry: online, ...fallback }
    }
    try {
      await deps.pullFromPeers(online)
      return { entry: online, ...fallback }
    } catch (err) {
      deps.log.debug(`no peer gave ${online.id}`, { error: errorMessage(err) })
    }
    return offline === undefined ? undefined : { entry: offline, why }
  }))
  const demos = choices.filter((c) => c?.why !== undefined)
  if (demos.length > 0) {
    deps.log.warn(`no model hub reachable and no peer holds the real models: serving the generated demo models ${demos.map((c) => c!.entry.id).join(', ')} (RANDOM weights)`, { hub: hubUrl(), why: demos[0]!.why })
  }
  return choices.filter((c): c is ModelChoice & { why?: string } => c !== undefined).map(({ entry, fallback }) => ({ entry, ...(fallback === undefined ? {} : { fallback }) }))
}

/**
 * The models a node serves: those `models` names (a model only peers hold
 * is pulled first: bootstrap peers, then any connected), else each built
 * skillset's default (chooseDefaults). Refuses an empty list, and a model
 * whose skillset this version lacks.
 */
export async function chooseModels (cfg: Pick<NodeConfig, 'models' | 'bootstrap'>, catalog: ModelCatalog, models: ModelStore, log: Logger): Promise<ModelChoice[]> {
  for (const id of cfg.models) {
    if (catalog.find(id) !== undefined || await models.find(id) !== undefined) continue
    log.info(`${id} is not in models.json nor in this store: asking peers`)
    await pullFromPeers(models, id, { id, peers: cfg.bootstrap }, log)
  }
  const built = Object.keys(SKILLSETS) as SkillsetName[]
  const chosen: ModelChoice[] = cfg.models.length > 0
    ? (await selectModels(cfg.models, catalog, models, built)).map((entry) => ({ entry }))
    : await chooseDefaults(built, { catalog, models, pullFromPeers: async (e) => { await pullFromPeers(models, e.id, { id: e.id, skillset: e.skillset, peers: cfg.bootstrap }, log) }, log })
  if (chosen.length === 0) throw new ConfigError('no model to serve: list model ids in `models` (config) or --models')
  for (const { entry } of chosen) {
    if (!(entry.skillset in SKILLSETS)) throw new ConfigError(`model ${entry.id} needs the \`${entry.skillset}\` skillset, which this version does not have yet`)
  }
  return chosen
}

/** Make a choice's weights whole; a real default that cannot be had gives way to its demo model, with the reason logged. */
export async function ensureChoice (choice: ModelChoice, ensure: (entry: ModelEntry) => Promise<StoredModelLocation>, log: Logger): Promise<{ entry: ModelEntry, location: StoredModelLocation }> {
  try {
    return { entry: choice.entry, location: await ensure(choice.entry) }
  } catch (err) {
    if (choice.fallback === undefined) throw err
    log.error(`${choice.entry.id}: cannot get it (${errorMessage(err)}): serving the demo model ${choice.fallback.id} instead`)
    return { entry: choice.fallback, location: await ensure(choice.fallback) }
  }
}
