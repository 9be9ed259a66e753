/**
 * The lm runner: many generation jobs share one loaded model with
 * step-level ("continuous") batching. Between two decode steps, jobs join
 * (their prompt is prefilled alone, which also gives their first token) and
 * leave (finished, aborted, or paused by a slow reader). Each step runs one
 * `session.run` per group of rows that can share a batch; a job's cost is
 * its KV-cache tokens, admitted against `kvBudgetTokens`.
 *
 * Exactness (`exact`, the default) by canonical padding: every decode step
 * left-pads each row's cache so that its attention length is a multiple of
 * EXACT_PAD_MULTIPLE, alone or batched; a batch runs at its longest row's
 * canonical length, so a shorter row is padded by a further multiple of
 * EXACT_PAD_MULTIPLE, which changes none of its logits' bits (measured on
 * ONNX Runtime's CPU kernels). So all ready rows share one batch, and a
 * seeded job gives the same tokens alone, beside others, and on another
 * worker with the same CPU kind. Prefill runs each prompt alone, unpadded,
 * in every case. With `exact: false` rows are padded only to the longest
 * cache (no copy while the batch keeps its rows), and logits move in their
 * last bits (≤ 3e-6 measured) with the company a row keeps.
 */
import type { JobContext, StreamingRunner } from '../../src/interfaces/index.ts'
import { InferenceError, InputTooLargeError, JobCancelledError } from '../../src/errors.ts'
import type { LmInput } from './input.ts'
import { lmCost } from './input.ts'
import type { LmOutput, LmPartial } from './codec.ts'
import type { KvView, LoadedLm } from './model.ts'
import { JobRandom, nextToken } from './sampling.ts'
import { StopMatcher } from './stop.ts'
import { canonicalPast, DEFAULT_KV_BUDGET_TOKENS } from './constants.ts'

/** continuous: join between steps; static: a batch runs to its end before the next is admitted; serial: one job at a time. */
export type BatchPolicy = 'continuous' | 'static' | 'serial'

export interface LmRunnerOptions {
  policy?: BatchPolicy
  exact?: boolean
  kvBudgetTokens?: number
}

interface Job {
  input: LmInput
  ctx: JobContext<LmPartial>
  cost: number
  prompt: number[]
  generated: number[]
  rng: JobRandom
  matcher: StopMatcher
  text: string
  /** Cache length, and the token to feed next. */
  n: number
  token: number
  kv: KvView | undefined
  /** The job's last partial, not yet taken by its reader: it sits out steps until then. */
  pending: Promise<void> | undefined
  resolve: (out: LmOutput) => void
  reject: (err: unknown) => void
}

export class LmRunner implements StreamingRunner<LmInput, LmOutput, LmPartial> {
  readonly policy: BatchPolicy
  readonly exact: boolean
  readonly kvBudgetTokens: number
  /** Session runs and rows run, for tests and benchmarks. */
  readonly stats = { runs: 0, rows: 0, prefills: 0 }
  private readonly lm: LoadedLm
  private readonly waiting: Job[] = []
  private readonly active: Job[] = []
  private looping = false
  private wake: (() => void) | undefined
  private disposed = false

  constructor (lm: LoadedLm, options: LmRunnerOptions = {}) {
    this.lm = lm
    this.policy = options.policy ?? 'continuous'
    this.exact = options.exact ?? true
    this.kvBudgetTokens = options.kvBudgetTokens ?? DEFAULT_KV_BUDGET_TOKENS
  }

  async start (input: LmInput, ctx: JobContext<LmPartial>): Promise<LmOutput> {
    if (this.disposed) throw new InferenceError('the lm runner was disposed: start a new one')
    ctx.signal.throwIfAborted()
    const prompt = this.lm.encode(input)
    if (prompt.length === 0) throw new InputTooLargeError('lm input: the prompt has no tokens')
    if (prompt.length + input.maxNewTokens > this.lm.shape.maxPositions) {
      throw new InputTooLargeError(`lm input: ${prompt.length} prompt tokens + ${input.maxNewTokens} new tokens pass the model's ${this.lm.shape.maxPositions} positions: shorten the prompt or lower max_new_tokens`)
    }
    return await new Promise<LmOutput>((resolve, reject) => {
      const job: Job = {
        input, ctx, cost: lmCost(input), prompt, generated: [], rng: new JobRandom(input.seed),
        matcher: new StopMatcher(input.stop, (ids) => this.lm.decode(ids)), text: '',
        n: 0, token: -1, kv: undefined, pending: undefined, resolve, reject
      }
      this.waiting.push(job)
      ctx.signal.addEventListener('abort', () => { this.poke() }, { once: true })
      this.poke()
      if (!this.looping) {
        this.looping = true
        this.loop().catch((err: unknown) => { this.failAll(err) }).finally(() => { this.looping = false })
      }
    })
  }

  async dispose (): Promise<void> {
    if (this.disposed) return
    this.disposed = true
    this.failAll(new InferenceError('the lm runner was disposed while it ran this job (the runner was restarted): retry the job'))
    while (this.looping) await new Promise((resolve) => setImmediate(resolve))
    await this.lm.dispose()
  }

  private poke (): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  private failAll (err: unknown): void {
    for (const job of [...this.waiting.splice(0), ...this.active.splice(0)]) job.reject(err)
  }

  /** Admit waiting jobs the policy and the KV budget allow. */
  private admit (): Job[] {
    const joined: Job[] = []
    if (this.policy === 'static' && this.active.length > 0) return joined
    let used = this.active.reduce((sum, j) => sum + j.cost, 0)
    while (this.waiting.length > 0) {
      const job = this.waiting[0] as Job
      if (this.policy === 'serial' && this.active.length + joined.length > 0) break
      // A job over the whole budget runs, alone.
      if (this.active.length + joined.length > 0 && used + job.cost > this.kvBudgetTokens) break
      this.waiting.shift()
      used += job.cost
      joined.push(job)
    }
    return joined
  }

  private async loop (): Promise<void> {
    while (!this.disposed && this.waiting.length + this.active.length > 0) {
      this.dropAborted()
      const joined = this.admit()
      for (const job of joined) {
        this.active.push(job)
        const { logits, kv } = await this.lm.prefill(job.prompt)
        this.stats.runs++; this.stats.prefills++; this.stats.rows++
        job.kv = kv
        job.n = job.prompt.length
        this.take(job, logits)
      }
      const ready = this.active.filter((j) => j.pending === undefined && !j.ctx.signal.aborted)
      const rows = joined.length > 0 ? ready.filter((j) => !joined.includes(j)) : ready
      if (rows.length > 0) {
        const past = this.exact ? canonicalPast(Math.max(...rows.map((j) => j.n))) : 0
        const results = await this.lm.decode1(rows.map((j) => ({ kv: j.kv as KvView, n: j.n, token: j.token })), past)
        this.stats.runs++; this.stats.rows += rows.length
        rows.forEach((job, i) => {
          const r = results[i] as { logits: Float32Array, kv: KvView }
          job.kv = r.kv
          job.n++
          this.take(job, r.logits)
        })
      }
      await this.settle()
    }
  }

  /** Choose a job's next token from its logits, release its text, emit, and end it when it is done. */
  private take (job: Job, logits: Float32Array): void {
    const seen = job.input.repetitionPenalty === 1 ? [] : [...job.prompt, ...job.generated]
    const id = nextToken(logits, seen, job.input, job.rng)
    job.generated.push(id)
    job.token = id
    let finish: LmOutput['finishReason'] | undefined
    let delta: string
    if (this.lm.eos.has(id)) {
      delta = job.matcher.flush()
      finish = 'stop'
    } else {
      const step = job.matcher.push(id)
      delta = step.delta
      if (step.stopped) finish = 'stop'
      else if (job.generated.length >= job.input.maxNewTokens) { delta += job.matcher.flush(); finish = 'length' }
    }
    job.text += delta
    const emitted = job.ctx.emit({ tokens: [id], text: delta })
    if (finish === undefined) {
      job.pending = emitted.then(() => { job.pending = undefined; this.poke() }, (err: unknown) => { this.end(job); job.reject(err) })
      return
    }
    this.end(job)
    const out: LmOutput = { text: job.text, tokens: job.generated, finishReason: finish }
    emitted.then(() => { job.resolve(out) }, (err: unknown) => { job.reject(err) })
  }

  private end (job: Job): void {
    const i = this.active.indexOf(job)
    if (i !== -1) this.active.splice(i, 1)
    job.kv = undefined
  }

  private dropAborted (): void {
    for (const list of [this.waiting, this.active]) {
      for (const job of list.filter((j) => j.ctx.signal.aborted)) {
        list.splice(list.indexOf(job), 1)
        job.kv = undefined
        const why = job.ctx.signal.reason as unknown
        job.reject(why instanceof Error ? why : new JobCancelledError())
      }
    }
  }

  /**
   * Between steps: let readers that have room take their partials (those
   * settle within this turn), and yield to the thread's messages (cancel,
   * credit). When no job can step, sleep until one can or a job arrives.
   */
  private async settle (): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve))
    const canStep = (): boolean => this.active.some((j) => j.pending === undefined || j.ctx.signal.aborted) || (this.waiting.length > 0 && this.admitPossible())
    while (!this.disposed && this.waiting.length + this.active.length > 0 && !canStep()) {
      await new Promise<void>((resolve) => { this.wake = resolve })
    }
  }

  private admitPossible (): boolean {
    if (this.policy === 'static' || this.policy === 'serial') return this.active.length === 0
    const used = this.active.reduce((sum, j) => sum + j.cost, 0)
    return this.active.length === 0 || used + (this.waiting[0] as Job).cost <= this.kvBudgetTokens
  }
}
