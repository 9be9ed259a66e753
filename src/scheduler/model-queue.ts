/**
 * The queue of one model: jobs wait here, compatible ones are merged into
 * one batch whenever a runner (inference thread) is free and ready. There is
 * no batching timer: while the runners are busy, jobs pile up and the next
 * batch takes them all (up to maxBatchCost), so batching costs no latency
 * when idle.
 *
 * Every time here is monotonic (`performance.now()`), deadlines included.
 *
 * It survives stuck and crashed inference: each batch runs under a stall
 * watchdog (`stallMs`); a batch that outlives it fails its jobs with
 * ERR_INFERENCE_STALLED, the runner is restarted, and a late result from the
 * stuck run is ignored. Runners that are not `ready` (crashed, restarting)
 * get no work; `onReadyChange` tells the node when the model has no ready
 * runner left, and when it has one again.
 */
import { announceReadiness } from './readiness.ts'
import type { Skillset } from '../interfaces/index.ts'
import { errorMessage, InferenceStalledError, JobCancelledError, JobTimeoutError, QueueFullError, ShuttingDownError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import type { BatchResult, Runner } from './runner.ts'

export interface JobOutcome<O = unknown> {
  output: O
  queueMs: number
  runMs: number
  batchSize: number
}

export interface SubmitOptions {
  /** When the job is no use any more, in ms on the `performance.now()` clock. */
  deadline: number
  /** Aborting removes a waiting job, or fails a running one at once; either way with ERR_JOB_CANCELLED. */
  signal?: AbortSignal
}

export interface QueueStats {
  /** Batches handed to a runner. */
  batches: number
  /** Batches whose run failed (an error from the runner). */
  failedBatches: number
  /** Batches the watchdog declared stuck. */
  stalls: number
  /** Runner restarts the watchdog asked for. */
  restarts: number
}

export const DEFAULT_MAX_QUEUED_COST = 4096
export const DEFAULT_STALL_MIN_MS = 30_000
/** A batch may take this many times its expected run time before it counts as stuck. */
export const STALL_FACTOR = 20

export interface ModelQueueInit {
  modelId: string
  skillset: Skillset
  runners: Runner[]
  maxBatchCost: number
  /** Hard cap on the number of waiting jobs. */
  maxQueuedJobs: number
  /** Cap on the summed cost of waiting jobs (default 4096). */
  maxQueuedCost?: number
  /** Least time a batch may run before the watchdog restarts its runner (default 30 000 ms). */
  stallMinMs?: number
  /** Called when the model goes from >= 1 ready runner to none (false), and back (true). */
  onReadyChange?: (ready: boolean) => void
  /**
   * Items per second per runner measured before any job (start-up
   * calibration): `throughput` until the first batch has run.
   */
  initialThroughput?: number
  log: Logger
}

type JobState = 'queued' | 'running' | 'done'

interface QueuedJob {
  input: unknown
  key: string
  cost: number
  enqueuedAt: number
  deadline: number
  state: JobState
  timer: NodeJS.Timeout | undefined
  detach: () => void
  resolve: (o: JobOutcome) => void
  reject: (e: Error) => void
}

export class ModelQueue {
  private readonly jobs: QueuedJob[] = []
  private readonly init: ModelQueueInit
  private readonly maxQueuedCost: number
  private readonly stallMinMs: number
  private accepting = true
  private running = 0
  private waitingCost = 0
  private inFlightCost = 0
  private wasReady: boolean
  private idleWaiters: Array<() => void> = []
  /** Items processed and seconds spent, for the throughput in adverts. */
  processedItems = 0
  busySeconds = 0
  readonly stats: QueueStats = { batches: 0, failedBatches: 0, stalls: 0, restarts: 0 }

  constructor (init: ModelQueueInit) {
    this.init = init
    this.maxQueuedCost = init.maxQueuedCost ?? DEFAULT_MAX_QUEUED_COST
    this.stallMinMs = init.stallMinMs ?? DEFAULT_STALL_MIN_MS
    for (const r of init.runners) r.onReadyChange = () => { this.runnerReadyChanged() }
    this.wasReady = this.ready
  }

  /** Jobs waiting plus jobs running. */
  get depth (): number { return this.jobs.length + this.running }
  /** Cost of the jobs waiting (not running). */
  get queuedCost (): number { return this.waitingCost }
  /** Cost of the jobs in batches that run now. */
  get runningCost (): number { return this.inFlightCost }
  /** At least one runner can take a batch. */
  get ready (): boolean { return this.init.runners.some((r) => r.ready) }

  /**
   * Items per second per runner: what jobs measured, with the calibrated
   * figure (if any) counted as one more batch of `maxBatchCost` items. So a
   * first small, cold batch (a few items, the per-batch overhead, a busy
   * host) does not make this node look ten times slower than a peer that
   * has run nothing yet and still shows its calibration; as jobs run, what
   * they measured takes over. Undefined with neither.
   */
  get throughput (): number | undefined {
    const calibrated = this.init.initialThroughput
    if (calibrated === undefined || !(calibrated > 0)) return this.busySeconds > 0 ? this.processedItems / this.busySeconds : undefined
    if (this.busySeconds === 0) return calibrated
    const prior = this.init.maxBatchCost
    return (this.processedItems + prior) / (this.busySeconds + prior / calibrated)
  }

  /** Whether a job of this cost should be taken (bid on) now. */
  admits (cost: number): boolean {
    return this.accepting && this.ready && this.jobs.length < this.init.maxQueuedJobs && this.waitingCost + cost <= this.maxQueuedCost
  }

  /**
   * Estimated ms until a new job of this cost would be done: the work ahead
   * of it (waiting, half of what runs) plus its own, at the measured
   * throughput times the ready runners. Undefined before any measurement.
   */
  estimateMs (cost: number): number | undefined {
    const t = this.throughput
    if (t === undefined) return undefined
    const runners = Math.max(1, this.init.runners.filter((r) => r.ready).length)
    return (this.waitingCost + this.inFlightCost / 2 + cost) / (t * runners) * 1000
  }

  /** How long a batch of this cost may run before the watchdog declares it stuck. */
  stallMs (batchCost: number): number {
    const t = this.throughput
    const expectedMs = t === undefined ? 0 : batchCost / t * 1000
    return Math.max(this.stallMinMs, STALL_FACTOR * expectedMs)
  }

  /**
   * Queue a validated input; resolves with its output when its batch ran.
   * Jobs are taken while no runner is ready (they wait for a restart, up to
   * their deadline); callers that bid should ask `admits(cost)` first.
   */
  async submit (input: unknown, opts: SubmitOptions): Promise<JobOutcome> {
    if (!this.accepting) throw new ShuttingDownError()
    const { modelId } = this.init
    if (opts.signal?.aborted === true) throw new JobCancelledError(`the job for ${modelId} was cancelled before it was queued`)
    const { skillset } = this.init
    const cost = skillset.cost(input)
    if (this.jobs.length >= this.init.maxQueuedJobs) throw new QueueFullError(`the queue of ${modelId} holds ${this.jobs.length} jobs: retry later or add workers`)
    if (this.waitingCost + cost > this.maxQueuedCost) throw new QueueFullError(`the queue of ${modelId} holds ${this.waitingCost} cost units, a job of ${cost} more would pass ${this.maxQueuedCost}: retry later or add workers`)
    const signal = opts.signal
    return await new Promise<JobOutcome>((resolve, reject) => {
      const job: QueuedJob = { input, key: skillset.batchKey(input), cost, enqueuedAt: performance.now(), deadline: opts.deadline, state: 'queued', timer: undefined, detach: () => {}, resolve, reject }
      const onAbort = (): void => { this.cancel(job) }
      signal?.addEventListener('abort', onAbort, { once: true })
      job.detach = () => { signal?.removeEventListener('abort', onAbort) }
      job.timer = setTimeout(() => { this.expire(job) }, Math.max(0, opts.deadline - performance.now()))
      this.jobs.push(job)
      this.waitingCost += cost
      this.pump()
    })
  }

  /** Settle a job once: later results for it (a cancelled or stalled job) are dropped. */
  private settle (job: QueuedJob, outcome: { ok: JobOutcome } | { err: Error }): void {
    if (job.state === 'done') return
    job.state = 'done'
    clearTimeout(job.timer)
    job.detach()
    if ('ok' in outcome) job.resolve(outcome.ok)
    else job.reject(outcome.err)
  }

  private unqueue (job: QueuedJob): void {
    const i = this.jobs.indexOf(job)
    if (i < 0) return
    this.jobs.splice(i, 1)
    this.waitingCost -= job.cost
  }

  private cancel (job: QueuedJob): void {
    if (job.state === 'queued') {
      this.unqueue(job)
      this.settle(job, { err: new JobCancelledError(`the job was cancelled while it waited in the queue of ${this.init.modelId}`) })
      this.checkIdle()
    } else if (job.state === 'running') {
      // Its batch goes on (the runner cannot be interrupted); its result will be dropped.
      this.settle(job, { err: new JobCancelledError(`the job was cancelled while ${this.init.modelId} ran it`) })
    }
  }

  private expire (job: QueuedJob): void {
    if (job.state !== 'queued') return
    this.unqueue(job)
    this.settle(job, { err: new JobTimeoutError(`the job waited past its deadline in the queue of ${this.init.modelId}`) })
    this.checkIdle()
  }

  private takeBatch (): QueuedJob[] {
    const now = performance.now()
    for (const j of this.jobs.filter((j) => j.deadline <= now)) this.expire(j)
    const head = this.jobs[0]
    if (head === undefined) return []
    const batch: QueuedJob[] = []
    let cost = 0
    for (let i = 0; i < this.jobs.length;) {
      const j = this.jobs[i]!
      if (j.key === head.key && (batch.length === 0 || cost + j.cost <= this.init.maxBatchCost)) {
        batch.push(j)
        cost += j.cost
        this.jobs.splice(i, 1)
        this.waitingCost -= j.cost
        if (cost >= this.init.maxBatchCost) break
      } else {
        i++
      }
    }
    return batch
  }

  private pump (): void {
    for (const runner of this.init.runners) {
      if (this.jobs.length === 0) return
      if (runner.busy || !runner.ready) continue
      const batch = this.takeBatch()
      if (batch.length === 0) return
      this.runBatch(runner, batch)
    }
  }

  private runBatch (runner: Runner, batch: QueuedJob[]): void {
    const { modelId, log } = this.init
    const cost = batch.reduce((s, j) => s + j.cost, 0)
    runner.busy = true
    this.running += batch.length
    this.inFlightCost += cost
    this.stats.batches++
    for (const j of batch) {
      j.state = 'running'
      clearTimeout(j.timer)
    }
    const startedAt = performance.now()
    const limitMs = this.stallMs(cost)
    let over = false
    // The first of result, error and watchdog ends the batch; the others find `over` set.
    const end = (): boolean => {
      if (over) return false
      over = true
      clearTimeout(watchdog)
      this.running -= batch.length
      this.inFlightCost -= cost
      return true
    }
    const watchdog = setTimeout(() => {
      if (!end()) return
      this.stats.stalls++
      this.stats.restarts++
      log.warn('inference stalled: replacing the runner, its jobs fail with ERR_INFERENCE_STALLED', { model: modelId, jobs: batch.length, cost, limitMs: Math.round(limitMs) })
      const err = new InferenceStalledError(`a batch of ${batch.length} jobs on ${modelId} ran past ${Math.round(limitMs)} ms: the worker replaced its inference thread; retry the job, on another worker if need be`)
      for (const j of batch) this.settle(j, { err })
      // The runner stays busy until its restart settles, so no batch lands on it half-way.
      runner.restart().then(() => {
        log.info('runner restarted after a stall', { model: modelId, ready: runner.ready })
      }, (e: unknown) => {
        log.error('runner restart after a stall failed: it gets no work until it is ready again', { model: modelId, error: errorMessage(e) })
      }).finally(() => {
        runner.busy = false
        this.checkIdle()
        this.pump()
      })
    }, limitMs)
    let run: Promise<BatchResult>
    try {
      run = runner.run(batch.map((j) => j.input))
    } catch (err) {
      run = Promise.reject(err)
    }
    run.then(({ outputs, runMs }) => {
      if (!end()) return
      this.processedItems += cost
      this.busySeconds += runMs / 1000
      batch.forEach((j, i) => {
        const output = outputs[i]
        // A runner may fail one input of a batch (a broken image) and keep the others.
        if (output instanceof Error) this.settle(j, { err: output })
        else this.settle(j, { ok: { output, queueMs: startedAt - j.enqueuedAt, runMs, batchSize: batch.length } })
      })
      this.afterBatch(runner)
    }, (err: unknown) => {
      if (!end()) return
      this.stats.failedBatches++
      log.warn('batch failed', { model: modelId, jobs: batch.length, error: errorMessage(err) })
      const e = err instanceof Error ? err : new Error(errorMessage(err))
      for (const j of batch) this.settle(j, { err: e })
      this.afterBatch(runner)
    })
  }

  private afterBatch (runner: Runner): void {
    runner.busy = false
    this.checkIdle()
    this.pump()
  }

  /** A runner's `ready` changed: tell the node when the model's readiness flips, and hand out work. */
  private runnerReadyChanged (): void {
    const now = this.ready
    if (now !== this.wasReady) {
      this.wasReady = now
      announceReadiness(this.init, now, 'model', !this.accepting)
    }
    this.pump()
  }

  private checkIdle (): void {
    if (this.depth !== 0) return
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const w of waiters) w()
  }

  /** Stop taking jobs, let queued and running ones finish (up to graceMs), fail the rest. */
  async drain (graceMs: number): Promise<void> {
    this.accepting = false
    if (this.depth === 0) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>((resolve) => { this.idleWaiters.push(resolve) }),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs) })
    ])
    clearTimeout(timer)
    const left = this.jobs.splice(0)
    this.waitingCost = 0
    for (const j of left) this.settle(j, { err: new ShuttingDownError(`the node stopped before ${this.init.modelId} ran this job: resubmit it`) })
  }
}
