/**
 * The generated detr and llava-next models run in this process, for tests
 * that compare what the swarm (or the HTTP gateway) answers with a direct
 * run: written from the catalog into a temporary folder, loaded on the CPU
 * in fp32 with the default image limits.
 */
import { rm } from 'node:fs/promises'
import { loadCatalog } from '../../src/models/catalog.ts'
import { ensureGeneratedModel } from '../../src/models/generate/index.ts'
import type { ExecutionPlan, SkillsetRunner, StreamingRunner } from '../../src/interfaces/index.ts'
import { getBatchSkillset, getStreamingSkillset } from '../../skillsets/index.ts'
import { DEFAULT_IMAGE_LIMITS } from '../../skillsets/image/index.ts'
import { tempDir } from './procs.ts'

export const DETR = 'demo/detr-random'
export const LLAVA = 'demo/llava-next-random'

export interface DirectImageModels {
  detrRunner: SkillsetRunner
  llavaRunner: StreamingRunner
  stop(): Promise<void>
}

export async function loadDirectImageModels (): Promise<DirectImageModels> {
  const root = await tempDir('ia-images-direct-')
  const catalog = await loadCatalog()
  for (const id of [DETR, LLAVA]) await ensureGeneratedModel(catalog.get(id), root)
  const plan = (id: string): ExecutionPlan => ({ modelId: id, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] })
  const detrRunner = await getBatchSkillset('detr').load({ id: DETR, localModelPath: root }, plan(DETR), { images: DEFAULT_IMAGE_LIMITS })
  const llavaRunner = await getStreamingSkillset('llava-next').loadStreaming({ id: LLAVA, localModelPath: root }, plan(LLAVA), { images: DEFAULT_IMAGE_LIMITS })
  return {
    detrRunner,
    llavaRunner,
    stop: async () => {
      await detrRunner.dispose()
      await llavaRunner.dispose()
      await rm(root, { recursive: true, force: true })
    }
  }
}
