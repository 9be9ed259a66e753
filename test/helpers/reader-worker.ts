/** Runs in a worker thread: opens a model reader on a blocks dir and reads files (store-reader.test.ts). */
import { parentPort, workerData } from 'node:worker_threads'
import { openModelReader, transformersCache } from '../../src/store/models/reader.ts'
import type { ModelFile } from '../../src/store/models/records.ts'

const { blocksDir, cid: root, id, files } = workerData as { blocksDir: string, cid: string, id: string, files: ModelFile[] }
const reader = await openModelReader({ blocksDir, root, id, files })
const out: Record<string, Uint8Array> = {}
for (const f of await reader.files()) out[f.path] = await reader.readFile(f.path)
const cache = transformersCache(reader, id)
const res = await cache.match(`https://huggingface.co/${id}/resolve/main/onnx/model.onnx`)
const viaCache = res === undefined ? undefined : new Uint8Array(await res.arrayBuffer())
parentPort?.postMessage({ out, viaCache, contentLength: res?.headers.get('content-length') })
