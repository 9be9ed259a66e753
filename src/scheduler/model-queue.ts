/**
 * The queue of one model: jobs wait here, compatible ones are merged into
 * one batch whenever an inference thread is free. There is no batching
 * timer: while the threads are busy, jobs pile up and the next batch takes
 * them all (up to maxBatchCost), so batching costs no latency when idle.
 */
import type { Skillset } from '../interfaces/index.ts'
import { JobTimeoutError, QueueFullError, ShuttingDownError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import type { BatchResult } from './thread.ts'

export interface Runner {
  busy: boolean
  run(inputs: unknown[]): Promise<BatchResult>
}

export interface JobOutcome<O = unknown> {
  output: O
  queueMs: number
  runMs: number
  batchSize: number
}

interface QueuedJob {
  input: unknown
  key: string
  cost: number
  enqueuedAt: number
  deadline: number
  resolve: (o: JobOutcome) => void
  reject: (e: Error) => void
}

export interface ModelQueueInit {
  modelId: string
  skillset: Skillset
  runners: Runner[]
  maxBatchCost: number
  maxQueuedJobs: number
  log: Logger
}

export class ModelQueue {
  private readonly jobs: QueuedJob[] = []
  private readonly init: ModelQueueInit
  private accepting = true
  private running = 0
  private idleWaiters: Array<() => void> = []
  /** Items processed and seconds spent, for the throughput in adverts. */
  processedItems = 0
  busySeconds = 0

  constructor (init: ModelQueueInit) {
    this.init = init
  }

  get depth (): number { return this.jobs.length + this.running }
  get full (): boolean { return this.jobs.length >= this.init.maxQueuedJobs }

  /** Items per second measured so far, or undefined before the first batch. */
  get throughput (): number | undefined {
    return this.busySeconds > 0 ? this.processedItems / this.busySeconds : undefined
  }

  /** Queue a validated input; resolves with its output when its batch ran. */
  async submit (input: unknown, deadline: number): Promise<JobOutcome> {
    if (!this.accepting) throw new ShuttingDownError()
    if (this.full) throw new QueueFullError(`the queue of ${this.init.modelId} holds ${this.jobs.length} jobs: retry later or add workers`)
    const { skillset } = this.init
    return await new Promise<JobOutcome>((resolve, reject) => {
      this.jobs.push({ input, key: skillset.batchKey(input), cost: skillset.cost(input), enqueuedAt: performance.now(), deadline, resolve, reject })
      this.pump()
    })
  }

  private takeBatch (): QueuedJob[] {
    const now = Date.now()
    for (let i = this.jobs.length - 1; i >= 0; i--) {
      const j = this.jobs[i]!
      if (j.deadline <= now) {
        this.jobs.splice(i, 1)
        j.reject(new JobTimeoutError(`the job waited past its deadline in the queue of ${this.init.modelId}`))
      }
    }
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
        if (cost >= this.init.maxBatchCost) break
      } else {
        i++
      }
    }
    return batch
  }

  private pump (): void {
    for (const runner of this.init.runners) {
      if (runner.busy || this.jobs.length === 0) continue
      const batch = this.takeBatch()
      if (batch.length === 0) return
      runner.busy = true
      this.running += batch.length
      const startedAt = performance.now()
      runner.run(batch.map((j) => j.input)).then(({ outputs, runMs }) => {
        const cost = batch.reduce((s, j) => s + j.cost, 0)
        this.processedItems += cost
        this.busySeconds += runMs / 1000
        batch.forEach((j, i) => {
          j.resolve({ output: outputs[i], queueMs: startedAt - j.enqueuedAt, runMs, batchSize: batch.length })
        })
      }, (err: Error) => {
        this.init.log.warn('batch failed', { model: this.init.modelId, jobs: batch.length, error: err.message })
        for (const j of batch) j.reject(err)
      }).finally(() => {
        runner.busy = false
        this.running -= batch.length
        if (this.depth === 0) this.notifyIdle()
        this.pump()
      })
    }
  }

  private notifyIdle (): void {
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
    for (const j of this.jobs.splice(0)) j.reject(new ShuttingDownError(`the node stopped before ${this.init.modelId} ran this job: resubmit it`))
  }
}
