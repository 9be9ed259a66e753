/**
 * One inference thread seen from the main thread: start (load the model),
 * run one batch at a time, stop.
 *
 * A thread that crashes after start (an 'error' event, or an exit nobody
 * asked for) fails its pending runs with ERR_INFERENCE and is started again
 * with back-off (1 s, 2 s, 4 s … 30 s at most; from 1 s again after a start
 * that worked), each attempt logged. `restart()` (the queue's stall
 * watchdog) replaces the thread at once. While it is down, `ready` is false,
 * and every change of `ready` is reported through `onReadyChange`.
 *
 * For a streaming skillset the same thread runs many jobs at once
 * (`startJob`, the StreamHost of a StreamingQueue): partials come back one
 * message each and are handed to the job's JobContext in order; a credit
 * goes back once each is taken (thread-protocol.ts). A crash or restart
 * fails every job of the thread.
 */
import { Worker } from 'node:worker_threads'
import { AccelerateError, errorMessage, InferenceError, ModelLoadError, NotStartedError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import type { JobContext } from '../interfaces/index.ts'
import type { BatchResult, Runner } from './runner.ts'
import type { StreamHost } from './streaming-queue.ts'
import type { FromThread, ThreadInit, ToThread } from './thread-protocol.ts'
import { isItemFailure } from './thread-protocol.ts'

const THREAD_ENTRY = new URL('./inference-thread.ts', import.meta.url)
const DEFAULT_START_TIMEOUT_MS = 300_000
const DEFAULT_BACKOFF = Object.freeze({ initialMs: 1000, maxMs: 30_000 })

export interface InferenceThreadOptions {
  /** The thread's entry module (default ./inference-thread.ts); tests pass a stand-in, e.g. a data: URL. */
  entry?: URL
  /** Delays between restart attempts after a crash: the first, doubled each failure up to the cap. */
  backoff?: { initialMs: number, maxMs: number }
  /** How long one start (model load) may take; default 300 000 ms. */
  startTimeoutMs?: number
}

interface Pending { resolve: (r: BatchResult) => void, reject: (e: Error) => void }
/** A streaming job in the thread: partials are handed to `ctx.emit` one after another (`chain`). */
interface StreamPending { ctx: JobContext, chain: Promise<void>, resolve: (r: { output: unknown, runMs: number }) => void, reject: (e: Error) => void, detach: () => void }

export class InferenceThread implements Runner, StreamHost {
  /** The worker that loaded its model and serves runs; undefined while down. */
  private worker: Worker | undefined
  /** A worker being started, so stop() can end it. */
  private loading: Worker | undefined
  private readonly pending = new Map<number, Pending>()
  private readonly streams = new Map<number, StreamPending>()
  private nextId = 1
  private generation = 0
  private stopped = false
  private recovering: Promise<void> | undefined
  private wake: (() => void) | undefined
  private lastReady = false
  private readonly init: ThreadInit
  private readonly log: Logger
  private readonly entry: URL
  private readonly backoff: { initialMs: number, maxMs: number }
  private readonly startTimeoutMs: number
  loadMs = 0
  busy = false
  onReadyChange: ((ready: boolean) => void) | undefined
  /** Crashes seen and restarts that worked (after a crash or a restart() call). */
  readonly stats = { crashes: 0, restarts: 0 }

  constructor (init: ThreadInit, log: Logger, options: InferenceThreadOptions = {}) {
    this.init = init
    this.log = log
    this.entry = options.entry ?? THREAD_ENTRY
    this.backoff = options.backoff ?? DEFAULT_BACKOFF
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS
  }

  /** Started, not crashed, not restarting, not stopped. */
  get ready (): boolean { return this.worker !== undefined && !this.stopped }

  private get model (): string { return this.init.model.id }

  async start (timeoutMs = this.startTimeoutMs): Promise<void> {
    if (this.worker !== undefined) return
    if (this.stopped) throw new NotStartedError(`inference thread for ${this.model} was stopped: build a new one`)
    await this.spawn(timeoutMs)
    this.emitReady()
  }

  /** Start one worker and wait for its model to load; on success it serves runs. */
  private async spawn (timeoutMs = this.startTimeoutMs): Promise<void> {
    const worker = new Worker(this.entry, { workerData: { ...this.init, generation: this.generation++ } satisfies ThreadInit, name: `infer:${this.model}` })
    this.loading = worker
    let onMessage: (msg: FromThread) => void = () => {}
    let onError: (err: Error) => void = () => {}
    let onExit: (code: number) => void = () => {}
    let timer: NodeJS.Timeout | undefined
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => { reject(new ModelLoadError(`model ${this.model} did not load within ${timeoutMs} ms`)) }, timeoutMs)
        onMessage = (msg) => {
          if (msg.type === 'ready') {
            this.loadMs = msg.loadMs
            resolve()
          } else if (msg.type === 'load-error') {
            reject(new AccelerateError(msg.code, `model ${this.model} failed to load: ${msg.message}`))
          }
        }
        onError = (err) => { reject(new ModelLoadError(`inference thread for ${this.model} crashed while loading: ${err.message}`, { cause: err })) }
        onExit = (code) => { reject(new ModelLoadError(`inference thread for ${this.model} exited with code ${code} while loading`)) }
        worker.on('message', onMessage)
        worker.once('error', onError)
        worker.once('exit', onExit)
      })
    } catch (err) {
      await worker.terminate()
      throw err
    } finally {
      clearTimeout(timer)
      worker.off('message', onMessage)
      worker.off('error', onError)
      worker.off('exit', onExit)
      if (this.loading === worker) this.loading = undefined
    }
    if (this.stopped) {
      await worker.terminate()
      throw new NotStartedError(`inference thread for ${this.model} was stopped while it started`)
    }
    this.worker = worker
    worker.on('message', (msg: FromThread) => { this.onMessage(msg) })
    worker.on('error', (err) => { this.onCrash(worker, `error: ${err.message}`) })
    worker.on('exit', (code) => { this.onCrash(worker, `exited with code ${code}`) })
  }

  private onMessage (msg: FromThread): void {
    if (msg.type === 'partial' || msg.type === 'done' || (msg.type === 'error' && this.streams.has(msg.id))) { this.onStreamMessage(msg); return }
    if (msg.type !== 'result' && msg.type !== 'error') return
    const p = this.pending.get(msg.id)
    if (p === undefined) return
    this.pending.delete(msg.id)
    if (msg.type === 'result') p.resolve({ outputs: msg.outputs.map((o) => isItemFailure(o) ? new AccelerateError(o.itemError.code, o.itemError.message) : o), runMs: msg.runMs })
    else p.reject(new AccelerateError(msg.code, msg.message))
  }

  /** The serving worker ended without being asked: fail its runs, start another. */
  private onCrash (worker: Worker, reason: string): void {
    if (worker !== this.worker) return // stopped, restarted or already handled
    this.worker = undefined
    this.stats.crashes++
    this.log.error('inference thread crashed: restarting it', { model: this.model, reason, pending: this.pending.size })
    this.failAll(new InferenceError(`the inference thread for ${this.model} crashed (${reason}) while it ran this batch; it is being restarted: retry the job`))
    this.emitReady()
    this.recover(true).catch((err: unknown) => { this.log.error('inference thread recovery ended with an error', { model: this.model, error: errorMessage(err) }) })
  }

  private emitReady (): void {
    const ready = this.ready
    if (ready === this.lastReady) return
    this.lastReady = ready
    this.onReadyChange?.(ready)
  }

  /** Start a new worker, retrying with back-off until one starts or the thread is stopped. */
  private async recover (delayFirst: boolean): Promise<void> {
    this.recovering ??= this.recoverLoop(delayFirst).finally(() => { this.recovering = undefined })
    await this.recovering
  }

  private async recoverLoop (delayFirst: boolean): Promise<void> {
    let delay = this.backoff.initialMs
    let wait = delayFirst
    for (let attempt = 1; !this.stopped; attempt++) {
      if (wait) {
        await this.sleep(delay)
        delay = Math.min(delay * 2, this.backoff.maxMs)
        if (this.stopped) return
      }
      wait = true
      this.log.info('starting the inference thread again', { model: this.model, attempt })
      try {
        await this.spawn()
      } catch (err) {
        if (this.stopped) return
        this.log.error('inference thread did not start: trying again', { model: this.model, attempt, error: errorMessage(err), retryInMs: delay })
        continue
      }
      this.stats.restarts++
      this.log.info('inference thread is back', { model: this.model, attempt, loadMs: Math.round(this.loadMs) })
      this.emitReady()
      return
    }
  }

  private async sleep (ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { this.wake = undefined; resolve() }, ms)
      this.wake = () => { clearTimeout(timer); this.wake = undefined; resolve() }
    })
  }

  private failAll (err: Error): void {
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
    for (const s of this.streams.values()) { s.detach(); s.reject(err) }
    this.streams.clear()
  }

  private onStreamMessage (msg: Extract<FromThread, { type: 'partial' | 'done' | 'error' }>): void {
    const s = this.streams.get(msg.id)
    if (s === undefined) return // failed already (crash, restart)
    const worker = this.worker
    if (msg.type === 'partial') {
      // In order: each partial waits for the one before to be taken, then gives the thread one credit back.
      s.chain = s.chain.then(async () => { await s.ctx.emit(msg.partial) }).then(() => {
        worker?.postMessage({ type: 'credit', id: msg.id, n: 1 } satisfies ToThread)
      }, (err: unknown) => {
        worker?.postMessage({ type: 'cancel', id: msg.id, code: 'ERR_JOB_CANCELLED', message: errorMessage(err) } satisfies ToThread)
        throw err
      })
      return
    }
    this.streams.delete(msg.id)
    s.detach()
    if (msg.type === 'done') {
      s.chain.then(() => { s.resolve({ output: msg.output, runMs: msg.runMs }) }, (err: unknown) => { s.reject(err as Error) })
    } else {
      // A failed emit earlier in the chain already cancelled the job in the thread; the thread's error is what the job ends with.
      s.chain.catch(() => undefined).then(() => { s.reject(new AccelerateError(msg.code, msg.message)) }, () => undefined)
    }
  }

  /** Run one streaming job in the thread (StreamHost). */
  async startJob (input: unknown, ctx: JobContext): Promise<{ output: unknown, runMs: number }> {
    const worker = this.worker
    if (worker === undefined) throw new NotStartedError(`inference thread for ${this.model} is not running`)
    const id = this.nextId++
    return await new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const why = ctx.signal.reason as unknown
        worker.postMessage({ type: 'cancel', id, code: 'ERR_JOB_CANCELLED', message: errorMessage(why) } satisfies ToThread)
      }
      ctx.signal.addEventListener('abort', onAbort, { once: true })
      this.streams.set(id, { ctx, chain: Promise.resolve(), resolve, reject, detach: () => { ctx.signal.removeEventListener('abort', onAbort) } })
      worker.postMessage({ type: 'start', id, input } satisfies ToThread)
    })
  }

  async run (inputs: unknown[]): Promise<BatchResult> {
    const worker = this.worker
    if (worker === undefined) throw new NotStartedError(`inference thread for ${this.model} is not running`)
    const id = this.nextId++
    return await new Promise<BatchResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      worker.postMessage({ type: 'run', id, inputs } satisfies ToThread)
    })
  }

  /**
   * Replace the worker now (a stuck run): its pending runs fail, a new
   * worker starts. Resolves when one is ready, or the thread was stopped.
   */
  async restart (): Promise<void> {
    if (this.stopped) throw new NotStartedError(`inference thread for ${this.model} was stopped: build a new one`)
    const old = this.worker
    this.worker = undefined
    this.emitReady()
    this.failAll(new InferenceError(`the inference thread for ${this.model} was replaced while it ran this batch: retry the job`))
    if (old !== undefined) {
      // Not awaited: a thread stuck in native code ends only when that call returns.
      old.terminate().then((code) => {
        this.log.info('replaced inference thread ended', { model: this.model, code })
      }, (err: unknown) => {
        this.log.warn('replaced inference thread did not end cleanly', { model: this.model, error: errorMessage(err) })
      })
    }
    await this.recover(false)
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.wake?.()
    const loading = this.loading
    if (loading !== undefined) await loading.terminate()
    const worker = this.worker
    this.worker = undefined
    this.emitReady()
    if (worker === undefined) {
      this.failAll(new ModelLoadError(`inference thread for ${this.model} stopped`))
      return
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000)
      worker.on('message', (m: FromThread) => { if (m.type === 'disposed') { clearTimeout(timer); resolve() } })
      worker.once('exit', () => { clearTimeout(timer); resolve() })
      worker.postMessage({ type: 'dispose' } satisfies ToThread)
    })
    this.failAll(new ModelLoadError(`inference thread for ${this.model} stopped`))
    await worker.terminate()
  }
}
