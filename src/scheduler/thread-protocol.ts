/** Messages between the scheduler and an inference thread (structured clone). */
import type { ExecutionPlan, ModelLocation, SkillsetName } from '../interfaces/index.ts'

export interface ThreadInit {
  skillset: SkillsetName
  model: ModelLocation
  plan: ExecutionPlan
  /** Which worker of its InferenceThread this is: 0 first, +1 per restart (the test fault hook fires in 0 only). */
  generation?: number
}

export type ToThread =
  | { type: 'run', id: number, inputs: unknown[] }
  | { type: 'dispose' }

export type FromThread =
  | { type: 'ready', loadMs: number }
  | { type: 'load-error', code: string, message: string }
  | { type: 'result', id: number, outputs: unknown[], runMs: number }
  | { type: 'error', id: number, code: string, message: string }
  | { type: 'disposed' }
