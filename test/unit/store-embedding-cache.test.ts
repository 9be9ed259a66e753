import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { MemoryBlockstore } from 'blockstore-core'
import { EmbeddingCache, embeddingKey, encodeEmbedding, embeddingCid } from '../../src/store/cache/embedding-cache.ts'
import { addrOf, startStore, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'
import { multiaddr } from '@multiformats/multiaddr'

const MODEL = 'bafybeib3xidfv2qwfaonuyan7rndg2gl7bscecu6gunc5xwy6ygtw455wq'
const vec = (seed: number, n = 64): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 31 + i))

test('keys: NFC-equivalent inputs agree; model, pooling and normalisation separate entries', () => {
  const base = { modelCid: MODEL, text: 'caf\u00e9', pooling: 'mean', normalize: true }
  const k = embeddingKey(base)
  assert.match(k, /^[0-9a-f]{64}$/)
  assert.equal(embeddingKey({ ...base, text: 'cafe\u0301' }), k)
  assert.notEqual(embeddingKey({ ...base, text: 'cafe' }), k)
  assert.notEqual(embeddingKey({ ...base, pooling: 'cls' }), k)
  assert.notEqual(embeddingKey({ ...base, normalize: false }), k)
  assert.notEqual(embeddingKey({ ...base, modelCid: MODEL.replace('q', 'r') }), k)
})

test('put/get round trip; least recently used entries go first under the budget; evicted blocks are deleted', async () => {
  const dir = await tempDir()
  const blockstore = new MemoryBlockstore()
  const oneEntry = encodeEmbedding('0'.repeat(64), { dims: [64], data: vec(0) }).byteLength
  const cache = new EmbeddingCache({ blockstore }, { indexFile: join(dir, 'index.json'), budgetBytes: oneEntry * 3 + 10 })
  await cache.start()
  const keys = [0, 1, 2, 3].map((i) => embeddingKey({ modelCid: MODEL, text: `t${i}`, pooling: 'mean', normalize: true }))
  const cids = []
  for (const [i, k] of keys.slice(0, 3).entries()) cids.push(await cache.put(k, { dims: [64], data: vec(i) }))
  const got = await cache.get(keys[0] as string)
  assert.deepEqual(got?.dims, [64])
  assert.deepEqual(Array.from(got?.data ?? []), Array.from(vec(0)))
  cids.push(await cache.put(keys[3] as string, { dims: [64], data: vec(3) })) // evicts keys[1]: keys[0] was used since
  assert.equal(await cache.get(keys[1] as string), undefined)
  assert.ok(await cache.get(keys[0] as string) !== undefined)
  assert.equal(await blockstore.has(cids[1] as never), false, 'the evicted block is gone')
  assert.equal(cache.keeps(cids[0] as never), true)
  assert.equal(cache.keeps(cids[1] as never), false)
  const s = cache.stats()
  assert.equal(s.entries, 3)
  assert.ok(s.bytes <= s.budgetBytes)
  assert.equal(s.evictions, 1)
  assert.equal(s.misses, 1)
  await cache.stop()
  // the index survives a restart, in LRU order
  const again = new EmbeddingCache({ blockstore }, { indexFile: join(dir, 'index.json'), budgetBytes: oneEntry * 3 + 10 })
  await again.start()
  assert.ok(await again.get(keys[3] as string, { localOnly: true }) !== undefined)
  assert.equal(again.stats().entries, 3)
  await again.stop()
  assert.ok((await embeddingCid(new Uint8Array(1))).toString().startsWith('bafkrei'))
  await assert.rejects(cache.put(keys[0] as string, { dims: [3], data: vec(0, 4) }), /do not match/)
})

test('cached blocks survive models gc; a miss asks peers, verifies the answer and keeps it', async () => {
  const root = await tempDir()
  const a = await startStore(join(root, 'a'), { network: true })
  // only trusted peers are asked for cached embeddings (a peer's vector is checked against its key, not its model)
  const b = await startStore(join(root, 'b'), { network: true, trustedPeers: [a.libp2p!.peerId.toString()] })
  try {
    const key = embeddingKey({ modelCid: MODEL, text: 'hello', pooling: 'mean', normalize: true })
    const cid = await a.cache.put(key, { dims: [2, 32], data: vec(5) })
    await writeModelDir(join(root, 'm'), { 'config.json': 5 })
    await a.models.importDir(join(root, 'm'), { id: 'x/y' })
    await a.models.unpin('x/y')
    await a.models.gc()
    assert.equal(await a.helia.blockstore.has(cid), true, 'gc keeps what the cache indexes')

    assert.equal(await b.cache.get(key), undefined, 'no peers yet: a miss')
    await b.libp2p?.dial(multiaddr(addrOf(a)))
    const got = await b.cache.get(key)
    assert.deepEqual(got?.dims, [2, 32])
    assert.deepEqual(Array.from(got?.data ?? []), Array.from(vec(5)))
    assert.equal(b.cache.stats().peerHits, 1)
    assert.ok(await b.cache.get(key, { localOnly: true }) !== undefined, 'kept locally after a peer hit')
    const other = embeddingKey({ modelCid: MODEL, text: 'unknown', pooling: 'mean', normalize: true })
    assert.equal(await b.cache.get(other), undefined)
  } finally {
    await a.stop()
    await b.stop()
  }
})
