/**
 * Planning several models on one host: each placement takes its share of
 * its GPU's free memory, so several GPUs share the load (`placement`,
 * `planAll`), and each fallback is logged once for all the models it
 * affects. One model's candidates come from plan.ts.
 */
import type { ExecutionPlan, ModelEntry, ProviderName } from '../src/interfaces/index.ts'
import type { Logger } from '../src/logger.ts'
import type { HardwareProfile } from './types.ts'
import { estimateGpuMemoryMB, planCandidates } from './plan.ts'
import type { PlanOptions } from './plan.ts'

/** Plans models one after another, each placement taking its share of its GPU's free memory. */
export interface Placement {
  /** The model's candidates, given the memory earlier placements took. */
  candidates(entry: ModelEntry): ExecutionPlan[]
  /** Record where the model runs (a GPU plan takes its estimate off that GPU's free memory). */
  place(entry: ModelEntry, plan: ExecutionPlan): void
}

export function placement (profile: HardwareProfile, opts: PlanOptions = {}): Placement {
  const free = new Map<number, number>(opts.gpuFreeMB ?? [])
  for (const g of profile.gpus) {
    if (g.cudaOrdinal !== undefined && g.memoryFreeMB !== undefined && !free.has(g.cudaOrdinal)) free.set(g.cudaOrdinal, g.memoryFreeMB)
  }
  return {
    candidates: (entry) => planCandidates(entry, profile, { ...opts, gpuFreeMB: free }),
    place: (entry, plan) => {
      if (plan.gpuIndex !== undefined && free.has(plan.gpuIndex)) {
        free.set(plan.gpuIndex, (free.get(plan.gpuIndex) as number) - estimateGpuMemoryMB(entry.sizeMB, plan.dtype))
      }
    }
  }
}

/**
 * Plan every model by the fixed order (no measuring), placing them one
 * after another so that several GPUs share the load.
 */
export function planAll (entries: readonly ModelEntry[], profile: HardwareProfile, opts: PlanOptions & { logger?: Logger } = {}): ExecutionPlan[] {
  const place = placement(profile, opts)
  const plans = entries.map((entry) => {
    const plan = place.candidates(entry)[0] as ExecutionPlan
    place.place(entry, plan)
    return plan
  })
  if (opts.logger !== undefined) logFallbacks(plans, opts.logger)
  return plans
}

/** Each distinct fallback (provider and reason) once, with the models it affects, in first-seen order. */
export function groupFallbacks (plans: readonly ExecutionPlan[]): Array<{ provider: ProviderName, reason: string, models: string[] }> {
  const seen = new Map<string, { provider: ProviderName, reason: string, models: string[] }>()
  for (const plan of plans) {
    for (const f of plan.fallbacks) {
      const key = `${f.provider}\u0000${f.reason}`
      const entry = seen.get(key) ?? { ...f, models: [] }
      entry.models.push(plan.modelId)
      seen.set(key, entry)
    }
  }
  return [...seen.values()]
}

/** Log each distinct fallback once, naming the models it affects. */
export function logFallbacks (plans: readonly ExecutionPlan[], logger: Logger): void {
  for (const f of groupFallbacks(plans)) {
    logger.warn(`${f.provider} not used: ${f.reason}`, { provider: f.provider, models: f.models })
  }
}
