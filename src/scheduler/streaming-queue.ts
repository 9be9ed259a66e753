/**
 * The queue of one streaming model (issue 9: `lm`, `llava-next`): beside
 * ModelQueue, which batches then resolves, this one starts each job on a
 * runner with a JobContext and lets the runner schedule the steps of every
 * job it holds (step-level batching is the runner's business).
 *
 * - Admission by cost: a job's cost is its KV-cache tokens (prompt plus max
 *   new tokens); a runner holds jobs whose summed cost stays within
 *   `budget` (scheduler.kvBudgetTokens). Jobs past it wait, in order, up to
 *   `maxQueuedJobs` / `maxQueuedCost` and their deadline.
 * - Cancellation: the job's signal (client cancel, lease expiry), drain at
 *   shutdown and the watchdog abort the JobContext's signal; the runner stops
 *   at its next step. The job settles at once; its budget is given back when
 *   the runner lets the job go.
 * - Flow control: the runner awaits `ctx.emit`, which resolves when the
 *   job's consumer (the wire's window) has room: a slow reader pauses its job.
 * - Watchdog: a job that makes no progress (no partial) for `stallMs` while
 *   not paused by its consumer fails with ERR_INFERENCE_STALLED; when no job
 *   of its runner progressed either, the runner is restarted (its jobs fail
 *   with ERR_INFERENCE_STALLED too).
 * - A runner that crashes (thread exit) fails its jobs with ERR_INFERENCE
 *   and restarts on its own (InferenceThread).
 *
 * Every time here is monotonic (`performance.now()`).
 */
import { announceReadiness } from './readiness.ts'
import type { JobContext, StreamingSkillset } from '../interfaces/index.ts'
import { errorMessage, InferenceStalledError, JobCancelledError, JobTimeoutError, QueueFullError, ShuttingDownError } from '../errors.ts'
import type { Logger } from '../logger.ts'

/** What a streaming queue runs jobs on: an in-process LocalStreamRunner or an InferenceThread. */
export interface StreamHost {
  readonly ready: boolean
  /** Run one job; partials go through `ctx.emit` (awaited). Resolves with its output when it ends. */
  startJob(input: unknown, ctx: JobContext): Promise<{ output: unknown, runMs: number }>
  /** Replace the runner; its jobs are abandoned (they reject). */
  restart(): Promise<void>
  onReadyChange?: ((ready: boolean) => void) | undefined
}

export interface StreamSubmitOptions {
  /** A waiting job past this (performance.now() ms) fails with ERR_JOB_TIMEOUT; a running one is ended by its signal. */
  deadline: number
  signal?: AbortSignal
  /** Where the job's partials go; resolves when there is room for the next (back-pressure). */
  emit: (partial: unknown) => Promise<void>
}

export interface StreamOutcome {
  output: unknown
  queueMs: number
  runMs: number
  /** Partials the job emitted. */
  partials: number
}

export interface StreamingQueueInit {
  modelId: string
  skillset: StreamingSkillset
  runners: StreamHost[]
  /** Cost (KV-cache tokens) one runner holds at once. */
  budget: number
  maxQueuedJobs: number
  maxQueuedCost: number
  /** A running job with no progress for this long (not paused by its consumer) is stalled. */
  stallMs: number
  onReadyChange?: (ready: boolean) => void
  log: Logger
}

interface StreamJob {
  input: unknown
  cost: number
  enqueuedAt: number
  startedAt: number
  deadline: number
  state: 'queued' | 'running' | 'done'
  controller: AbortController
  opts: StreamSubmitOptions
  host: StreamHost | undefined
  lastProgress: number
  /** Inside emit: waiting on the consumer, so silence is not a stall. */
  paused: boolean
  partials: number
  detach: () => void
  resolve: (o: StreamOutcome) => void
  reject: (e: Error) => void
}

export class StreamingQueue {
  private readonly init: StreamingQueueInit
  private readonly waiting: StreamJob[] = []
  private readonly running = new Set<StreamJob>()
  /** Cost held on each runner (given back when the runner lets a job go, not when the job settles). */
  private readonly held = new Map<StreamHost, number>()
  private readonly lastRunnerProgress = new Map<StreamHost, number>()
  private accepting = true
  private waitingCost = 0
  private wasReady: boolean
  private idleWaiters: Array<() => void> = []
  private readonly ticker: NodeJS.Timeout
  /** Partials emitted and seconds of job time, for the throughput in adverts. */
  private partialsDone = 0
  private busySeconds = 0
  readonly stats = { started: 0, completed: 0, failed: 0, cancelled: 0, stalls: 0, restarts: 0, partials: 0 }

  constructor (init: StreamingQueueInit) {
    this.init = init
    for (const r of init.runners) {
      r.onReadyChange = () => { this.runnerReadyChanged() }
      this.held.set(r, 0)
    }
    this.wasReady = this.ready
    this.ticker = setInterval(() => { this.watch() }, Math.max(10, Math.min(1000, Math.floor(init.stallMs / 4))))
    this.ticker.unref()
  }

  get ready (): boolean { return this.init.runners.some((r) => r.ready) }
  /** Jobs waiting plus jobs running. */
  get depth (): number { return this.waiting.length + this.running.size }
  get queuedCost (): number { return this.waitingCost }
  get runningCost (): number { let n = 0; for (const j of this.running) n += j.cost; return n }
  /** Partials (tokens) per second per job, measured; undefined before the first partial (a job that failed before any gives no rate, not 0). */
  get throughput (): number | undefined { return this.busySeconds > 0 && this.partialsDone > 0 ? this.partialsDone / this.busySeconds : undefined }

  admits (cost: number): boolean {
    return this.accepting && this.ready && cost <= this.init.budget && this.waiting.length < this.init.maxQueuedJobs && this.waitingCost + cost <= this.init.maxQueuedCost
  }

  /** Rough ms until a job of this cost is done: the waiting work, then its own, at the measured rate. */
  estimateMs (cost: number): number | undefined {
    const t = this.throughput
    if (t === undefined) return undefined
    const runners = Math.max(1, this.init.runners.filter((r) => r.ready).length)
    return (this.waitingCost / runners + cost) / t * 1000
  }

  async submit (input: unknown, opts: StreamSubmitOptions): Promise<StreamOutcome> {
    const { modelId, skillset } = this.init
    if (!this.accepting) throw new ShuttingDownError()
    if (opts.signal?.aborted === true) throw new JobCancelledError(`the job for ${modelId} was cancelled before it was queued`)
    const cost = skillset.cost(input)
    if (cost > this.init.budget) throw new QueueFullError(`a job of ${cost} KV-cache tokens is over ${modelId}'s budget of ${this.init.budget} (scheduler.kvBudgetTokens): ask for fewer tokens`)
    if (this.waiting.length >= this.init.maxQueuedJobs) throw new QueueFullError(`the queue of ${modelId} holds ${this.waiting.length} jobs: retry later or add workers`)
    if (this.waitingCost + cost > this.init.maxQueuedCost) throw new QueueFullError(`the queue of ${modelId} holds ${this.waitingCost} cost units, a job of ${cost} more would pass ${this.init.maxQueuedCost}: retry later or add workers`)
    return await new Promise<StreamOutcome>((resolve, reject) => {
      const now = performance.now()
      const job: StreamJob = { input, cost, enqueuedAt: now, startedAt: 0, deadline: opts.deadline, state: 'queued', controller: new AbortController(), opts, host: undefined, lastProgress: now, paused: false, partials: 0, detach: () => {}, resolve, reject }
      const signal = opts.signal
      const onAbort = (): void => {
        const why = signal?.reason instanceof Error ? signal.reason : new JobCancelledError(`the job was cancelled while ${modelId} ran it`)
        this.stats.cancelled++
        this.end(job, { err: why })
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      job.detach = () => { signal?.removeEventListener('abort', onAbort) }
      this.waiting.push(job)
      this.waitingCost += cost
      this.pump()
    })
  }

  /** Settle a job once; a running one has its context aborted, so the runner stops it. */
  private end (job: StreamJob, outcome: { ok: StreamOutcome } | { err: Error }): void {
    if (job.state === 'done') return
    const was = job.state
    job.state = 'done'
    job.detach()
    if (was === 'queued') {
      const i = this.waiting.indexOf(job)
      if (i >= 0) { this.waiting.splice(i, 1); this.waitingCost -= job.cost }
    } else {
      this.running.delete(job)
      this.busySeconds += (performance.now() - job.startedAt) / 1000
      if ('err' in outcome && !job.controller.signal.aborted) job.controller.abort(outcome.err)
    }
    if ('ok' in outcome) { this.stats.completed++; job.resolve(outcome.ok) } else { this.stats.failed++; job.reject(outcome.err) }
    this.checkIdle()
    this.pump()
  }

  /** Start waiting jobs, in order, while a ready runner has budget for the next one. */
  private pump (): void {
    const now = performance.now()
    for (const j of this.waiting.filter((j) => j.deadline <= now)) this.end(j, { err: new JobTimeoutError(`the job waited past its deadline in the queue of ${this.init.modelId}`) })
    while (this.waiting.length > 0) {
      const job = this.waiting[0]!
      const host = this.pickRunner(job.cost)
      if (host === undefined) return
      this.waiting.shift()
      this.waitingCost -= job.cost
      this.startOn(host, job)
    }
  }

  private pickRunner (cost: number): StreamHost | undefined {
    let best: StreamHost | undefined
    for (const r of this.init.runners) {
      const used = this.held.get(r) ?? 0
      if (!r.ready || used + cost > this.init.budget) continue
      if (best === undefined || used < (this.held.get(best) ?? 0)) best = r
    }
    return best
  }

  private startOn (host: StreamHost, job: StreamJob): void {
    const { modelId, log } = this.init
    job.state = 'running'
    job.host = host
    job.startedAt = performance.now()
    job.lastProgress = job.startedAt
    this.running.add(job)
    this.held.set(host, (this.held.get(host) ?? 0) + job.cost)
    this.lastRunnerProgress.set(host, Math.max(this.lastRunnerProgress.get(host) ?? 0, job.startedAt))
    this.stats.started++
    const signal = job.controller.signal
    const ctx: JobContext = {
      signal,
      emit: async (partial: unknown): Promise<void> => {
        if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new JobCancelledError()
        const now = performance.now()
        job.lastProgress = now
        this.lastRunnerProgress.set(host, now)
        job.partials++
        this.partialsDone++
        this.stats.partials++
        job.paused = true
        try {
          await job.opts.emit(partial)
        } finally {
          job.paused = false
          job.lastProgress = performance.now()
        }
        if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new JobCancelledError()
      }
    }
    let run: Promise<{ output: unknown, runMs: number }>
    try {
      run = host.startJob(job.input, ctx)
    } catch (err) {
      run = Promise.reject(err)
    }
    run.then(({ output, runMs }) => {
      this.end(job, { ok: { output, queueMs: job.startedAt - job.enqueuedAt, runMs, partials: job.partials } })
    }, (err: unknown) => {
      if (job.state !== 'done') log.info('streaming job failed', { model: modelId, error: errorMessage(err) })
      this.end(job, { err: err instanceof Error ? err : new Error(errorMessage(err)) })
    }).finally(() => {
      // The runner let the job go: its budget is free again.
      this.held.set(host, Math.max(0, (this.held.get(host) ?? 0) - job.cost))
      this.checkIdle()
      this.pump()
    })
  }

  /** The watchdog: jobs that stopped making progress fail; a runner none of whose jobs progress is replaced. */
  private watch (): void {
    const now = performance.now()
    const { stallMs, modelId, log } = this.init
    const stuckHosts = new Set<StreamHost>()
    for (const job of [...this.running]) {
      if (job.paused || now - job.lastProgress <= stallMs) continue
      this.stats.stalls++
      const host = job.host!
      if (now - (this.lastRunnerProgress.get(host) ?? 0) > stallMs) stuckHosts.add(host)
      log.warn('streaming job stalled: ending it with ERR_INFERENCE_STALLED', { model: modelId, silentMs: Math.round(now - job.lastProgress), partials: job.partials })
      this.end(job, { err: new InferenceStalledError(`a streaming job on ${modelId} made no progress for ${Math.round(now - job.lastProgress)} ms after ${job.partials} partial(s): retry the job, on another worker if need be`) })
    }
    for (const host of stuckHosts) {
      this.stats.restarts++
      log.warn('streaming runner made no progress: replacing it, its jobs fail with ERR_INFERENCE_STALLED', { model: modelId })
      for (const job of [...this.running]) {
        if (job.host === host) this.end(job, { err: new InferenceStalledError(`the runner of ${modelId} stopped making progress and was replaced: retry the job`) })
      }
      this.held.set(host, 0)
      host.restart().then(() => { log.info('streaming runner restarted after a stall', { model: modelId }) }, (e: unknown) => {
        log.error('streaming runner restart failed: it gets no work until it is ready again', { model: modelId, error: errorMessage(e) })
      }).finally(() => { this.pump() })
    }
    if (this.waiting.length > 0) this.pump()
  }

  private runnerReadyChanged (): void {
    const now = this.ready
    if (now !== this.wasReady) {
      this.wasReady = now
      announceReadiness(this.init, now, 'streaming model')
    }
    this.pump()
  }

  private checkIdle (): void {
    if (this.depth !== 0) return
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const w of waiters) w()
  }

  /** Stop taking jobs; let running ones finish (up to graceMs); then end the rest with ERR_SHUTTING_DOWN (their runners are told to stop). */
  async drain (graceMs: number): Promise<void> {
    this.accepting = false
    for (const j of [...this.waiting]) this.end(j, { err: new ShuttingDownError(`the node stopped before ${this.init.modelId} started this job: resubmit it`) })
    if (this.depth > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        new Promise<void>((resolve) => { this.idleWaiters.push(resolve) }),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs) })
      ])
      clearTimeout(timer)
    }
    for (const j of [...this.running]) this.end(j, { err: new ShuttingDownError(`the node stopped while ${this.init.modelId} ran this job: resubmit it`) })
    clearInterval(this.ticker)
  }
}
