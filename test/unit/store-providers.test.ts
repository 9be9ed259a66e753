import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { ProviderTable, PROVIDER_ROUTER_NAME } from '../../src/store/exchange/providers.ts'

const ROOT = 'bafybeib3xidfv2qwfaonuyan7rndg2gl7bscecu6gunc5xwy6ygtw455wq'

test('provider records from adverts expire, are replaced per peer, and answer Helia routing', async () => {
  let now = 1000
  const table = new ProviderTable({ now: () => now })
  const p1 = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  const p2 = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  const ma = multiaddr(`/ip4/127.0.0.1/tcp/4101/p2p/${p1.toString()}`)
  table.setFromAdvert(p1, [ROOT], { multiaddrs: [ma], ttlMs: 15_000 })
  table.add([ROOT], p2.toString(), { ttlMs: 5000 })
  assert.deepEqual(table.find(ROOT).map((e) => e.peerId.toString()).sort(), [p1.toString(), p2.toString()].sort())
  const found = []
  for await (const p of table.router().findProviders?.(CID.parse(ROOT)) ?? []) found.push(p)
  assert.equal(found.length, 2)
  assert.ok(found.every((p) => p.router === PROVIDER_ROUTER_NAME))
  now += 6000
  assert.deepEqual(table.find(ROOT).map((e) => e.peerId.toString()), [p1.toString()], 'p2 expired')
  table.setFromAdvert(p1, [], { ttlMs: 15_000 })
  assert.deepEqual(table.find(ROOT), [], 'a leaving or changed advert drops what it no longer names')
})
