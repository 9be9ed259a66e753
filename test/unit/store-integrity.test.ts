import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { blockMatches, readBlock } from '../../src/store/blocks/cid.ts'
import { dagPbLinks } from '../../src/store/blocks/dag.ts'
import { verifyLocalFiles } from '../../src/store/models/files.ts'
import { openModelReader } from '../../src/store/models/reader.ts'
import { blockFile, smallModelFiles, startStore, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'

const isIntegrity = (re: RegExp) => (err: Error & { code?: string }): boolean => err.code === 'ERR_MODEL_INTEGRITY' && re.test(err.message)

/** Flip one byte of the first leaf of onnx/model.onnx on disk; returns that leaf's CID. */
async function corruptLeaf (blocksDir: string, fileCid: CID, blockstore: Parameters<typeof readBlock>[0]): Promise<CID> {
  const leaf = dagPbLinks(await readBlock(blockstore, fileCid))[0]?.cid
  assert.ok(leaf !== undefined)
  const path = blockFile(blocksDir, leaf)
  const bytes = await readFile(path)
  bytes[1000] = (bytes[1000] ?? 0) ^ 0xff
  await writeFile(path, bytes)
  return leaf
}

test('a corrupted block on disk: export refuses it; the reader refuses and deletes it; verify names the file', async () => {
  const root = await tempDir()
  await writeModelDir(join(root, 'model'), smallModelFiles())
  const store = await startStore(join(root, 'data'))
  try {
    const rec = await store.models.importDir(join(root, 'model'), { id: 'test/corrupt' })
    const onnx = rec.files.find((f) => f.path === 'onnx/model.onnx')
    assert.ok(onnx !== undefined)
    const leaf = await corruptLeaf(store.paths.blocks, CID.parse(onnx.cid), store.helia.blockstore)
    assert.equal(blockMatches(leaf, await readBlock(store.helia.blockstore, leaf)), false)

    await assert.rejects(store.models.exportTo('test/corrupt', join(root, 'out')), isIntegrity(/onnx\/model\.onnx/))
    const left = await readdir(join(root, 'out', 'onnx')).catch(() => [])
    assert.deepEqual(left.filter((n) => n.includes('model.onnx')), [], 'no partial or wrong file is left behind')

    const loc = await store.models.locate('test/corrupt')
    const reader = await openModelReader({ blocksDir: loc.blocksDir, root: loc.cid, id: loc.id, files: loc.files })
    await assert.rejects(reader.readFile('onnx/model.onnx'), isIntegrity(/stored block .* does not match its CID .*deleted it: run `models pull test\/corrupt`/))
    await assert.rejects(stat(blockFile(store.paths.blocks, leaf)), { code: 'ENOENT' }, 'the reader deleted the corrupt block')
    assert.equal((await reader.readFile('config.json')).byteLength, 21, 'other files still load')
    // the block is gone: verify names the file it belonged to
    await assert.rejects(store.models.verify('test/corrupt'), isIntegrity(new RegExp(`files with blocks missing or deleted: onnx/model\\.onnx \\(1 block\\(s\\): ${leaf.toString()}\\).*models pull test/corrupt`)))
  } finally {
    await store.stop()
  }
})

test('verify deletes a block that fails its CID check and names it with its file', async () => {
  const root = await tempDir()
  await writeModelDir(join(root, 'model'), smallModelFiles())
  const store = await startStore(join(root, 'data'))
  try {
    const rec = await store.models.importDir(join(root, 'model'), { id: 'test/verify' })
    const onnx = rec.files.find((f) => f.path === 'onnx/model.onnx')
    assert.ok(onnx !== undefined)
    const leaf = await corruptLeaf(store.paths.blocks, CID.parse(onnx.cid), store.helia.blockstore)
    await assert.rejects(store.models.verify('test/verify'), isIntegrity(new RegExp(`1 stored block\\(s\\) did not match their CID and were deleted: ${leaf.toString()}.*onnx/model\\.onnx`)))
    assert.equal(await store.helia.blockstore.has(leaf), false)
    assert.equal(await store.models.isWhole(CID.parse(rec.cid)), false, 'a pinned model with a deleted block is not whole')
  } finally {
    await store.stop()
  }
})

test('a model file whose sha256 does not match its record is refused at load', async () => {
  const root = await tempDir()
  const files = await writeModelDir(join(root, 'model'), smallModelFiles())
  const store = await startStore(join(root, 'data'))
  try {
    const rec = await store.models.importDir(join(root, 'model'), { id: 'test/sha' })
    const tampered = rec.files.map((f) => f.path === 'tokenizer.json' ? { ...f, sha256: '0'.repeat(64) } : f)
    const reader = await openModelReader({ blocksDir: store.paths.blocks, root: rec.cid, id: rec.id, files: tampered })
    await assert.rejects(reader.readFile('tokenizer.json'), isIntegrity(/file tokenizer\.json does not match its recorded sha256.*refusing to load/))
    const res = await reader.response('tokenizer.json')
    assert.ok(res !== undefined)
    await assert.rejects(res.arrayBuffer(), isIntegrity(/tokenizer\.json/))
    // a copy on disk is checked the same way
    assert.deepEqual(await verifyLocalFiles(join(root, 'model'), rec.files), [])
    await writeFile(join(root, 'model', 'config.json'), '{"model_type":"gpt2"}')
    const problems = await verifyLocalFiles(join(root, 'model'), rec.files)
    assert.equal(problems.length, 1)
    assert.match(problems[0] ?? '', /^config\.json: sha256 /)
    assert.equal(files.size, 5)
  } finally {
    await store.stop()
  }
})
