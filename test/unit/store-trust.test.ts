/**
 * Trusted peers in the content store (`trustedPeers`): a model named by id
 * is resolved only through a trusted peer's manifest (its id → CID answer
 * decides what is fetched), while a pull by CID works with any peer, since
 * the CID verifies the content. (Cached embeddings: store-embedding-cache.test.ts.)
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { addrOf, startStore, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'
import { startHostilePeer } from '../helpers/hostile-store-peer.ts'
import type { Block } from '../helpers/hostile-store-peer.ts'
import { ModelCatalog } from '../../src/models/catalog.ts'
import { readBlock } from '../../src/store/blocks/cid.ts'
import { childLinks, walkLocal } from '../../src/store/blocks/dag.ts'
import type { ContentStore } from '../../src/store/content-store.ts'

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

/** Every block of a model's DAG in `store`, by CID string (what a peer could serve). */
async function dagBlocks (store: ContentStore, root: string): Promise<Map<string, Block>> {
  const out = new Map<string, Block>()
  const bs = store.helia.blockstore
  const cids: CID[] = []
  await walkLocal(bs, CID.parse(root), (c) => { cids.push(c) })
  for (const cid of cids) out.set(cid.toString(), { cid, bytes: await readBlock(bs, cid, { offline: true }) })
  return out
}

/** What a hostile peer streams for a `dag` request: every block it has under the asked roots, parents first. */
function serveDag (blocks: Map<string, Block>, mangle: (b: Block) => Block = (b) => b): (roots: CID[]) => Block[] {
  return (roots) => {
    const out: Block[] = []
    const queue = [...roots]
    while (queue.length > 0) {
      const b = blocks.get(queue.shift()!.toString())
      if (b === undefined) continue
      out.push(mangle(b))
      for (const l of childLinks(b.cid, b.bytes)) queue.push(l.cid)
    }
    return out
  }
}

const catalogPinning = (id: string, cid: string): ModelCatalog => new ModelCatalog([{ id, skillset: 'embed', source: { kind: 'hub', repo: id }, dtypes: ['fp32'], sizeMB: 1, cid }])

test('a hostile peer is refused: another root for a pinned id, blocks that fail their CID, a manifest that takes over an id', async () => {
  const root = await tempDir()
  const honest = await startStore(join(root, 'honest'), { network: true })
  const other = await startStore(join(root, 'other'))
  await writeModelDir(join(root, 'real'), { 'config.json': 64, 'onnx/model.onnx': 300_000 })
  await writeModelDir(join(root, 'fake'), { 'config.json': 65, 'onnx/model.onnx': 300_001 })
  const real = await honest.models.importDir(join(root, 'real'), { id: 'team/model', skillset: 'embed' })
  const fake = await other.models.importDir(join(root, 'fake'), { id: 'team/model', skillset: 'embed' })
  const realBlocks = await dagBlocks(honest, real.cid)
  const fakeBlocks = await dagBlocks(other, fake.cid)
  await other.stop()
  // It answers every manifest with the fake root under the asked id, claims to hold everything, and serves the fake DAG's blocks.
  const liar = await startHostilePeer({
    manifest: (ref) => ({ ...fake, id: ref.startsWith('bafy') ? 'team/model' : ref }),
    blocks: serveDag(fakeBlocks)
  })
  // It serves the real DAG, every leaf with one byte flipped.
  const corrupter = await startHostilePeer({
    blocks: serveDag(realBlocks, (b) => b.cid.code === 0x55 ? { cid: b.cid, bytes: Uint8Array.from(b.bytes, (x, i) => i === 0 ? x ^ 1 : x) } : b)
  })
  const pinned = catalogPinning('team/model', real.cid)
  const stores: ContentStore[] = []
  const fresh = async (name: string, init: Parameters<typeof startStore>[1] = {}): Promise<ContentStore> => {
    const s = await startStore(join(root, name), { network: true, catalog: pinned, ...init })
    stores.push(s)
    return s
  }
  try {
    // 1. models.json pins the id: the liar's manifest (even from a trusted peer) is never asked, its blocks are refused
    const c1 = await fresh('c1', { trustedPeers: [liar.peerId] })
    // bitswap may fail at once or wait for a block no one has: either way the error names what the exchange found
    await assert.rejects(c1.models.pull('team/model', { peers: [liar.addr], bitswapStallMs: 2000 }), /still missing|no peer could give all/)
    assert.equal(liar.asked.includes('manifest'), false, 'a pinned id asks no manifest')
    assert.equal(await c1.models.find('team/model'), undefined, 'nothing recorded')
    const got = await c1.models.pull('team/model', { peers: [liar.addr, addrOf(honest)] })
    assert.equal(got.record.cid, real.cid, 'the pinned root, from the honest peer')

    // 2. blocks that fail their CID are refused; the honest peer gives them
    const c2 = await fresh('c2')
    await assert.rejects(c2.models.pull(real.cid, { peers: [corrupter.addr], bitswapStallMs: 2000 }), /still missing|no peer could give all.*does not match its CID/)
    const repaired = await c2.models.pull(real.cid, { peers: [corrupter.addr, addrOf(honest)] })
    assert.equal(repaired.record.cid, real.cid)
    assert.ok((repaired.fetched.byPeer[honest.libp2p!.peerId.toString()] ?? 0) > 0)
    await c2.models.verify(real.cid) // throws on a file that does not match its record

    // 3. a manifest never takes over an id this store has, nor names a model for an untrusted peer
    const c3 = await fresh('c3', { catalog: new ModelCatalog([]) })
    await c3.models.importDir(join(root, 'real'), { id: 'team/model', skillset: 'embed' })
    const byCid = await c3.models.pull(fake.cid, { peers: [liar.addr] }).catch(async () => await c3.models.pull(fake.cid, { peers: [liar.addr, addrOf(honest)] }))
    assert.notEqual(byCid.record.id, 'team/model')
    assert.equal((await c3.models.get('team/model')).cid, real.cid, 'the existing record stands')
    assert.equal((await c3.models.get('team/model')).pinned, true)
  } finally {
    await Promise.all([honest, ...stores].map(async (s) => { await s.stop() }))
    await liar.stop()
    await corrupter.stop()
  }
})

test('a pull over its size cap, or onto a disk without room, is refused before anything is written', async () => {
  const root = await tempDir()
  const a = await startStore(join(root, 'a'), { network: true })
  const tight = await startStore(join(root, 'b'), { network: true, maxPullMB: 1 })
  const full = await startStore(join(root, 'c'), { network: true, freeBytes: async () => 100 * 1024 * 1024 })
  try {
    await writeModelDir(join(root, 'm'), { 'config.json': 64, 'onnx/model.onnx': 3_000_000 })
    const rec = await a.models.importDir(join(root, 'm'), { id: 'team/big', skillset: 'embed' })
    await assert.rejects(tight.models.pull(rec.cid, { peers: [addrOf(a)] }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_STORE')
      assert.match(err.message, /over the 1\.0 MB a pull takes \(store\.maxPullMB\)/)
      return true
    })
    await assert.rejects(full.models.pull(rec.cid, { peers: [addrOf(a)] }), /needs 3\.\d MB more on disk, and the store's disk has 104\.9 MB free/)
    for (const s of [tight, full]) {
      assert.equal(await s.models.find(rec.cid), undefined)
      assert.equal(await s.helia.blockstore.has(CID.parse(rec.cid)), false, 'not even the root was written')
    }
    const ok = await tight.models.pull(rec.cid, { peers: [addrOf(a)], maxBytes: 8 * 1024 * 1024 })
    assert.equal(ok.record.cid, rec.cid, 'a larger limit for this pull lets it through')
  } finally {
    await Promise.all([a, tight, full].map(async (s) => { await s.stop() }))
  }
})
