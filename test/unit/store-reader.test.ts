import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { modelFilePath, openModelReader, transformersCache } from '../../src/store/models/reader.ts'
import { smallModelFiles, startStore, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'

test('a model reader in another thread reads files straight from the blockstore, byte-identical', async () => {
  const root = await tempDir()
  const files = await writeModelDir(join(root, 'model'), smallModelFiles())
  const store = await startStore(join(root, 'data'))
  try {
    await store.models.importDir(join(root, 'model'), { id: 'test/reader' })
    const loc = await store.models.locate('test/reader')
    const worker = new Worker(new URL('../helpers/reader-worker.ts', import.meta.url), { workerData: loc })
    const msg = await new Promise<{ out: Record<string, Uint8Array>, viaCache?: Uint8Array, contentLength?: string }>((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    await worker.terminate()
    assert.deepEqual(Object.keys(msg.out).sort(), [...files.keys()].sort())
    for (const [p, bytes] of files) assert.ok(Buffer.from(msg.out[p] as Uint8Array).equals(bytes), p)
    assert.ok(Buffer.from(msg.viaCache as Uint8Array).equals(files.get('onnx/model.onnx') as Uint8Array))
    assert.equal(msg.contentLength, String(files.get('onnx/model.onnx')?.byteLength))
  } finally {
    await store.stop()
  }
})

test('the transformers.js cache maps local paths and hub URLs to model files, and misses the rest', async () => {
  assert.equal(modelFilePath('/data/models/demo/tiny-random/onnx/model.onnx', 'demo/tiny-random'), 'onnx/model.onnx')
  assert.equal(modelFilePath('https://huggingface.co/demo/tiny-random/resolve/main/config.json?x=1', 'demo/tiny-random'), 'config.json')
  assert.equal(modelFilePath('https://huggingface.co/other/model/resolve/main/config.json', 'demo/tiny-random'), undefined)
  assert.equal(modelFilePath('/m/demo/tiny-random/../secret', 'demo/tiny-random'), undefined)
  const root = await tempDir()
  await writeModelDir(join(root, 'model'), { 'config.json': new TextEncoder().encode('{"a":1}') })
  const store = await startStore(join(root, 'data'))
  try {
    const rec = await store.models.importDir(join(root, 'model'), { id: 'demo/tiny-random' })
    // without records the reader lists the DAG itself (blocks are still checked)
    const reader = await openModelReader({ blocksDir: store.paths.blocks, root: rec.cid })
    assert.deepEqual(await reader.files(), [{ path: 'config.json', size: 7 }])
    const cache = transformersCache(reader, 'demo/tiny-random')
    assert.equal(await (await cache.match('/x/demo/tiny-random/config.json'))?.text(), '{"a":1}')
    assert.equal(await cache.match('/x/demo/tiny-random/tokenizer.json'), undefined)
    await assert.rejects(reader.readFile('nope.json'), /has no file nope\.json/)
  } finally {
    await store.stop()
  }
})

test('transformers.js loads a model from the store through the reader, with no copy on disk', async () => {
  const { loadCatalog } = await import('../../src/models/catalog.ts')
  const { ensureGeneratedModel, modelDir } = await import('../../src/models/generate/index.ts')
  const root = await tempDir()
  const entry = (await loadCatalog()).get('demo/tiny-random')
  await ensureGeneratedModel(entry, join(root, 'models'))
  const store = await startStore(join(root, 'data'))
  try {
    await store.models.importDir(modelDir(join(root, 'models'), entry.id), { id: entry.id, skillset: 'embed' })
    const loc = await store.models.locate(entry.id)
    const embed = async (from: 'store' | 'disk', localModelPath: string): Promise<{ dims: number[], data: number[] }> => {
      const worker = new Worker(new URL('../helpers/reader-transformers-worker.ts', import.meta.url), { workerData: { loc, from, localModelPath } })
      try {
        return await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject) })
      } finally {
        await worker.terminate()
      }
    }
    const viaStore = await embed('store', join(root, 'nothing-here') + '/')
    const viaDisk = await embed('disk', join(root, 'models') + '/')
    assert.deepEqual(viaStore.dims, [1, 32])
    assert.deepEqual(viaStore.data, viaDisk.data)
  } finally {
    await store.stop()
  }
})
