/**
 * Runs in a worker thread (as the inference thread would): embeds a text
 * with transformers.js loading the model either from the store through the
 * reader's custom cache, or from a folder on disk (store-reader.test.ts).
 */
import { parentPort, workerData } from 'node:worker_threads'
import { openModelReader, transformersCache } from '../../src/store/models/reader.ts'
import type { StoredModelLocation } from '../../src/store/models/model-store.ts'

const { loc, from, localModelPath } = workerData as { loc: StoredModelLocation, from: 'store' | 'disk', localModelPath: string }
const { env, pipeline } = await import('@huggingface/transformers')
env.allowRemoteModels = false
env.localModelPath = localModelPath
if (from === 'store') {
  const reader = await openModelReader({ blocksDir: loc.blocksDir, root: loc.cid, id: loc.id, files: loc.files })
  env.useCustomCache = true
  env.customCache = transformersCache(reader, loc.id)
}
const pipe = await pipeline('feature-extraction', loc.id, { dtype: 'fp32', device: 'cpu' })
const out = await pipe('content-addressed weights', { pooling: 'mean', normalize: true })
parentPort?.postMessage({ dims: out.dims, data: Array.from(out.data as Float32Array) })
await pipe.dispose()
