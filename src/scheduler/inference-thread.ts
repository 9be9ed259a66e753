/**
 * Entry point of an inference thread: loads one model through its skillset
 * and runs batches, so ONNX Runtime's blocking calls stay off the event loop.
 */
import { closeSync, openSync } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
import type { TransferListItem } from 'node:worker_threads'
import { getSkillset } from '../../skillsets/index.ts'
import type { SkillsetRunner } from '../interfaces/index.ts'
import { AccelerateError, errorCode, errorMessage, InferenceError } from '../errors.ts'
import { openModelReader, transformersCache } from '../store/models/reader.ts'
import type { FromThread, ThreadInit, ToThread } from './thread-protocol.ts'

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
 *   thread only (the InferenceThread restarts it).
 * "Once" is once per node process when IPFS_ACCELERATE_TEST_FAULTS_FILE
 * names a marker file (the thread that creates it fires the fault), else
 * once per InferenceThread object (its first worker, generation 0, only).
 */
function takeTestFault (): 'hang' | 'crash' | undefined {
  const faults = process.env.IPFS_ACCELERATE_TEST_FAULTS ?? ''
  const fault = faults.includes('hang-once') ? 'hang' : faults.includes('crash-once') ? 'crash' : undefined
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

let runner: SkillsetRunner | undefined
const t0 = performance.now()
try {
  await useStore(init.model)
  runner = await getSkillset(init.skillset).load(init.model, init.plan)
  post({ type: 'ready', loadMs: performance.now() - t0 })
} catch (err) {
  post({ type: 'load-error', code: errorCode(err), message: errorMessage(err) })
}

port.on('message', (msg: ToThread) => {
  if (msg.type === 'dispose') {
    const done = runner === undefined ? Promise.resolve() : runner.dispose()
    done.then(() => { post({ type: 'disposed' }) }, () => { post({ type: 'disposed' }) })
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
  }
  const start = performance.now()
  runner.run(msg.inputs).then((outputs) => {
    post({ type: 'result', id: msg.id, outputs, runMs: performance.now() - start }, transferables(outputs))
  }, (err: unknown) => {
    // ONNX Runtime and transformers.js throw plain errors: they reach clients as ERR_INFERENCE.
    const e = err instanceof AccelerateError ? err : new InferenceError(`inference on ${init.model.id} failed: ${errorMessage(err)}`, { cause: err })
    post({ type: 'error', id: msg.id, code: e.code, message: e.message })
  })
})
