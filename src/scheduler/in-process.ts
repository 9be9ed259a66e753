/**
 * The lifecycle every main-thread runner shares (LocalRunner for batch
 * skillsets, LocalStreamRunner for streaming ones): load the skillset's
 * runner, report `ready` changes, `restart()` disposes it (its pending work
 * is abandoned) and loads a fresh one, `stop()` for good.
 */
import { errorMessage, NotStartedError } from '../errors.ts'
import type { Logger } from '../logger.ts'

export abstract class InProcessRunner<R extends { dispose: () => Promise<void> }> {
  protected runner: R | undefined
  private stopped = false
  private lastReady = false
  private readonly modelId: string
  private readonly logger: Logger
  private readonly loadRunner: () => Promise<R>
  loadMs = 0
  onReadyChange: ((ready: boolean) => void) | undefined
  readonly stats = { restarts: 0 }

  constructor (modelId: string, log: Logger, loadRunner: () => Promise<R>) {
    this.modelId = modelId
    this.logger = log
    this.loadRunner = loadRunner
  }

  get ready (): boolean { return this.runner !== undefined && !this.stopped }

  protected get model (): string { return this.modelId }

  async start (): Promise<void> {
    if (this.runner !== undefined) return
    if (this.stopped) throw new NotStartedError(`runner for ${this.model} was stopped: build a new one`)
    await this.load()
  }

  private async load (): Promise<void> {
    const t0 = performance.now()
    const runner = await this.loadRunner()
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

  private async dispose (runner: R): Promise<void> {
    await runner.dispose().catch((err: unknown) => {
      this.logger.warn('skillset runner did not dispose cleanly', { model: this.model, error: errorMessage(err) })
    })
  }

  /** Dispose the current skillset runner (its pending work is abandoned) and load a new one. */
  async restart (): Promise<void> {
    if (this.stopped) throw new NotStartedError(`runner for ${this.model} was stopped: build a new one`)
    const old = this.runner
    this.runner = undefined
    this.emitReady()
    if (old !== undefined) await this.dispose(old)
    await this.load()
    this.stats.restarts++
    this.logger.info('in-process runner restarted', { model: this.model })
  }

  async stop (): Promise<void> {
    this.stopped = true
    const old = this.runner
    this.runner = undefined
    this.emitReady()
    if (old !== undefined) await this.dispose(old)
  }
}
