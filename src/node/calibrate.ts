/**
 * Start-up calibration: a model with more than one candidate plan (provider
 * × dtype, hardware/plan.ts `planCandidates`) is measured on each device it
 * could run on, and the fastest device serves. A device is measured on its
 * first dtype in the fixed order that runs, and only on that one: that is the
 * dtype it would serve (not the fastest dtype: timing noise must not make
 * nodes differ in dtype, so every node on the same kind of hardware serves
 * the same one and a text's vector is the same whichever node runs it), so
 * devices are compared on what they would actually serve, and the later
 * dtypes of a device cost nothing to start. The candidates are
 * batch-independent by default (the planner leaves the others out), so that
 * vector is also the same alone and in any batch. Each measured candidate
 * gets a runner built the way serving builds it (`createRunner`: an
 * inference thread reading the weights from the content store), runs a
 * warm-up batch and then a few timed batches of the skillset's
 * `sampleInput`, bounded in time; items/s come from the run time the runner
 * reports, as the queue counts it.
 *
 * The devices run in the reverse of the fixed order, so the one that
 * usually serves (the first device) runs last: its runner, loaded and warm,
 * is handed to serving (`Calibration.runner`) instead of being stopped and
 * loaded again. On a host with one device (a CPU-only host) that is one
 * load, the one serving needs anyway. One candidate is loaded at a time, so
 * measuring never holds two copies of a model in memory.
 *
 * Not measured (the first candidate serves, as the fixed order says): when
 * `scheduler.calibrate` is off, for an `inProcess` skillset (no inference to
 * measure) or one without `sampleInput`, and when only one candidate has its
 * weights in the store (a forced `--device`/`--dtype` can leave one; a hub
 * download holds the planned dtype only). A candidate that fails to load or
 * to run is reported with its error and left out, and its device's next
 * dtype is measured instead; when all fail, start-up fails with each reason.
 */
import { getSkillset } from '../../skillsets/index.ts'
import { isStreamingSkillset } from '../interfaces/index.ts'
import { LocalStreamRunner } from '../scheduler/local-stream-runner.ts'
import type { LocalRunner } from '../scheduler/local-runner.ts'
import type { InferenceThread } from '../scheduler/thread.ts'
import type { ExecutionPlan, ModelEntry } from '../interfaces/index.ts'
import { errorMessage, InferenceStalledError, ModelLoadError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import type { NodeConfig } from '../config/schema.ts'
import type { StoredModelLocation } from '../store/models/model-store.ts'
import { createRunner, storedDtypes } from './served-models.ts'

export const DEFAULT_WARMUP_BATCHES = 1
export const DEFAULT_TIMED_BATCHES = 3
export const DEFAULT_BUDGET_MS = 3000
export const DEFAULT_LOAD_TIMEOUT_MS = 120_000
export const DEFAULT_BATCH_TIMEOUT_MS = 30_000

export interface CalibrateOptions {
  /** Untimed batches first (default 1). */
  warmupBatches?: number
  /** Timed batches at most (default 3). */
  timedBatches?: number
  /** Time one candidate's batches may take, warm-up included, loading not (default 3000 ms); one timed batch always runs. */
  budgetMs?: number
  /** Cost units (texts, items) per batch (default `scheduler.maxBatchCost`). */
  batchCost?: number
  /** Longest one candidate may take to load (default 120 000 ms). */
  loadTimeoutMs?: number
  /** Longest one batch may run before its candidate is given up (default 30 000 ms). */
  batchTimeoutMs?: number
  signal?: AbortSignal
  /** The logger the runners get (default: `log`); a runner handed to serving keeps it. */
  runnerLog?: Logger
}

/** One candidate's measurement. */
export interface CandidateFigure {
  plan: ExecutionPlan
  /** Items per second per runner over the timed batches; absent when the candidate failed or was not measured. */
  itemsPerSecond?: number
  /** Timed batches run. */
  batches: number
  loadMs?: number
  /** Why it has no figure (load or run failure). */
  error?: string
  /** Not measured: an earlier dtype of the fixed order ran on its device (that one would serve there). */
  skipped?: true
}

export interface Calibration {
  /** The plan to serve: the fastest measured, with the figures in its reasons; else the first candidate. */
  plan: ExecutionPlan
  /** The served plan's measured items/s per runner; absent when nothing was measured. */
  itemsPerSecond?: number
  figures: CandidateFigure[]
  /** Why nothing was measured. */
  skipped?: string
  /** The served plan's runner, started by the measurement; the caller owns it (serves with it, or stops it). */
  runner?: InferenceThread | LocalRunner
}

/** `cpu q8`, `cuda:0 fp16`. */
export function planLabel (plan: Pick<ExecutionPlan, 'device' | 'dtype'>): string {
  return `${plan.device} ${plan.dtype}`
}

function figureText (f: CandidateFigure): string {
  if (f.skipped === true) return `${planLabel(f.plan)} not measured`
  return f.itemsPerSecond !== undefined ? `${planLabel(f.plan)} ${f.itemsPerSecond.toFixed(1)} items/s` : `${planLabel(f.plan)} failed (${f.error ?? 'no figure'})`
}

async function withTimeout<T> (p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(onTimeout()) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

/** Measure each device on its first dtype that runs and serve the fastest; see the module comment. */
export async function calibrate (entry: ModelEntry, candidates: readonly ExecutionPlan[], location: StoredModelLocation, config: Readonly<NodeConfig>, log: Logger, options: CalibrateOptions = {}): Promise<Calibration> {
  const first = candidates[0]
  if (first === undefined) throw new ModelLoadError(`model ${entry.id}: no plan to run it on`)
  const skillset = getSkillset(entry.skillset)
  const held = new Set(storedDtypes(location))
  const measurable = candidates.filter((c) => held.has(c.dtype))
  const skip = (why: string, plan: ExecutionPlan = first): Calibration => {
    log.debug(`${entry.id}: not measured: ${why}`)
    return { plan, figures: [], skipped: why }
  }
  if (!config.scheduler.calibrate) return skip('scheduler.calibrate is off')
  if (skillset.inProcess === true) return skip(`the ${skillset.name} skillset runs in-process, with no inference to measure`)
  if (isStreamingSkillset(skillset)) return skip(`the ${skillset.name} skillset streams: its throughput is measured on jobs`)
  if (skillset.sampleInput === undefined) return skip(`the ${skillset.name} skillset has no sampleInput`)
  if (measurable.length <= 1) return skip(candidates.length <= 1 ? 'only one candidate plan' : 'only one candidate has its weights in the store', measurable[0] ?? first)

  const batchCost = options.batchCost ?? config.scheduler.maxBatchCost
  const input = skillset.parseInput(skillset.sampleInput(batchCost))
  const items = skillset.cost(input)
  const warmup = options.warmupBatches ?? DEFAULT_WARMUP_BATCHES
  const timed = Math.max(1, options.timedBatches ?? DEFAULT_TIMED_BATCHES)
  const budgetMs = options.budgetMs ?? DEFAULT_BUDGET_MS
  const loadTimeoutMs = options.loadTimeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS
  const batchTimeoutMs = options.batchTimeoutMs ?? DEFAULT_BATCH_TIMEOUT_MS

  /** Measure one candidate; with `keep`, a runner that ran is left started, in `kept`. */
  let kept: { plan: ExecutionPlan, runner: InferenceThread | LocalRunner } | undefined
  const measure = async (plan: ExecutionPlan, keep: boolean): Promise<CandidateFigure> => {
    const runner = createRunner(entry, plan, location, config, options.runnerLog ?? log)
    if (runner instanceof LocalStreamRunner) throw new ModelLoadError(`${entry.id}: a streaming runner cannot be calibrated`)
    const t0 = performance.now()
    let loadMs: number | undefined
    let batches = 0
    try {
      await withTimeout(runner.start(), loadTimeoutMs, () => new ModelLoadError(`${entry.id} did not load on ${planLabel(plan)} within ${loadTimeoutMs} ms`))
      loadMs = performance.now() - t0
      const runBatch = async (): Promise<number> => {
        options.signal?.throwIfAborted()
        const r = await withTimeout(runner.run([input]), batchTimeoutMs, () => new InferenceStalledError(`a calibration batch of ${items} items on ${planLabel(plan)} ran past ${batchTimeoutMs} ms`))
        return r.runMs
      }
      const started = performance.now()
      for (let i = 0; i < warmup; i++) await runBatch()
      let runMs = 0
      while (batches < timed && (batches === 0 || performance.now() - started < budgetMs)) {
        runMs += await runBatch()
        batches++
      }
      const figure = { plan, itemsPerSecond: items * batches / (Math.max(runMs, 1e-3) / 1000), batches, loadMs }
      if (keep) kept = { plan, runner }
      return figure
    } catch (err) {
      if (options.signal?.aborted === true) throw err
      // One line: these go into a log line and the plan's reasons.
      return { plan, batches, ...(loadMs === undefined ? {} : { loadMs }), error: errorMessage(err).replace(/\s+/g, ' ').trim() }
    } finally {
      if (kept?.runner !== runner) await runner.stop()
    }
  }

  const t0 = performance.now()
  // Devices in the fixed order of their first candidate; each with its candidates, in the fixed order.
  const devices = new Map<string, ExecutionPlan[]>()
  for (const c of measurable) devices.set(c.device, [...(devices.get(c.device) ?? []), c])
  const byPlan = new Map<ExecutionPlan, CandidateFigure>()
  try {
    const reversed = [...devices.values()].reverse()
    for (const [i, plans] of reversed.entries()) {
      let ran = false
      for (const plan of plans) {
        if (ran) {
          byPlan.set(plan, { plan, batches: 0, skipped: true })
          continue
        }
        options.signal?.throwIfAborted()
        const f = await measure(plan, i === reversed.length - 1)
        log.debug(`${entry.id}: ${figureText(f)}`, { batches: f.batches, items, loadMs: f.loadMs === undefined ? undefined : Math.round(f.loadMs) })
        byPlan.set(plan, f)
        ran = f.itemsPerSecond !== undefined
      }
    }
    // Reported in the fixed order, whatever order they ran in.
    const figures = measurable.map((p) => byPlan.get(p)!)
    const best = choose(entry, figures)
    const unheld = candidates.filter((c) => !held.has(c.dtype)).map(planLabel)
    const notMeasured = figures.filter((f) => f.skipped === true).map((f) => planLabel(f.plan))
    const ranText = figures.filter((f) => f.skipped !== true).map(figureText).join(', ')
    const summary = `${ranText}${notMeasured.length === 0 ? '' : `; not measured (an earlier dtype ran on that device and would serve there): ${notMeasured.join(', ')}`}${unheld.length === 0 ? '' : `; not measured (weights not in the store): ${unheld.join(', ')}`}`
    const how = `${items} items a batch, ${warmup} warm-up batch${warmup === 1 ? '' : 'es'} then up to ${timed} timed within ${budgetMs} ms, each device on its first dtype that runs`
    const order = best.plan === first ? 'also first in the fixed order' : `the fixed order would have chosen ${planLabel(first)}`
    const plan = { ...best.plan, reasons: [...best.plan.reasons, `measured at start-up (${how}): ${summary}; the fastest device, ${best.plan.device}, serves ${planLabel(best.plan)} (${order})`] }
    log.info(`${entry.id}: measured ${summary}: serving ${planLabel(best.plan)}`, { ms: Math.round(performance.now() - t0) })
    const handed = kept?.plan === best.plan ? kept.runner : undefined
    if (handed !== undefined) kept = undefined // the caller owns it now
    return { plan, itemsPerSecond: best.itemsPerSecond, figures, ...(handed === undefined ? {} : { runner: handed }) }
  } finally {
    await kept?.runner.stop()
  }
}

/** The fastest of the measured candidates (one per device: the first of its dtypes that ran). */
function choose (entry: ModelEntry, figures: readonly CandidateFigure[]): CandidateFigure & { itemsPerSecond: number } {
  const fastest = figures.reduce<CandidateFigure | undefined>((b, f) => f.itemsPerSecond !== undefined && (b?.itemsPerSecond === undefined || f.itemsPerSecond > b.itemsPerSecond) ? f : b, undefined)
  if (fastest?.itemsPerSecond === undefined) {
    throw new ModelLoadError(`model ${entry.id} ran on none of its candidate plans: ${figures.map(figureText).join('; ')}`)
  }
  return fastest as CandidateFigure & { itemsPerSecond: number }
}
