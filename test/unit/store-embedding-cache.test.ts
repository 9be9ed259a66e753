/**
 * The embedding cache: keys that separate what differs (model, dtype,
 * provider, pooling, normalisation), LRU under a budget, values checked
 * against what the reader expects (a bad entry is dropped and is a miss),
 * batched lookups of trusted peers, answers for trusted peers only, and a
 * hostile peer's poisoned or wrong-shape vectors refused.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { MemoryBlockstore } from 'blockstore-core'
import { multiaddr } from '@multiformats/multiaddr'
import { EmbeddingCache, embeddingKey } from '../../src/store/cache/embedding-cache.ts'
import { embeddingCid, encodeEmbedding } from '../../src/store/cache/embedding-value.ts'
import type { EmbeddingExpect } from '../../src/store/cache/embedding-value.ts'
import { addrOf, startStore, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'
import { startHostilePeer } from '../helpers/hostile-store-peer.ts'

const MODEL = 'bafybeib3xidfv2qwfaonuyan7rndg2gl7bscecu6gunc5xwy6ygtw455wq'
const DIMS = 64
/** A unit vector, as a normalising model gives. */
const vec = (seed: number, n = DIMS): Float32Array => {
  const v = Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 31 + i))
  const norm = Math.hypot(...v)
  return v.map((x) => x / norm)
}
const EXPECT: EmbeddingExpect = { modelCid: MODEL, dtype: 'fp32', dims: DIMS, normalize: true }
const META = { modelCid: MODEL, dtype: 'fp32' }
const keyOf = (text: string): string => embeddingKey({ modelCid: MODEL, dtype: 'fp32', provider: 'cpu', text, pooling: 'mean', normalize: true })

test('keys: NFC-equivalent inputs agree; model, dtype, provider, pooling and normalisation separate entries', () => {
  const base = { modelCid: MODEL, dtype: 'fp32', provider: 'cpu', text: 'caf\u00e9', pooling: 'mean', normalize: true }
  const k = embeddingKey(base)
  assert.match(k, /^[0-9a-f]{64}$/)
  assert.equal(embeddingKey({ ...base, text: 'cafe\u0301' }), k)
  for (const other of [{ text: 'cafe' }, { pooling: 'cls' }, { normalize: false }, { modelCid: MODEL.replace('q', 'r') }, { dtype: 'q8' }, { provider: 'cuda' }]) {
    assert.notEqual(embeddingKey({ ...base, ...other }), k, JSON.stringify(other))
  }
})

test('put/get round trip; least recently used entries go first under the budget; evicted blocks are deleted', async () => {
  const dir = await tempDir()
  const blockstore = new MemoryBlockstore()
  const oneEntry = encodeEmbedding('0'.repeat(64), META, { dims: [DIMS], data: vec(0) }).byteLength
  const cache = new EmbeddingCache({ blockstore }, { indexFile: join(dir, 'index.json'), budgetBytes: oneEntry * 3 + 10 })
  await cache.start()
  const keys = [0, 1, 2, 3].map((i) => keyOf(`t${i}`))
  const cids = []
  for (const [i, k] of keys.slice(0, 3).entries()) cids.push(await cache.put(k, META, { dims: [DIMS], data: vec(i) }))
  const got = await cache.get(keys[0]!, EXPECT)
  assert.deepEqual(got?.dims, [DIMS])
  assert.deepEqual(Array.from(got?.data ?? []), Array.from(vec(0)))
  cids.push(await cache.put(keys[3]!, META, { dims: [DIMS], data: vec(3) })) // evicts keys[1]: keys[0] was used since
  assert.equal(await cache.get(keys[1]!, EXPECT), undefined)
  assert.ok(await cache.get(keys[0]!, EXPECT) !== undefined)
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
  assert.ok(await again.get(keys[3]!, EXPECT, { localOnly: true }) !== undefined)
  assert.equal(again.stats().entries, 3)
  await again.stop()
  assert.ok(embeddingCid(new Uint8Array(1)).toString().startsWith('bafkrei'))
  await assert.rejects(cache.put(keys[0]!, META, { dims: [3], data: vec(0, 4) }), /cannot be cached/)
})

test('an entry that is not what the model computes is dropped, is a miss, and does not stick', async () => {
  const dir = await tempDir()
  const blockstore = new MemoryBlockstore()
  const cache = new EmbeddingCache({ blockstore }, { indexFile: join(dir, 'index.json'), budgetBytes: 1 << 20 })
  await cache.start()
  const bad: Array<[string, () => Promise<unknown>]> = [
    ['wrong width', async () => await cache.put(keyOf('w'), META, { dims: [DIMS / 2], data: vec(1, DIMS / 2) })],
    ['another model', async () => await cache.put(keyOf('m'), { ...META, modelCid: MODEL.replace('q', 'r') }, { dims: [DIMS], data: vec(2) })],
    ['another dtype', async () => await cache.put(keyOf('d'), { ...META, dtype: 'q8' }, { dims: [DIMS], data: vec(3) })],
    ['not normalised', async () => await cache.put(keyOf('n'), META, { dims: [DIMS], data: vec(4).map((x) => x * 3) })],
    ['not finite', async () => await cache.put(keyOf('f'), META, { dims: [DIMS], data: vec(5).map((x, i) => i === 7 ? Number.NaN : x) })]
  ]
  const texts = ['w', 'm', 'd', 'n', 'f']
  for (const [, put] of bad) await put()
  const cids = await Promise.all(texts.map(async (t) => (await cache['localBlock'](keyOf(t)))?.cid))
  assert.deepEqual(await cache.getMany(texts.map(keyOf), EXPECT), texts.map(() => undefined), 'every bad entry is a miss')
  assert.equal(cache.stats().dropped, texts.length)
  assert.equal(cache.stats().entries, 0, 'dropped from the index')
  for (const cid of cids) assert.equal(await blockstore.has(cid!), false, 'and its block deleted')
  // a good value under the same key is used from then on
  await cache.put(keyOf('w'), META, { dims: [DIMS], data: vec(6) })
  assert.deepEqual(Array.from((await cache.get(keyOf('w'), EXPECT))?.data ?? []), Array.from(vec(6)))
  assert.equal(cache.stats().dropped, texts.length, 'nothing else dropped')
  await cache.stop()
})

test('misses are asked of trusted peers in one request; only a peer this node trusts is answered; gc keeps cached blocks', async () => {
  const root = await tempDir()
  const a = await startStore(join(root, 'a'), { network: true })
  const a2 = await startStore(join(root, 'a2'), { network: true })
  const b = await startStore(join(root, 'b'), { network: true, trustedPeers: [a.libp2p!.peerId.toString(), a2.libp2p!.peerId.toString()] })
  try {
    // a trusts b (it answers b's lookups); a2 does not (it refuses them)
    await a.stop()
    const aTrusting = await startStore(join(root, 'a'), { network: true, trustedPeers: [b.libp2p!.peerId.toString()] })
    const texts = ['hello', 'world', 'third']
    for (const [i, t] of texts.entries()) {
      await aTrusting.cache.put(keyOf(t), META, { dims: [DIMS], data: vec(10 + i) })
      await a2.cache.put(keyOf(t), META, { dims: [DIMS], data: vec(10 + i) })
    }
    const cid = (await aTrusting.cache['localBlock'](keyOf('hello')))!.cid
    await writeModelDir(join(root, 'm'), { 'config.json': 5 })
    await aTrusting.models.importDir(join(root, 'm'), { id: 'x/y' })
    await aTrusting.models.unpin('x/y')
    await aTrusting.models.gc()
    assert.equal(await aTrusting.helia.blockstore.has(cid), true, 'gc keeps what the cache indexes')

    assert.deepEqual(await b.cache.getMany(texts.map(keyOf), EXPECT), [undefined, undefined, undefined], 'no peers yet: misses')
    await b.libp2p!.dial(multiaddr(addrOf(a2)))
    assert.deepEqual(await b.cache.getMany(texts.map(keyOf), EXPECT), [undefined, undefined, undefined], 'a peer that does not trust b answers nothing')
    await b.libp2p!.dial(multiaddr(addrOf(aTrusting)))
    const got = await b.cache.getMany([...texts, 'unknown'].map(keyOf), EXPECT)
    assert.deepEqual(got.map((e) => Array.from(e?.data ?? [])), [...texts.map((_, i) => Array.from(vec(10 + i))), []])
    assert.equal(b.cache.stats().peerHits, 3)
    assert.ok(await b.cache.get(keyOf('hello'), EXPECT, { localOnly: true }) !== undefined, 'kept locally after a peer hit')
    await aTrusting.stop()
  } finally {
    await Promise.all([a2, b].map(async (s) => { await s.stop() }))
  }
})

test('a hostile trusted peer: poisoned, wrong-shape, other-model and unasked values are refused and are misses', async () => {
  const root = await tempDir()
  const texts = ['alpha', 'beta', 'gamma', 'delta']
  const block = (key: string, meta: typeof META, data: Float32Array): { cid: ReturnType<typeof embeddingCid>, bytes: Uint8Array } => {
    const bytes = encodeEmbedding(key, meta, { dims: [data.length], data })
    return { cid: embeddingCid(bytes), bytes }
  }
  const hostile = await startHostilePeer({
    cache: () => [
      block(keyOf('alpha'), META, vec(1, DIMS * 2)), // wrong width
      block(keyOf('beta'), { ...META, modelCid: MODEL.replace('q', 'r') }, vec(2)), // another model's vector
      block(keyOf('gamma'), META, vec(3).map((x) => x * 100)), // poisoned: not a unit vector
      block(keyOf('never asked'), META, vec(4)) // a key nobody asked for
    ]
  })
  const b = await startStore(join(root, 'b'), { network: true, trustedPeers: [hostile.peerId] })
  try {
    await b.libp2p!.dial(multiaddr(hostile.addr))
    const got = await b.cache.getMany(texts.map(keyOf), EXPECT)
    assert.deepEqual(got, texts.map(() => undefined))
    assert.deepEqual(hostile.asked, ['cache'], 'one request for the four keys')
    assert.equal(b.cache.stats().refused, 4)
    assert.equal(b.cache.stats().entries, 0, 'nothing refused is kept')
  } finally {
    await b.stop()
    await hostile.stop()
  }
})
