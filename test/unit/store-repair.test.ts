/**
 * Store hardening in one process: a pull re-checks blocks that are all here
 * and re-fetches a corrupt one; start-up reconciles pins with records after
 * a simulated crash (a whole pending import is completed, an incomplete
 * pending pull is freed and shown as interrupted, a pin no record names is
 * freed), and gc frees what they left.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { readBlock } from '../../src/store/blocks/cid.ts'
import { dagPbLinks } from '../../src/store/blocks/dag.ts'
import type { ContentStore } from '../../src/store/content-store.ts'
import { addrOf, blockFile, smallModelFiles, startStore, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'

/** The first leaf of a model file. */
async function firstLeaf (store: ContentStore, fileCid: string): Promise<CID> {
  const leaf = dagPbLinks(await readBlock(store.helia.blockstore, CID.parse(fileCid)))[0]?.cid
  assert.ok(leaf !== undefined)
  return leaf
}

async function flipByte (path: string): Promise<void> {
  const bytes = await readFile(path)
  bytes[10] = (bytes[10] ?? 0) ^ 0xff
  await writeFile(path, bytes)
}

/** Rewrite records.json as a crash would have left it. */
async function rewriteRecords (store: ContentStore, edit: (raw: { models: Array<{ id: string, cid: string }>, pending?: unknown[] }) => void): Promise<void> {
  const raw = JSON.parse(await readFile(store.paths.records, 'utf8')) as { models: Array<{ id: string, cid: string }>, pending?: unknown[] }
  edit(raw)
  await writeFile(store.paths.records, JSON.stringify(raw))
}

test('pull of a model whose blocks are all here but one is corrupt re-checks and re-fetches it from a peer', async () => {
  const root = await tempDir()
  await writeModelDir(join(root, 'model'), smallModelFiles())
  const a = await startStore(join(root, 'a'), { network: true })
  const b = await startStore(join(root, 'b'), { network: true })
  try {
    const rec = await a.models.importDir(join(root, 'model'), { id: 'test/repair' })
    await b.models.pull(rec.cid, { peers: [addrOf(a)], id: 'test/repair' })
    const onnx = rec.files.find((f) => f.path === 'onnx/model.onnx')
    assert.ok(onnx !== undefined)
    const leaf = await firstLeaf(b, onnx.cid)
    await flipByte(blockFile(b.paths.blocks, leaf))
    assert.equal((await b.exchange?.missingBlocks(CID.parse(rec.cid)))?.length, 0, 'every block is present')

    const r = await b.models.pull('test/repair', { peers: [addrOf(a)] })
    assert.equal(r.fetched.blocks, 1, 'exactly the corrupt block is fetched again')
    assert.equal(r.fetched.via, 'exchange')
    assert.match(r.fetched.failures.join('\n'), /1 local block\(s\) did not match their CID/)
    await b.models.verify('test/repair')
    assert.equal((await b.models.list())[0]?.state, 'ready')
    const again = await b.models.pull('test/repair', { peers: [addrOf(a)] })
    assert.deepEqual([again.fetched.blocks, again.fetched.via], [0, 'none'])
  } finally {
    await b.stop()
    await a.stop()
  }
})

test('start-up completes an import that a crash cut short after pinning (pending, DAG whole)', async () => {
  const root = await tempDir()
  await writeModelDir(join(root, 'model'), smallModelFiles())
  const dataDir = join(root, 'data')
  let store = await startStore(dataDir)
  const rec = await store.models.importDir(join(root, 'model'), { id: 'test/crashed-import', skillset: 'embed' })
  await store.stop()
  // as if the process died between pinning and saving the record
  await rewriteRecords(store, (raw) => {
    raw.models = []
    raw.pending = [{ cid: rec.cid, op: 'import', id: 'test/crashed-import', skillset: 'embed', startedAt: new Date().toISOString(), pid: 999_999, interrupted: false }]
  })
  store = await startStore(dataDir)
  try {
    assert.deepEqual(store.models.lastReconcile, { completed: [rec.cid], interrupted: [], unpinnedOrphans: [] })
    const [m] = await store.models.list()
    assert.deepEqual([m?.id, m?.cid, m?.state, m?.pinned, m?.source, m?.skillset], ['test/crashed-import', rec.cid, 'ready', true, 'import', 'embed'])
    assert.deepEqual((await store.models.get('test/crashed-import')).files.map((f) => f.sha256), rec.files.map((f) => f.sha256))
    assert.deepEqual(await store.models.gc(), { deletedBlocks: 0 })
    await store.models.verify('test/crashed-import')
  } finally {
    await store.stop()
  }
})

test('start-up frees the pin of a pull a crash cut short (DAG incomplete); list shows it; gc frees its blocks', async () => {
  const root = await tempDir()
  await writeModelDir(join(root, 'model'), smallModelFiles())
  const dataDir = join(root, 'data')
  let store = await startStore(dataDir)
  const rec = await store.models.importDir(join(root, 'model'), { id: 'test/crashed-pull' })
  const onnx = rec.files.find((f) => f.path === 'onnx/model.onnx')
  assert.ok(onnx !== undefined)
  const leaf = await firstLeaf(store, onnx.cid)
  await store.stop()
  // as if a pull died mid-fetch, with the root pinned (a pin of an earlier try) and one block never written
  await rm(blockFile(store.paths.blocks, leaf))
  await rewriteRecords(store, (raw) => {
    raw.models = []
    raw.pending = [{ cid: rec.cid, op: 'pull', startedAt: new Date().toISOString(), pid: 999_999, interrupted: false }]
  })
  store = await startStore(dataDir)
  try {
    assert.deepEqual(store.models.lastReconcile, { completed: [], interrupted: [rec.cid], unpinnedOrphans: [] })
    assert.equal(await store.helia.pins.isPinned(CID.parse(rec.cid)), false)
    const [m] = await store.models.list()
    assert.deepEqual([m?.cid, m?.state, m?.pinned, m?.source], [rec.cid, 'interrupted', false, 'pull'])
    const { deletedBlocks } = await store.models.gc()
    assert.ok(deletedBlocks >= 5, `gc freed the interrupted pull's blocks (${deletedBlocks})`)
    assert.deepEqual(await store.models.list(), [], 'gc dropped the interrupted entry')
    let left = 0
    for await (const _ of store.helia.blockstore.getAll()) left++
    assert.equal(left, 0)
  } finally {
    await store.stop()
  }
})

test('start-up frees a pin that no record or pending entry names; gc then frees its blocks', async () => {
  const root = await tempDir()
  await writeModelDir(join(root, 'model'), smallModelFiles())
  const dataDir = join(root, 'data')
  let store = await startStore(dataDir)
  const rec = await store.models.importDir(join(root, 'model'), { id: 'test/orphan' })
  await store.stop()
  await rewriteRecords(store, (raw) => { raw.models = [] })
  store = await startStore(dataDir)
  try {
    assert.deepEqual(store.models.lastReconcile?.unpinnedOrphans, [rec.cid])
    assert.ok((await store.models.gc()).deletedBlocks >= 5)
  } finally {
    await store.stop()
  }
})

test('a pull cancelled midway leaves no pending entry and no pin; gc frees what it fetched', async () => {
  const root = await tempDir()
  await writeModelDir(join(root, 'model'), { ...smallModelFiles(), 'onnx/big.onnx': 6_000_000 })
  const a = await startStore(join(root, 'a'), { network: true, exchange: { limits: { peerBurstBytes: 1024 * 1024, peerBytesPerSecond: 2 * 1024 * 1024 } } })
  const b = await startStore(join(root, 'b'), { network: true })
  try {
    const rec = await a.models.importDir(join(root, 'model'), { id: 'test/cancelled' })
    const ac = new AbortController()
    await assert.rejects(b.models.pull(rec.cid, {
      peers: [addrOf(a)],
      signal: ac.signal,
      onProgress: (p) => { if (p.phase === 'fetch' && p.bytes > 2_000_000) ac.abort(new Error('cancelled by the test')) }
    }), /cancelled by the test/)
    assert.deepEqual(await b.models.list(), [], 'no record and no pending entry')
    let pins = 0
    for await (const _ of b.helia.pins.ls()) pins++
    assert.equal(pins, 0)
    assert.ok((await b.models.gc()).deletedBlocks >= 1, 'gc frees the blocks the cancelled pull fetched')
  } finally {
    await b.stop()
    await a.stop()
  }
})
