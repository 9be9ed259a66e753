/**
 * A streaming runner on the main thread, for streaming skillsets marked
 * `inProcess` (timers only: the stand-in-stream). The LocalRunner of the
 * streaming path: `ready`, many jobs at once through the skillset's
 * StreamingRunner, `restart()` disposes the runner (its jobs reject) and
 * loads a fresh one (the lifecycle is InProcessRunner's).
 */
import type { ExecutionPlan, JobContext, ModelLocation, SkillsetLoadOptions, StreamingRunner, StreamingSkillset } from '../interfaces/index.ts'
import { NotStartedError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import { InProcessRunner } from './in-process.ts'
import type { StreamHost } from './streaming-queue.ts'

export interface LocalStreamRunnerInit {
  skillset: StreamingSkillset
  model: ModelLocation
  plan: ExecutionPlan
  loadOptions?: SkillsetLoadOptions
  log: Logger
}

export class LocalStreamRunner extends InProcessRunner<StreamingRunner> implements StreamHost {
  constructor (init: LocalStreamRunnerInit) {
    if (init.skillset.inProcess !== true) throw new TypeError(`skillset ${init.skillset.name} is not in-process: run it in an InferenceThread`)
    super(init.model.id, init.log, async () => await init.skillset.loadStreaming(init.model, init.plan, init.loadOptions))
  }

  /** The skillset's runner (tests read the stand-in-stream's step counter). */
  get current (): StreamingRunner | undefined { return this.runner }

  async startJob (input: unknown, ctx: JobContext): Promise<{ output: unknown, runMs: number }> {
    const runner = this.runner
    if (runner === undefined) throw new NotStartedError(`runner for ${this.model} is not running`)
    const t0 = performance.now()
    const output = await runner.start(input, ctx)
    return { output, runMs: performance.now() - t0 }
  }
}
