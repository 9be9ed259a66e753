/**
 * Messages between the scheduler and an inference thread (structured clone).
 *
 * Batch skillsets: `run` → `result` | `error`.
 * Streaming skillsets (issue 9): `start` a job → any number of `partial` →
 * `done` | `error`. `cancel` aborts the job's JobContext signal (the runner
 * stops at its next step and the job ends with `error`). Flow control is
 * by credit: a job starts with STREAM_THREAD_CREDITS; each `partial` spends
 * one, and the runner's `emit` waits while the job has none; the main
 * thread sends `credit` once it has handed a partial on (to the job's
 * consumer, whose own window decides when). So a thread holds no unsent
 * partials and the main thread at most STREAM_THREAD_CREDITS per job.
 */
import type { ExecutionPlan, ImageLimits, ModelLocation, SkillsetName } from '../interfaces/index.ts'

/** Partials a streaming job may have in flight from its thread to the main thread. */
export const STREAM_THREAD_CREDITS = 4

export interface ThreadInit {
  skillset: SkillsetName
  model: ModelLocation
  plan: ExecutionPlan
  /** Which worker of its InferenceThread this is: 0 first, +1 per restart (the test fault hook fires in 0 only). */
  generation?: number
  /** What a streaming skillset's loadStreaming gets (structured-cloneable: no nodeConfig). */
  loadOptions?: { kvBudgetTokens?: number, images?: ImageLimits }
}

/**
 * One input of a batch failed on its own (a runner put an Error in its
 * place: a broken image, say): its job fails with this code and message,
 * and the rest of the batch keeps its outputs.
 */
export interface ItemFailure { itemError: { code: string, message: string } }

export function isItemFailure (v: unknown): v is ItemFailure {
  return typeof v === 'object' && v !== null && 'itemError' in v && Object.keys(v).length === 1
}

export type ToThread =
  | { type: 'run', id: number, inputs: unknown[] }
  | { type: 'start', id: number, input: unknown }
  | { type: 'cancel', id: number, code: string, message: string }
  | { type: 'credit', id: number, n: number }
  | { type: 'dispose' }

export type FromThread =
  | { type: 'ready', loadMs: number }
  | { type: 'load-error', code: string, message: string }
  | { type: 'result', id: number, outputs: unknown[], runMs: number }
  | { type: 'partial', id: number, partial: unknown }
  | { type: 'done', id: number, output: unknown, runMs: number }
  | { type: 'error', id: number, code: string, message: string }
  | { type: 'disposed' }
