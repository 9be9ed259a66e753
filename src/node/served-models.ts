/**
 * The models a node serves: their files made ready, their inference threads
 * started, one batching queue each.
 */
import { join } from 'node:path'
import { ensureGeneratedModel } from '../models/generate/index.ts'
import { getSkillset } from '../../skillsets/index.ts'
import type { ExecutionPlan, ModelEntry, Skillset, SkillsetName } from '../interfaces/index.ts'
import { ModelNotFoundError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import { ModelQueue } from '../scheduler/model-queue.ts'
import { InferenceThread } from '../scheduler/thread.ts'
import type { NodeConfig } from '../config/schema.ts'

export interface ServedModel {
  entry: ModelEntry
  plan: ExecutionPlan
  skillset: Skillset
  queue: ModelQueue
  threads: InferenceThread[]
  randomWeights: boolean
  loadMs: number
}

export function modelsRoot (dataDir: string): string {
  return join(dataDir, 'models')
}

/** Make the model's files ready on disk; returns transformers.js's localModelPath. */
async function ensureFiles (entry: ModelEntry, dataDir: string, log: Logger): Promise<string> {
  const root = modelsRoot(dataDir)
  if (entry.source.kind === 'generated') {
    let lastStep = ''
    await ensureGeneratedModel(entry, root, {
      onProgress: (p) => {
        if (p.step !== lastStep) log.info(`generating ${entry.id}: ${p.step}`, { detail: p.detail })
        lastStep = p.step
      }
    })
    return root
  }
  throw new ModelNotFoundError(`model ${entry.id} comes from the Hugging Face hub (${entry.source.repo}), and this node has no copy of it: import it with \`ipfs-accelerate models import DIR --id ${entry.id}\` or pull it from a peer with \`ipfs-accelerate models pull ${entry.id}\``)
}

export async function startServedModel (entry: ModelEntry, plan: ExecutionPlan, config: Readonly<NodeConfig>, log: Logger): Promise<ServedModel> {
  const skillset = getSkillset(entry.skillset)
  const localModelPath = await ensureFiles(entry, config.dataDir, log)
  const threads: InferenceThread[] = []
  const t0 = performance.now()
  try {
    for (let i = 0; i < config.scheduler.threadsPerModel; i++) {
      const thread = new InferenceThread({ skillset: entry.skillset, model: { id: entry.id, localModelPath }, plan }, log)
      threads.push(thread)
      await thread.start()
    }
  } catch (err) {
    await Promise.all(threads.map(async (t) => { await t.stop() }))
    throw err
  }
  const queue = new ModelQueue({
    modelId: entry.id,
    skillset,
    runners: threads,
    maxBatchCost: config.scheduler.maxBatchCost,
    maxQueuedJobs: config.scheduler.maxQueuedJobs,
    log
  })
  return { entry, plan, skillset, queue, threads, randomWeights: entry.source.kind === 'generated', loadMs: performance.now() - t0 }
}

/** Which models to serve: the configured ids, else each built skillset's offline default. */
export function selectModels (configured: readonly string[], catalog: { get(id: string): ModelEntry, offlineDefault(s: SkillsetName): ModelEntry | undefined }, built: readonly SkillsetName[]): ModelEntry[] {
  if (configured.length > 0) return configured.map((id) => catalog.get(id))
  return built.map((s) => catalog.offlineDefault(s)).filter((m): m is ModelEntry => m !== undefined)
}
