/**
 * `stand-in-stream`: the streaming twin of the stand-in, for testing the
 * platform's streaming path without a language model. `{ steps, tag? }` in;
 * one partial `{ text }` per step (deterministic from the input); the final
 * output is the partials' text joined. Timers only, so it runs in-process
 * (`inProcess`). It honours `ctx.signal` (stops at the next step) and
 * `ctx.emit`'s back-pressure (awaits it before the next step); `failAt`,
 * `hangAt` and `msPerStep` in the input make it fail, hang or slow.
 */
import type { ExecutionPlan, JobContext, ModelLocation, SkillsetLoadOptions, StreamingRunner, StreamingSkillset } from '../../src/interfaces/index.ts'
import { InferenceError, JobCancelledError } from '../../src/errors.ts'
import type { StreamInput, StreamOutput, StreamPartial } from './input.ts'
import { decodeStreamOutput, decodeStreamPartial, encodeStreamOutput, encodeStreamPartial, MAX_STEPS, parseStreamInput, streamToken } from './input.ts'

export type { StreamInput, StreamOutput, StreamPartial } from './input.ts'
export { expectedText, MAX_STEPS, streamToken } from './input.ts'

/** Wait `ms` (0: one turn of the event loop), or reject when either signal aborts. */
async function step (ms: number, signals: AbortSignal[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const done = (): void => { for (const s of signals) s.removeEventListener('abort', onAbort); resolve() }
    const timer = ms > 0 ? setTimeout(done, ms) : undefined
    const immediate = ms > 0 ? undefined : setImmediate(done)
    const onAbort = (): void => {
      clearTimeout(timer)
      if (immediate !== undefined) clearImmediate(immediate)
      for (const s of signals) s.removeEventListener('abort', onAbort)
      const why = signals.find((s) => s.aborted)?.reason as unknown
      reject(why instanceof Error ? why : new JobCancelledError())
    }
    for (const s of signals) {
      if (s.aborted) { onAbort(); return }
      s.addEventListener('abort', onAbort, { once: true })
    }
  })
}

export class StandInStreamRunner implements StreamingRunner<StreamInput, StreamOutput, StreamPartial> {
  private readonly disposed = new AbortController()
  /** Steps run (partials emitted) by every job of this runner: tests check that a cancelled job stops. */
  steps = 0
  /** Jobs running now. */
  running = 0

  async start (input: StreamInput, ctx: JobContext<StreamPartial>): Promise<StreamOutput> {
    if (this.disposed.signal.aborted) throw new InferenceError('the stand-in-stream runner was disposed: start a new one')
    const signals = [ctx.signal, this.disposed.signal]
    this.running++
    try {
      let text = ''
      for (let i = 0; i < input.steps; i++) {
        if (input.hangAt === i) await step(2 ** 31 - 1, signals)
        await step(input.msPerStep ?? 0, signals)
        if (input.failAt === i) throw new InferenceError(`stand-in-stream job failed at step ${i}: its input asked for it (failAt)`)
        const t = streamToken(input.tag ?? '', i)
        text += t
        this.steps++
        // Back-pressure: the next step waits until the consumer has room.
        await ctx.emit({ text: t })
      }
      return { text, steps: input.steps }
    } finally {
      this.running--
    }
  }

  async dispose (): Promise<void> {
    this.disposed.abort(new InferenceError('the stand-in-stream runner was disposed while it ran this job (the runner was restarted): retry the job'))
  }
}

export interface StandInStreamSkillset extends StreamingSkillset<StreamInput, StreamOutput, StreamPartial> {
  readonly inProcess: true
}

export const standInStreamSkillset: StandInStreamSkillset = Object.freeze({
  name: 'stand-in-stream' as const,
  inProcess: true as const,
  streaming: true as const,
  parseInput: parseStreamInput,
  cost: (input: StreamInput): number => input.steps,
  sampleInput: (n: number): unknown => ({ steps: Math.max(1, Math.min(MAX_STEPS, Math.floor(n))) }),
  loadStreaming: async (_model: ModelLocation, _plan: ExecutionPlan, _options?: SkillsetLoadOptions): Promise<StandInStreamRunner> => new StandInStreamRunner(),
  encodeOutput: encodeStreamOutput,
  decodeOutput: decodeStreamOutput,
  encodePartial: encodeStreamPartial,
  decodePartial: decodeStreamPartial
})
