import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { dagPbLinks } from '../../src/store/blocks/dag.ts'
import { DAG_PB_CODE, RAW_CODE, readBlock } from '../../src/store/blocks/cid.ts'
import { readTree, sha256, smallModelFiles, startStore, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'

test('import → export round trip is byte-identical, with sha256 and size records', async () => {
  const root = await tempDir()
  const files = await writeModelDir(join(root, 'model'), smallModelFiles())
  const store = await startStore(join(root, 'data'))
  try {
    const rec = await store.models.importDir(join(root, 'model'), { id: 'test/small', skillset: 'embed' })
    assert.equal(CID.parse(rec.cid).version, 1)
    assert.equal(rec.pinned, true)
    assert.deepEqual(rec.files.map((f) => f.path), [...files.keys()].sort())
    for (const f of rec.files) {
      const bytes = files.get(f.path) as Uint8Array
      assert.equal(f.size, bytes.byteLength, f.path)
      assert.equal(f.sha256, sha256(bytes), f.path)
    }
    assert.equal(rec.size, [...files.values()].reduce((s, b) => s + b.byteLength, 0))
    // identical files give identical CIDs (shared blocks)
    const byPath = new Map(rec.files.map((f) => [f.path, f.cid]))
    assert.equal(byPath.get('tokenizer.json'), byPath.get('onnx/copy-of-tokenizer.json'))

    await store.models.exportTo('test/small', join(root, 'out'))
    const back = await readTree(join(root, 'out'), files.keys())
    for (const [p, bytes] of files) assert.ok(Buffer.from(back.get(p) as Uint8Array).equals(bytes), `${p} differs after export`)
    assert.equal((await store.models.verify(rec.cid)).id, 'test/small')
  } finally {
    await store.stop()
  }
})

test('UnixFS layout: CIDv1, raw leaves, 1 MiB chunks; the same folder gives the same CID anywhere', async () => {
  const root = await tempDir()
  await writeModelDir(join(root, 'model'), { 'config.json': 10, 'onnx/model.onnx': 2_500_000 })
  const a = await startStore(join(root, 'a'))
  const b = await startStore(join(root, 'b'))
  try {
    const ra = await a.models.importDir(join(root, 'model'), { id: 'x/a' })
    const rb = await b.models.importDir(join(root, 'model'), { id: 'x/b' })
    assert.equal(ra.cid, rb.cid)
    const onnx = ra.files.find((f) => f.path === 'onnx/model.onnx')
    assert.ok(onnx !== undefined)
    const fileCid = CID.parse(onnx.cid)
    assert.equal(fileCid.code, DAG_PB_CODE)
    const links = dagPbLinks(await readBlock(a.helia.blockstore, fileCid))
    assert.equal(links.length, 3)
    for (const l of links) assert.equal(l.cid.code, RAW_CODE)
    assert.deepEqual(links.map((l) => l.tsize), [1048576, 1048576, 2_500_000 - 2 * 1048576])
    assert.equal(CID.parse(ra.files.find((f) => f.path === 'config.json')?.cid ?? '').code, RAW_CODE)
  } finally {
    await a.stop()
    await b.stop()
  }
})

test('unpin + gc: shared blocks stay while another pinned model uses them; re-import replaces a record', async () => {
  const root = await tempDir()
  const shared = new Uint8Array(300_000).fill(7)
  await writeModelDir(join(root, 'm1'), { 'config.json': 5, 'onnx/model.onnx': shared })
  await writeModelDir(join(root, 'm2'), { 'config.json': 6, 'onnx/model.onnx': shared })
  const store = await startStore(join(root, 'data'))
  try {
    const r1 = await store.models.importDir(join(root, 'm1'), { id: 'm/one' })
    const r2 = await store.models.importDir(join(root, 'm2'), { id: 'm/two' })
    await store.models.unpin('m/one')
    const g1 = await store.models.gc()
    assert.ok(g1.deletedBlocks >= 2, `deleted ${g1.deletedBlocks}`)
    await store.models.verify('m/two')
    await assert.rejects(store.models.exportTo('m/one', join(root, 'out1')), /not complete/)
    const list = await store.models.list()
    assert.deepEqual(list.map((m) => [m.id, m.pinned, m.local]), [['m/one', false, false], ['m/two', true, true]])
    // gc again deletes nothing more; a pinned model survives untouched
    assert.equal((await store.models.gc()).deletedBlocks, 0)
    // re-importing m/two's id with other content unpins the old root
    await writeModelDir(join(root, 'm3'), { 'config.json': 9 })
    const r3 = await store.models.importDir(join(root, 'm3'), { id: 'm/two' })
    assert.notEqual(r3.cid, r2.cid)
    assert.ok((await store.models.gc()).deletedBlocks >= 3)
    await store.models.verify('m/two')
    assert.notEqual(r1.cid, r2.cid)
  } finally {
    await store.stop()
  }
})

test('unknown models and bad folders fail with codes that say what to do', async () => {
  const root = await tempDir()
  const store = await startStore(join(root, 'data'))
  try {
    await assert.rejects(store.models.get('no/such'), (err: Error & { code?: string }) => err.code === 'ERR_MODEL_NOT_FOUND' && /models import/.test(err.message))
    await assert.rejects(store.models.importDir(join(root, 'missing')), (err: Error & { code?: string }) => err.code === 'ERR_STORE')
    await assert.rejects(store.models.importDir(root, { id: '../bad' }), /not a valid model id/)
    await assert.rejects(store.models.pull('no/such'), /no network/)
  } finally {
    await store.stop()
  }
})

test('a folder that holds the store, or lies inside it, is refused with ERR_STORE (found by fuzzing the API: it raced with the store and failed with a raw ENOENT)', async () => {
  const root = await tempDir()
  const store = await startStore(join(root, 'data'))
  try {
    await writeModelDir(join(root, 'model'), smallModelFiles())
    for (const dir of [root, join(root, '.'), join(root, 'data'), join(root, 'data', 'store'), join(root, 'data', 'store', 'blocks'), join(root, 'model', '..', 'data')]) {
      await assert.rejects(store.models.importDir(dir, { id: 'test/own' }), (err: Error & { code?: string }) => err.code === 'ERR_STORE' && /overlaps this node's store/.test(err.message), dir)
    }
    const rec = await store.models.importDir(join(root, 'model'), { id: 'test/beside' })
    assert.equal(rec.files.length, 5, 'a folder beside the store imports')
    await writeModelDir(join(root, 'data', 'staging', 'm'), smallModelFiles())
    assert.equal((await store.models.importDir(join(root, 'data', 'staging', 'm'), { id: 'test/staged' })).files.length, 5, 'a folder elsewhere in the data dir (staging) imports')
  } finally {
    await store.stop()
  }
})
