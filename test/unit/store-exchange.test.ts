import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { Uint8ArrayList } from 'uint8arraylist'
import type { Stream } from '@libp2p/interface'
import { BlockExchange } from '../../src/store/exchange/block-exchange.ts'
import { RAW_CODE } from '../../src/store/blocks/cid.ts'
import { blockFrame, controlFrame, FrameReader, WIRE_VERSION } from '../../src/store/exchange/wire.ts'
import { NextToLast } from 'blockstore-fs/sharding'
import { addrOf, readTree, smallModelFiles, startStore, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'
import type { ContentStore } from '../../src/store/content-store.ts'

/** Every raw block file of a store, as CIDs. */
async function rawBlocks (store: ContentStore): Promise<CID[]> {
  const out: CID[] = []
  for await (const { cid } of store.helia.blockstore.getAll()) {
    const v1 = CID.createV1(RAW_CODE, cid.multihash)
    if (await isRaw(store, v1)) out.push(v1)
  }
  return out
}
async function isRaw (store: ContentStore, cid: CID): Promise<boolean> {
  const bytes = await readFile(blockPath(store, cid))
  return bytes[0] !== 0x12 && bytes[0] !== 0x0a // not a dag-pb node (PBNode starts with field 2 or 1)
}
function blockPath (store: ContentStore, cid: CID): string {
  const { dir, file } = new NextToLast().encode(cid)
  return join(store.paths.blocks, dir, file)
}

async function withStores (n: number, fn: (stores: ContentStore[], root: string) => Promise<void>): Promise<void> {
  const root = await tempDir()
  const stores: ContentStore[] = []
  try {
    for (let i = 0; i < n; i++) stores.push(await startStore(join(root, `s${i}`), { network: true, exchange: { leavesPerRequest: 1 } }))
    await fn(stores, root)
  } finally {
    for (const s of stores) await s.stop()
  }
}

test('pull by CID from one peer streams the whole DAG; a second pull fetches nothing', async () => {
  await withStores(2, async ([a, b], root) => {
    assert.ok(a !== undefined && b !== undefined)
    const files = await writeModelDir(join(root, 'model'), smallModelFiles())
    const rec = await a.models.importDir(join(root, 'model'), { id: 'test/one', skillset: 'embed' })
    const seen: number[] = []
    const r = await b.models.pull(rec.cid, { peers: [addrOf(a)], onProgress: (p) => { if (p.phase === 'fetch') seen.push(p.bytes) } })
    assert.equal(r.fetched.via, 'exchange')
    assert.ok(r.fetched.blocks >= 6)
    assert.ok(seen.length > 0 && seen.every((x, i) => i === 0 || x >= (seen[i - 1] ?? 0)))
    // The counters /metrics exposes: what b fetched is what a served, block for block.
    assert.equal(b.exchange?.stats.fetchedBlocks, r.fetched.blocks)
    assert.equal(b.exchange?.stats.fetchedBytes, r.fetched.bytes)
    assert.equal(a.exchange?.stats.servedBlocks, r.fetched.blocks)
    assert.equal(a.exchange?.stats.servedBytes, r.fetched.bytes)
    assert.equal(r.record.id, rec.cid, 'an untrusted peer\'s manifest names nothing: recorded under its CID (store-trust.test.ts covers trusted ones)')
    assert.equal(r.record.skillset, 'embed')
    assert.deepEqual(r.record.files.map((f) => [f.path, f.sha256]), rec.files.map((f) => [f.path, f.sha256]))
    await b.models.exportTo(rec.cid, join(root, 'out'))
    const back = await readTree(join(root, 'out'), files.keys())
    for (const [p, bytes] of files) assert.ok(Buffer.from(back.get(p) as Uint8Array).equals(bytes), p)
    const again = await b.models.pull(rec.cid, {})
    assert.equal(again.fetched.blocks, 0)
    assert.equal(again.fetched.via, 'none')
  })
})

test('work is split across peers; a peer sending bad blocks is dropped and its share fetched elsewhere', async () => {
  await withStores(3, async ([good, bad, b], root) => {
    assert.ok(good !== undefined && bad !== undefined && b !== undefined)
    await writeModelDir(join(root, 'model'), { 'config.json': 100, 'onnx/model.onnx': 5_500_000, 'tokenizer.json': 300_000 })
    const rec = await good.models.importDir(join(root, 'model'), { id: 'test/split' })
    await bad.models.importDir(join(root, 'model'), { id: 'test/split' })
    for (const cid of await rawBlocks(bad)) {
      const p = blockPath(bad, cid)
      const bytes = await readFile(p)
      bytes[0] = (bytes[0] ?? 0) ^ 1
      await writeFile(p, bytes)
    }
    const r = await b.models.pull(rec.cid, { peers: [addrOf(bad), addrOf(good)] })
    assert.equal(r.fetched.via, 'exchange')
    assert.ok((r.fetched.byPeer[good.libp2p?.peerId.toString() ?? ''] ?? 0) > 0)
    assert.ok(r.fetched.failures.some((f) => f.startsWith(bad.libp2p?.peerId.toString() ?? '?') && /does not match its CID/.test(f)), r.fetched.failures.join('; '))
    await b.models.verify(rec.cid)
  })
})

test('a peer lacking part of the DAG is asked for nothing more of that part; several good peers share the work', async () => {
  await withStores(3, async ([a, c, b], root) => {
    assert.ok(a !== undefined && c !== undefined && b !== undefined)
    await writeModelDir(join(root, 'model'), { 'onnx/model.onnx': 6_000_000, 'config.json': 10 })
    const rec = await a.models.importDir(join(root, 'model'), { id: 'test/share' })
    await c.models.importDir(join(root, 'model'), { id: 'test/share' })
    const ex = b.exchange as BlockExchange
    const peers = [a.libp2p?.peerId, c.libp2p?.peerId].map((p) => { assert.ok(p !== undefined); return p })
    await b.libp2p?.dial(multiaddr(addrOf(a)))
    await b.libp2p?.dial(multiaddr(addrOf(c)))
    const res = await ex.fetch(CID.parse(rec.cid), peers)
    assert.equal(res.leftover.length, 0)
    assert.equal(Object.keys(res.byPeer).length, 2, `both peers served: ${JSON.stringify(res.byPeer)}`)
    // now c loses a leaf: a fresh client still completes, from a
    const leaf = (await rawBlocks(c))[0] as CID
    await rm(blockPath(c, leaf))
    const d = await startStore(join(root, 'd'), { network: true, exchange: { leavesPerRequest: 1 } })
    try {
      await d.libp2p?.dial(multiaddr(addrOf(a)))
      await d.libp2p?.dial(multiaddr(addrOf(c)))
      const res2 = await (d.exchange as BlockExchange).fetch(CID.parse(rec.cid), [peers[1], peers[0]] as typeof peers)
      assert.equal(res2.leftover.length, 0)
      assert.deepEqual(await (d.exchange as BlockExchange).missingBlocks(CID.parse(rec.cid)), [])
    } finally {
      await d.stop()
    }
  })
})

test('a peer without the block exchange: the pull falls back to bitswap and says why', async () => {
  await withStores(2, async ([a, b], root) => {
    assert.ok(a !== undefined && b !== undefined)
    await writeModelDir(join(root, 'model'), { 'config.json': 100, 'onnx/model.onnx': 1_500_000 })
    const rec = await a.models.importDir(join(root, 'model'), { id: 'test/bitswap' })
    await a.exchange?.stop()
    const r = await b.models.pull(rec.cid, { peers: [addrOf(a)], id: 'local/name' })
    assert.equal(r.fetched.via, 'bitswap')
    assert.equal(r.record.id, 'local/name')
    await b.models.verify('local/name')
  })
})

test('a pull with no peer to ask fails at once with what to do', async () => {
  await withStores(1, async ([b]) => {
    assert.ok(b !== undefined)
    await assert.rejects(b.models.pull('bafybeib3xidfv2qwfaonuyan7rndg2gl7bscecu6gunc5xwy6ygtw455wq'), (err: Error & { code?: string }) => err.code === 'ERR_STORE' && /no peer to fetch .* --bootstrap/.test(err.message))
    await assert.rejects(b.models.pull('some/model'), (err: Error & { code?: string }) => err.code === 'ERR_MODEL_NOT_FOUND')
  })
})

/** A minimal stream for the frame reader: messages are pushed by the test. */
function fakeStream (): Stream & { emit: (b: Uint8Array) => void, end: () => void } {
  const t = new EventTarget() as unknown as Stream & { emit: (b: Uint8Array) => void, end: () => void }
  Object.assign(t, {
    readStatus: 'readable',
    maxReadBufferLength: 4 * 1024 * 1024,
    pause () { (t as { readStatus: string }).readStatus = 'paused' },
    resume () { (t as { readStatus: string }).readStatus = 'readable' },
    emit (b: Uint8Array) { t.dispatchEvent(Object.assign(new Event('message'), { data: new Uint8ArrayList(b) })) },
    end () { t.dispatchEvent(new Event('remoteCloseWrite')) }
  })
  return t
}

test('frames parse across any chunking; oversized frames are refused; the stream pauses past its high-water mark', async () => {
  const s = fakeStream()
  const reader = new FrameReader(s, { highWater: 1000, maxFrame: 5000 })
  const cid = CID.parse('bafkreigkhuldxkyfkoaye4rgcqcwr45667vkygd45plwq6hawy7j4rbdky')
  const block = new Uint8Array(3000).fill(9)
  const all = Buffer.concat([controlFrame({ v: WIRE_VERSION, t: 'end', blocks: 1 }), blockFrame(cid, block).subarray()])
  for (let i = 0; i < all.length; i += 7) s.emit(all.subarray(i, i + 7))
  assert.equal(s.readStatus, 'paused')
  const f1 = await reader.next()
  assert.deepEqual(f1, { kind: 'control', msg: { v: 1, t: 'end', blocks: 1 } })
  const f2 = await reader.next()
  assert.equal(f2?.kind, 'block')
  assert.ok(f2?.kind === 'block' && f2.cid.equals(cid) && Buffer.from(f2.bytes).equals(block))
  assert.equal(s.readStatus, 'readable')
  s.end()
  assert.equal(await reader.next(), undefined)
  const s2 = fakeStream()
  const r2 = new FrameReader(s2, { maxFrame: 100 })
  s2.emit(blockFrame(cid, new Uint8Array(200)).subarray())
  await assert.rejects(r2.next(), (err: Error & { code?: string }) => err.code === 'ERR_MESSAGE_TOO_LARGE')
})
