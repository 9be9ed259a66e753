/**
 * One inference thread seen from the main thread: start (load the model),
 * run one batch at a time, stop.
 */
import { Worker } from 'node:worker_threads'
import { AccelerateError, ModelLoadError, NotStartedError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import type { FromThread, ThreadInit, ToThread } from './thread-protocol.ts'

const THREAD_ENTRY = new URL('./inference-thread.ts', import.meta.url)

export interface BatchResult { outputs: unknown[], runMs: number }

interface Pending { resolve: (r: BatchResult) => void, reject: (e: Error) => void }

export class InferenceThread {
  private worker: Worker | undefined
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private readonly init: ThreadInit
  private readonly log: Logger
  loadMs = 0
  busy = false

  constructor (init: ThreadInit, log: Logger) {
    this.init = init
    this.log = log
  }

  async start (timeoutMs = 300_000): Promise<void> {
    if (this.worker !== undefined) return
    const worker = new Worker(THREAD_ENTRY, { workerData: this.init, name: `infer:${this.init.model.id}` })
    this.worker = worker
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new ModelLoadError(`model ${this.init.model.id} did not load within ${timeoutMs} ms`)) }, timeoutMs)
      const onMessage = (msg: FromThread): void => {
        if (msg.type === 'ready') {
          clearTimeout(timer)
          this.loadMs = msg.loadMs
          worker.off('message', onMessage)
          resolve()
        } else if (msg.type === 'load-error') {
          clearTimeout(timer)
          reject(new AccelerateError(msg.code, `model ${this.init.model.id} failed to load: ${msg.message}`))
        }
      }
      worker.on('message', onMessage)
      worker.once('error', (err) => { clearTimeout(timer); reject(new ModelLoadError(`inference thread for ${this.init.model.id} crashed while loading: ${err.message}`, { cause: err })) })
    }).catch(async (err: unknown) => {
      this.worker = undefined
      await worker.terminate()
      throw err
    })
    worker.on('message', (msg: FromThread) => { this.onMessage(msg) })
    worker.on('error', (err) => {
      this.log.error('inference thread crashed', { model: this.init.model.id, error: err.message })
      this.failAll(new ModelLoadError(`inference thread for ${this.init.model.id} crashed: ${err.message}`, { cause: err }))
      this.worker = undefined
    })
  }

  private onMessage (msg: FromThread): void {
    if (msg.type !== 'result' && msg.type !== 'error') return
    const p = this.pending.get(msg.id)
    if (p === undefined) return
    this.pending.delete(msg.id)
    if (msg.type === 'result') p.resolve({ outputs: msg.outputs, runMs: msg.runMs })
    else p.reject(new AccelerateError(msg.code, msg.message))
  }

  private failAll (err: Error): void {
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
  }

  async run (inputs: unknown[]): Promise<BatchResult> {
    const worker = this.worker
    if (worker === undefined) throw new NotStartedError(`inference thread for ${this.init.model.id} is not running`)
    const id = this.nextId++
    return await new Promise<BatchResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      worker.postMessage({ type: 'run', id, inputs } satisfies ToThread)
    })
  }

  async stop (): Promise<void> {
    const worker = this.worker
    if (worker === undefined) return
    this.worker = undefined
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000)
      worker.on('message', (m: FromThread) => { if (m.type === 'disposed') { clearTimeout(timer); resolve() } })
      worker.postMessage({ type: 'dispose' } satisfies ToThread)
    })
    this.failAll(new ModelLoadError(`inference thread for ${this.init.model.id} stopped`))
    await worker.terminate()
  }
}
