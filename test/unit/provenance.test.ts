/**
 * Signed results: the fast node:crypto path and @libp2p/crypto agree both
 * ways, and any change to a signed field, the output or the signer fails.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { hashInput, hashOutput, signedBytes, signResult, verifyResult } from '../../src/p2p/trust/provenance.ts'
import type { SignedFields } from '../../src/p2p/trust/provenance.ts'

async function fields (): Promise<{ key: Awaited<ReturnType<typeof generateKeyPair>>, f: SignedFields }> {
  const key = await generateKeyPair('Ed25519')
  const client = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const f: SignedFields = {
    jobId: 'abcdefgh12345678',
    client,
    worker: peerIdFromPrivateKey(key).toString(),
    model: 'demo/tiny-random',
    modelCid: 'bafybeiexample',
    provider: 'cpu',
    dtype: 'fp32',
    inputHash: hashInput({ texts: ['hello'] }, undefined),
    outputHash: hashOutput({ embeddings: new Uint8Array([1, 2, 3, 4]), count: 1, dims: 1 })
  }
  return { key, f }
}

test('a signature by the fast path verifies with @libp2p/crypto, and the reverse', async () => {
  const { key, f } = await fields()
  const fast = await signResult(key, f)
  assert.equal(await key.publicKey.verify(signedBytes(f), fast), true)
  const lib = await key.sign(signedBytes(f))
  assert.equal(await verifyResult(f, lib), undefined)
  assert.equal(await verifyResult(f, fast), undefined)
})

test('any change to what was signed fails the check', async () => {
  const { key, f } = await fields()
  const sig = await signResult(key, f)
  const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const changes: Array<Partial<SignedFields>> = [
    { jobId: 'abcdefgh12345679' }, { client: other }, { worker: other }, { model: 'demo/other' }, { modelCid: 'bafyother' },
    { provider: 'cuda' }, { dtype: 'q8' }, { inputHash: hashInput({ texts: ['hellO'] }, undefined) },
    { outputHash: hashOutput({ embeddings: new Uint8Array([1, 2, 3, 5]), count: 1, dims: 1 }) }
  ]
  for (const c of changes) assert.match(String(await verifyResult({ ...f, ...c }, sig)), /does not match|could not be checked/, JSON.stringify(Object.keys(c)))
  const bad = new Uint8Array(sig)
  bad[0] = bad[0]! ^ 1
  assert.match(String(await verifyResult(f, bad)), /does not match/)
  assert.match(String(await verifyResult({ ...f, worker: 'not-a-peer-id' }, sig)), /could not be checked/)
})

test('input and output hashes are canonical: key order does not matter, values do', () => {
  assert.deepEqual(hashInput({ a: 1, b: 'x' }, { p: true }), hashInput({ b: 'x', a: 1 }, { p: true }))
  assert.notDeepEqual(hashInput({ a: 1 }, undefined), hashInput({ a: 1 }, {}))
  assert.notDeepEqual(hashOutput({ v: new Uint8Array([0]) }), hashOutput({ v: [0] }))
})
