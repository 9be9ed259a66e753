/**
 * A runner on the main thread, for skillsets marked `inProcess` (timers
 * only, no blocking work: the stand-in). Same contract as an
 * InferenceThread: `ready`, one batch at a time, `restart()` (the stall
 * watchdog) disposes the skillset runner, abandoning its pending run, and
 * loads a fresh one.
 */
import type { ExecutionPlan, ModelLocation, Skillset, SkillsetLoadOptions, SkillsetRunner } from '../interfaces/index.ts'
import { errorMessage, InferenceError, NotStartedError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import type { Runner } from './model-queue.ts'
import type { BatchResult } from './thread.ts'

export interface LocalRunnerInit {
  skillset: Skillset
  model: ModelLocation
  plan: ExecutionPlan
  /** Passed to the skillset's `load` (the node's configuration). */
  loadOptions?: SkillsetLoadOptions
  log: Logger
}

export class LocalRunner implements Runner {
  private readonly init: LocalRunnerInit
  private runner: SkillsetRunner | undefined
  private stopped = false
  private lastReady = false
  loadMs = 0
  busy = false
  onReadyChange: ((ready: boolean) => void) | undefined
  readonly stats = { restarts: 0 }

  constructor (init: LocalRunnerInit) {
    if (init.skillset.inProcess !== true) throw new TypeError(`skillset ${init.skillset.name} is not in-process: run it in an InferenceThread`)
    this.init = init
  }

  get ready (): boolean { return this.runner !== undefined && !this.stopped }

  private get model (): string { return this.init.model.id }

  async start (): Promise<void> {
    if (this.runner !== undefined) return
    if (this.stopped) throw new NotStartedError(`runner for ${this.model} was stopped: build a new one`)
    await this.load()
  }

  private async load (): Promise<void> {
    const t0 = performance.now()
    const runner = await this.init.skillset.load(this.init.model, this.init.plan, this.init.loadOptions)
    if (this.stopped) {
      await this.dispose(runner)
      throw new NotStartedError(`runner for ${this.model} was stopped while it loaded`)
    }
    this.loadMs = performance.now() - t0
    this.runner = runner
    this.emitReady()
  }

  private emitReady (): void {
    const ready = this.ready
    if (ready === this.lastReady) return
    this.lastReady = ready
    this.onReadyChange?.(ready)
  }

  private async dispose (runner: SkillsetRunner): Promise<void> {
    await runner.dispose().catch((err: unknown) => {
      this.init.log.warn('skillset runner did not dispose cleanly', { model: this.model, error: errorMessage(err) })
    })
  }

  async run (inputs: unknown[]): Promise<BatchResult> {
    const runner = this.runner
    if (runner === undefined) throw new NotStartedError(`runner for ${this.model} is not running`)
    const t0 = performance.now()
    const outputs = await runner.run(inputs)
    if (outputs.length !== inputs.length) throw new InferenceError(`${this.model} returned ${outputs.length} outputs for ${inputs.length} inputs: the skillset is broken, report it`)
    return { outputs, runMs: performance.now() - t0 }
  }

  /** Dispose the current skillset runner (its pending run is abandoned) and load a new one. */
  async restart (): Promise<void> {
    if (this.stopped) throw new NotStartedError(`runner for ${this.model} was stopped: build a new one`)
    const old = this.runner
    this.runner = undefined
    this.emitReady()
    if (old !== undefined) await this.dispose(old)
    await this.load()
    this.stats.restarts++
    this.init.log.info('in-process runner restarted', { model: this.model })
  }

  async stop (): Promise<void> {
    this.stopped = true
    const old = this.runner
    this.runner = undefined
    this.emitReady()
    if (old !== undefined) await this.dispose(old)
  }
}
