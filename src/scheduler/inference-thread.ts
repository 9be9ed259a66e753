/**
 * Entry point of an inference thread: loads one model through its skillset
 * and runs batches, so ONNX Runtime's blocking calls stay off the event loop.
 */
import { closeSync, existsSync, openSync } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
import type { TransferListItem } from 'node:worker_threads'
import { getSkillset } from '../../skillsets/index.ts'
import { isStreamingSkillset } from '../interfaces/index.ts'
import type { SkillsetRunner, StreamingRunner } from '../interfaces/index.ts'
import { AccelerateError, errorCode, errorMessage, InferenceError } from '../errors.ts'
import { openModelReader, transformersCache } from '../store/models/reader.ts'
import { STREAM_THREAD_CREDITS } from './thread-protocol.ts'
import type { FromThread, ItemFailure, ThreadInit, ToThread } from './thread-protocol.ts'

const port = parentPort
if (port === null) throw new Error('inference-thread.ts must run in a worker thread')
const init = workerData as ThreadInit

function post (msg: FromThread, transfer: TransferListItem[] = []): void {
  port!.postMessage(msg, transfer)
}

/** ArrayBuffers of typed arrays found in outputs' top-level fields, to transfer instead of copy. */
function transferables (outputs: unknown[]): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>()
  for (const o of outputs) {
    if (typeof o !== 'object' || o === null) continue
    for (const v of Object.values(o)) {
      if (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength) seen.add(v.buffer)
    }
  }
  return [...seen]
}

/** Serve the model's files to transformers.js from the content store: no second copy on disk. */
async function useStore (model: ThreadInit['model']): Promise<void> {
  if (model.store === undefined) return
  const reader = await openModelReader({ blocksDir: model.store.blocksDir, root: model.store.cid, id: model.id, files: model.store.files })
  const { env } = await import('@huggingface/transformers')
  env.useCustomCache = true
  env.customCache = transformersCache(reader, model.id)
}

/**
 * TEST-ONLY fault hook, for integration tests that need real inference to
 * hang or crash. Inert unless IPFS_ACCELERATE_TEST_FAULTS is set:
 * - `hang-once`: the first run never answers (the stall watchdog recovers);
 * - `crash-once`: the first run calls process.exit(1), which ends this
 *   thread only (the InferenceThread restarts it);
 * - `hold-once`: the first run waits until the file named by
 *   IPFS_ACCELERATE_TEST_RELEASE_FILE exists (at most 120 s), then runs, so
 *   a test can act while a job is known to be running.
 * "Once" is once per node process when IPFS_ACCELERATE_TEST_FAULTS_FILE
 * names a marker file (the thread that creates it fires the fault), else
 * once per InferenceThread object (its first worker, generation 0, only).
 */
function takeTestFault (): 'hang' | 'crash' | 'hold' | undefined {
  const faults = process.env.IPFS_ACCELERATE_TEST_FAULTS ?? ''
  const fault = faults.includes('hang-once') ? 'hang' : faults.includes('crash-once') ? 'crash' : faults.includes('hold-once') ? 'hold' : undefined
  if (fault === undefined) return undefined
  const marker = process.env.IPFS_ACCELERATE_TEST_FAULTS_FILE ?? ''
  if (marker === '') return (init.generation ?? 0) === 0 ? fault : undefined
  try {
    closeSync(openSync(marker, 'wx'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined
    throw err
  }
  return fault
}
let faultChecked = false

/** `hold-once`: resolves once the release file exists, or after 120 s. */
async function held (): Promise<void> {
  const release = process.env.IPFS_ACCELERATE_TEST_RELEASE_FILE ?? ''
  if (release === '') throw new Error('IPFS_ACCELERATE_TEST_FAULTS=hold-once needs IPFS_ACCELERATE_TEST_RELEASE_FILE')
  const until = Date.now() + 120_000
  while (!existsSync(release) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))
}

let runner: SkillsetRunner | undefined
let streamer: StreamingRunner | undefined
const t0 = performance.now()
try {
  await useStore(init.model)
  const skillset = getSkillset(init.skillset)
  if (isStreamingSkillset(skillset)) streamer = await skillset.loadStreaming(init.model, init.plan, init.loadOptions)
  else runner = await skillset.load(init.model, init.plan, init.loadOptions)
  post({ type: 'ready', loadMs: performance.now() - t0 })
} catch (err) {
  post({ type: 'load-error', code: errorCode(err), message: errorMessage(err) })
}

/** A streaming job in this thread: its abort controller and its credit for partials. */
interface ThreadJob { controller: AbortController, credits: number, wake: (() => void) | undefined }
const jobs = new Map<number, ThreadJob>()

function toError (err: unknown): AccelerateError {
  // ONNX Runtime and transformers.js throw plain errors: they reach clients as ERR_INFERENCE.
  return err instanceof AccelerateError ? err : new InferenceError(`inference on ${init.model.id} failed: ${errorMessage(err)}`, { cause: err })
}

function startStream (msg: Extract<ToThread, { type: 'start' }>): void {
  if (streamer === undefined) {
    post({ type: 'error', id: msg.id, code: 'ERR_MODEL_LOAD', message: 'this thread has no streaming runner (the model failed to load, or its skillset does not stream)' })
    return
  }
  const job: ThreadJob = { controller: new AbortController(), credits: STREAM_THREAD_CREDITS, wake: undefined }
  jobs.set(msg.id, job)
  const signal = job.controller.signal
  const start = performance.now()
  streamer.start(msg.input, {
    signal,
    emit: async (partial: unknown): Promise<void> => {
      signal.throwIfAborted()
      post({ type: 'partial', id: msg.id, partial })
      job.credits--
      while (job.credits <= 0 && !signal.aborted) await new Promise<void>((resolve) => { job.wake = resolve })
      signal.throwIfAborted()
    }
  }).then((output) => {
    post({ type: 'done', id: msg.id, output, runMs: performance.now() - start }, transferables([output]))
  }, (err: unknown) => {
    const e = toError(err)
    post({ type: 'error', id: msg.id, code: e.code, message: e.message })
  }).finally(() => { jobs.delete(msg.id) })
}

port.on('message', (msg: ToThread) => {
  if (msg.type === 'dispose') {
    for (const j of jobs.values()) j.controller.abort(new InferenceError('the inference thread is stopping'))
    const done = runner?.dispose() ?? streamer?.dispose() ?? Promise.resolve()
    done.then(() => { post({ type: 'disposed' }) }, () => { post({ type: 'disposed' }) })
    return
  }
  if (msg.type === 'start') { startStream(msg); return }
  if (msg.type === 'cancel' || msg.type === 'credit') {
    const job = jobs.get(msg.id)
    if (job === undefined) return // ended already
    if (msg.type === 'cancel') job.controller.abort(new AccelerateError(msg.code, msg.message))
    else job.credits += msg.n
    const wake = job.wake
    job.wake = undefined
    wake?.()
    return
  }
  if (runner === undefined) {
    post({ type: 'error', id: msg.id, code: 'ERR_MODEL_LOAD', message: 'the model failed to load in this thread' })
    return
  }
  if (!faultChecked) {
    faultChecked = true
    const fault = takeTestFault()
    if (fault === 'crash') process.exit(1)
    if (fault === 'hang') return // this run never answers
    if (fault === 'hold') {
      const r = runner
      held().then(() => { runBatch(r, msg) }, (err: unknown) => { post({ type: 'error', id: msg.id, code: 'ERR_INFERENCE', message: errorMessage(err) }) })
      return
    }
  }
  runBatch(runner, msg)
})

function runBatch (runner: SkillsetRunner, msg: Extract<ToThread, { type: 'run' }>): void {
  const start = performance.now()
  runner.run(msg.inputs).then((results) => {
    // An Error in an input's place fails that input's job only (structured clone would drop its code).
    const outputs = results.map((o): unknown => {
      if (!(o instanceof Error)) return o
      const e = toError(o)
      return { itemError: { code: e.code, message: e.message } } satisfies ItemFailure
    })
    post({ type: 'result', id: msg.id, outputs, runMs: performance.now() - start }, transferables(outputs))
  }, (err: unknown) => {
    const e = toError(err)
    post({ type: 'error', id: msg.id, code: e.code, message: e.message })
  })
}
