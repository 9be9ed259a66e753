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
 *
 * What a job generates from is the runner's PromptSource: for `lm` its
 * prompt's ids (textPrompts); for `llava-next` the ids with the image's
 * features in place of its `<image>` tokens, prepared (image decoded,
 * tiled) before the job queues and prefilled together with the jobs that
 * join at the same step (one vision-encoder run for all their tiles).
 * Decode steps are the same for both.
 */
import type { JobContext, StreamingRunner } from '../../src/interfaces/index.ts'
import { InferenceError, InputTooLargeError, JobCancelledError } from '../../src/errors.ts'
import type { LmInput } from './input.ts'
import { lmCost } from './input.ts'
import type { LmOutput, LmPartial } from './codec.ts'
import type { KvView, LoadedLm } from './model.ts'
import { JobRandom, nextToken } from './sampling.ts'
import { StopMatcher } from './stop.ts'
import { canonicalPast, DEFAULT_KV_BUDGET_TOKENS, GATHER_MS } from './constants.ts'

/** continuous: join between steps; static: a batch runs to its end before the next is admitted; serial: one job at a time. */
export type BatchPolicy = 'continuous' | 'static' | 'serial'

export interface LmRunnerOptions {
  policy?: BatchPolicy
  exact?: boolean
  kvBudgetTokens?: number
}

/** What sampling and stopping read from a job's input. */
export type GenerationParams = Omit<LmInput, 'prompt' | 'messages'>

/** A job's prompt as the runner holds it: the ids its cache will hold, its cost, and what the source needs to prefill it. */
export interface PreparedPrompt<S = unknown> {
  /** One id per cache position (for an image: the image token, repeated once per feature). */
  ids: number[]
  /** KV-cache tokens, admitted against the runner's budget. */
  cost: number
  state: S
}

/** Where a job's prompt comes from: prepared when the job starts (errors reject that job only), prefilled when it joins. */
export interface PromptSource<I extends GenerationParams, S = unknown> {
  prepare(input: I, signal: AbortSignal): Promise<PreparedPrompt<S>>
  /** The prompts of the jobs that join at one step: each one's last logits and cache, in order. */
  prefill(prompts: ReadonlyArray<PreparedPrompt<S>>): Promise<Array<{ logits: Float32Array, kv: KvView }>>
}

/** The lm's prompts: text (or chat messages) through the tokenizer, prefilled one by one. */
export function textPrompts (lm: LoadedLm): PromptSource<LmInput, undefined> {
  return {
    prepare: async (input) => {
      const ids = lm.encode(input)
      if (ids.length === 0) throw new InputTooLargeError('lm input: the prompt has no tokens')
      return { ids, cost: lmCost(input), state: undefined }
    },
    prefill: async (prompts) => {
      const out: Array<{ logits: Float32Array, kv: KvView }> = []
      for (const p of prompts) out.push(await lm.prefill(p.ids))
      return out
    }
  }
}

interface Job<I extends GenerationParams> {
  input: I
  ctx: JobContext<LmPartial>
  cost: number
  prepared: PreparedPrompt
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

export class LmRunner<I extends GenerationParams = LmInput> implements StreamingRunner<I, LmOutput, LmPartial> {
  readonly policy: BatchPolicy
  readonly exact: boolean
  readonly kvBudgetTokens: number
  /** Session runs and rows run, for tests and benchmarks. */
  readonly stats = { runs: 0, rows: 0, prefills: 0 }
  private readonly lm: LoadedLm
  private readonly source: PromptSource<I>
  private readonly waiting: Array<Job<I>> = []
  private readonly active: Array<Job<I>> = []
  private looping = false
  /** Jobs whose prompt is being prepared (started, not yet queued). */
  private preparing = 0
  private wake: (() => void) | undefined
  private disposed = false

  /** `source` defaults to the lm's text prompts (textPrompts): give another for a job input that is not LmInput. */
  constructor (lm: LoadedLm, options: LmRunnerOptions = {}, source?: PromptSource<I>) {
    this.lm = lm
    this.source = source ?? textPrompts(lm) as unknown as PromptSource<I>
    this.policy = options.policy ?? 'continuous'
    this.exact = options.exact ?? true
    this.kvBudgetTokens = options.kvBudgetTokens ?? DEFAULT_KV_BUDGET_TOKENS
  }

  async start (input: I, ctx: JobContext<LmPartial>): Promise<LmOutput> {
    if (this.disposed) throw new InferenceError('the lm runner was disposed: start a new one')
    ctx.signal.throwIfAborted()
    this.preparing++
    let prepared: PreparedPrompt
    try {
      prepared = await this.source.prepare(input, ctx.signal)
    } finally {
      this.preparing--
      this.poke()
    }
    const prompt = prepared.ids
    if (prompt.length + input.maxNewTokens > this.lm.shape.maxPositions) {
      throw new InputTooLargeError(`input: ${prompt.length} prompt tokens + ${input.maxNewTokens} new tokens pass the model's ${this.lm.shape.maxPositions} positions: shorten the prompt or lower max_new_tokens`)
    }
    if (this.disposed) throw new InferenceError('the lm runner was disposed: start a new one')
    ctx.signal.throwIfAborted()
    return await new Promise<LmOutput>((resolve, reject) => {
      const job: Job<I> = {
        input, ctx, cost: prepared.cost, prepared, prompt, generated: [], rng: new JobRandom(input.seed),
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
    // A loop asleep (no job could step, or jobs were still preparing) wakes to see it is disposed.
    this.poke()
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
  private admit (): Array<Job<I>> {
    const joined: Array<Job<I>> = []
    if (this.policy === 'static' && this.active.length > 0) return joined
    let used = this.active.reduce((sum, j) => sum + j.cost, 0)
    while (this.waiting.length > 0) {
      const job = this.waiting[0] as Job<I>
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
      if (this.active.length === 0 && this.preparing > 0) await this.gather()
      this.dropAborted()
      const joined = this.admit()
      if (joined.length > 0) {
        this.active.push(...joined)
        const results = await this.source.prefill(joined.map((j) => j.prepared))
        joined.forEach((job, i) => {
          const { logits, kv } = results[i] as { logits: Float32Array, kv: KvView }
          this.stats.runs++; this.stats.prefills++; this.stats.rows++
          // What the source kept to prefill (pixels, features) is not needed past this point.
          job.prepared = { ids: job.prompt, cost: job.cost, state: undefined }
          job.kv = kv
          job.n = job.prompt.length
          this.take(job, logits)
        })
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

  /**
   * An idle runner lets the jobs that arrived with the first finish
   * preparing (decoding their images), so that they prefill together; for
   * GATHER_MS at most, so one slow image does not hold up the others.
   */
  private async gather (): Promise<void> {
    const timer = setTimeout(() => { this.poke() }, GATHER_MS)
    const until = performance.now() + GATHER_MS
    try {
      while (!this.disposed && this.preparing > 0 && performance.now() < until) await new Promise<void>((resolve) => { this.wake = resolve })
    } finally {
      clearTimeout(timer)
    }
  }

  /** Choose a job's next token from its logits, release its text, emit, and end it when it is done. */
  private take (job: Job<I>, logits: Float32Array): void {
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

  private end (job: Job<I>): void {
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
    return this.active.length === 0 || used + (this.waiting[0] as Job<I>).cost <= this.kvBudgetTokens
  }
}
