/**
 * A runner on the main thread, for skillsets marked `inProcess` (timers
 * only, no blocking work: the stand-in). Same contract as an
 * InferenceThread: `ready`, one batch at a time, `restart()` (the stall
 * watchdog) disposes the skillset runner, abandoning its pending run, and
 * loads a fresh one (the lifecycle is InProcessRunner's).
 */
import type { ExecutionPlan, ModelLocation, Skillset, SkillsetLoadOptions, SkillsetRunner } from '../interfaces/index.ts'
import { InferenceError, NotStartedError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import { InProcessRunner } from './in-process.ts'
import type { BatchResult, Runner } from './runner.ts'

export interface LocalRunnerInit {
  skillset: Skillset
  model: ModelLocation
  plan: ExecutionPlan
  /** Passed to the skillset's `load` (the node's configuration). */
  loadOptions?: SkillsetLoadOptions
  log: Logger
}

export class LocalRunner extends InProcessRunner<SkillsetRunner> implements Runner {
  busy = false

  constructor (init: LocalRunnerInit) {
    if (init.skillset.inProcess !== true) throw new TypeError(`skillset ${init.skillset.name} is not in-process: run it in an InferenceThread`)
    super(init.model.id, init.log, async () => await init.skillset.load(init.model, init.plan, init.loadOptions))
  }

  async run (inputs: unknown[]): Promise<BatchResult> {
    const runner = this.runner
    if (runner === undefined) throw new NotStartedError(`runner for ${this.model} is not running`)
    const t0 = performance.now()
    const outputs = await runner.run(inputs)
    if (outputs.length !== inputs.length) throw new InferenceError(`${this.model} returned ${outputs.length} outputs for ${inputs.length} inputs: the skillset is broken, report it`)
    return { outputs, runMs: performance.now() - t0 }
  }
}
