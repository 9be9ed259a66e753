/**
 * Trusted peers in the content store (`trustedPeers`): a model named by id
 * is resolved only through a trusted peer's manifest (its id → CID answer
 * decides what is fetched), while a pull by CID works with any peer, since
 * the CID verifies the content. (Cached embeddings: store-embedding-cache.test.ts.)
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { addrOf, startStore, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'

test('by id: only a trusted peer\'s manifest is believed; by CID: any peer serves', async () => {
  const root = await tempDir()
  const a = await startStore(join(root, 'a'), { network: true })
  const untrusting = await startStore(join(root, 'b'), { network: true })
  const trusting = await startStore(join(root, 'c'), { network: true, trustedPeers: [a.libp2p!.peerId.toString()] })
  try {
    await writeModelDir(join(root, 'm'), { 'config.json': 64, 'onnx/model.onnx': 300_000 })
    const rec = await a.models.importDir(join(root, 'm'), { id: 'team/model', skillset: 'embed' })
    await assert.rejects(untrusting.models.pull('team/model', { peers: [addrOf(a)] }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_MODEL_NOT_FOUND')
      assert.match(err.message, /1 reachable peer\(s\) are not trusted/)
      assert.match(err.message, /--trusted-peer/)
      return true
    })
    assert.equal(await untrusting.models.find('team/model'), undefined, 'nothing recorded')
    const byCid = await untrusting.models.pull(rec.cid, { peers: [addrOf(a)] })
    assert.equal(byCid.record.cid, rec.cid, 'by CID from an untrusted peer: fetched and verified')
    const byId = await trusting.models.pull('team/model', { peers: [addrOf(a)] })
    assert.equal(byId.record.cid, rec.cid)
    assert.equal(byId.record.id, 'team/model')
  } finally {
    await Promise.all([a, untrusting, trusting].map(async (s) => { await s.stop() }))
  }
})
