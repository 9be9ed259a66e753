import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { noise, pureJsCrypto } from '@chainsafe/libp2p-noise'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import type { Libp2p, Stream } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'
import { Uint8ArrayList } from 'uint8arraylist'
import { defaultNoiseCrypto, nativeNoiseCrypto } from '../../src/p2p/swarm/noise-crypto.ts'

const SIZES = [0, 1, 15, 16, 17, 1199, 1200, 1201, 4096, 65519, 65535 - 16, 64 * 1024]
const bytes = (x: { subarray: () => Uint8Array }): Buffer => Buffer.from(x.subarray())
/** noise's own uint8arraylist is 2.x (the project's is 3.x): the same at runtime, not to tsc. */
type NoiseInput = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0]
/** The same bytes split over a list of several arrays (as noise's decoder hands them over). */
const split = (b: Uint8Array): NoiseInput => {
  const a = Math.floor(b.byteLength / 3)
  return new Uint8ArrayList(b.subarray(0, a), b.subarray(a, 2 * a + 1), b.subarray(2 * a + 1)) as unknown as NoiseInput
}

test('the default it delegates to is the package default, not the pure-JS fallback', () => {
  assert.notEqual(defaultNoiseCrypto, pureJsCrypto)
  assert.notEqual(defaultNoiseCrypto.hashSHA256, pureJsCrypto.hashSHA256)
  assert.notEqual(nativeNoiseCrypto.chaCha20Poly1305Encrypt, defaultNoiseCrypto.chaCha20Poly1305Encrypt)
  assert.equal(nativeNoiseCrypto.getHKDF, defaultNoiseCrypto.getHKDF)
  assert.equal(nativeNoiseCrypto.generateX25519SharedKey, defaultNoiseCrypto.generateX25519SharedKey)
})

test('byte-compatible with the default both ways, any size, any input shape', () => {
  const pairs: Array<[string, ICryptoInterface, ICryptoInterface]> = [
    ['native->default', nativeNoiseCrypto, defaultNoiseCrypto],
    ['default->native', defaultNoiseCrypto, nativeNoiseCrypto],
    ['native->pureJs', nativeNoiseCrypto, pureJsCrypto]
  ]
  for (const size of SIZES) {
    for (const adLen of [0, 32]) {
      const k = randomBytes(32)
      const nonce = randomBytes(12)
      const ad = randomBytes(adLen)
      const pt = randomBytes(size)
      const expected = bytes(defaultNoiseCrypto.chaCha20Poly1305Encrypt(pt, nonce, ad, k))
      assert.equal(expected.byteLength, size + 16)
      for (const [name, enc, dec] of pairs) {
        const what = `${name} size ${size} ad ${adLen}`
        const ct = bytes(enc.chaCha20Poly1305Encrypt(pt, nonce, ad, k))
        assert.ok(ct.equals(expected), what)
        assert.ok(bytes(enc.chaCha20Poly1305Encrypt(split(pt), nonce, ad, k)).equals(expected), what + ' (list in)')
        assert.ok(bytes(dec.chaCha20Poly1305Decrypt(ct, nonce, ad, k)).equals(pt), what)
        assert.ok(bytes(dec.chaCha20Poly1305Decrypt(split(ct), nonce, ad, k)).equals(pt), what + ' (list in)')
      }
    }
  }
})

test('decrypting in place into dst, as noise does, gives the plaintext', () => {
  for (const size of [100, 65519]) {
    const k = randomBytes(32)
    const nonce = randomBytes(12)
    const pt = randomBytes(size)
    const ct = Buffer.from(bytes(defaultNoiseCrypto.chaCha20Poly1305Encrypt(pt, nonce, new Uint8Array(0), k)))
    const out = nativeNoiseCrypto.chaCha20Poly1305Decrypt(ct, nonce, new Uint8Array(0), k, ct.subarray(0, size))
    assert.ok(bytes(out).equals(pt))
  }
})

test('a tampered ciphertext, tag, nonce, ad or key fails', () => {
  for (const size of [0, 100, 65519]) {
    const k = randomBytes(32)
    const nonce = randomBytes(12)
    const ad = randomBytes(8)
    const pt = randomBytes(size)
    const ct = bytes(nativeNoiseCrypto.chaCha20Poly1305Encrypt(pt, nonce, ad, k))
    const flip = (b: Uint8Array, i: number): Buffer => { const c = Buffer.from(b); c[i] = c[i]! ^ 1; return c }
    const bad: Array<[string, () => unknown]> = [
      ['tag', () => nativeNoiseCrypto.chaCha20Poly1305Decrypt(flip(ct, ct.length - 1), nonce, ad, k)],
      ['tag (list)', () => nativeNoiseCrypto.chaCha20Poly1305Decrypt(split(flip(ct, ct.length - 16)), nonce, ad, k)],
      ['nonce', () => nativeNoiseCrypto.chaCha20Poly1305Decrypt(ct, flip(nonce, 4), ad, k)],
      ['ad', () => nativeNoiseCrypto.chaCha20Poly1305Decrypt(ct, nonce, flip(ad, 0), k)],
      ['key', () => nativeNoiseCrypto.chaCha20Poly1305Decrypt(ct, nonce, ad, flip(k, 31))],
      ['truncated', () => nativeNoiseCrypto.chaCha20Poly1305Decrypt(ct.subarray(1), nonce, ad, k)]
    ]
    if (size > 0) {
      bad.push(['ciphertext', () => nativeNoiseCrypto.chaCha20Poly1305Decrypt(flip(ct, 0), nonce, ad, k)])
      bad.push(['ciphertext (list)', () => nativeNoiseCrypto.chaCha20Poly1305Decrypt(split(flip(ct, size - 1)), nonce, ad, k)])
      bad.push(['ciphertext (default)', () => defaultNoiseCrypto.chaCha20Poly1305Decrypt(flip(ct, 0), nonce, ad, k)])
    }
    for (const [what, f] of bad) assert.throws(f, `size ${size}: ${what}`)
  }
})

test('the cached key follows the key bytes: a reused, rewritten key array is not served a stale key', () => {
  const k = new Uint8Array(randomBytes(32))
  const nonce = randomBytes(12)
  const ad = new Uint8Array(0)
  const pt = randomBytes(65519)
  const first = bytes(nativeNoiseCrypto.chaCha20Poly1305Encrypt(pt, nonce, ad, k))
  assert.ok(first.equals(bytes(defaultNoiseCrypto.chaCha20Poly1305Encrypt(pt, nonce, ad, k))))
  k.set(randomBytes(32)) // same array, new key
  const second = bytes(nativeNoiseCrypto.chaCha20Poly1305Encrypt(pt, nonce, ad, k))
  assert.ok(!second.equals(first))
  assert.ok(second.equals(bytes(defaultNoiseCrypto.chaCha20Poly1305Encrypt(pt, nonce, ad, k))))
  assert.ok(bytes(defaultNoiseCrypto.chaCha20Poly1305Decrypt(second, nonce, ad, k)).equals(pt))
  // views of one buffer at different offsets (as noise's HKDF hands out keys) are different keys
  const okm = randomBytes(96)
  const [k1, k2] = [okm.subarray(0, 32), okm.subarray(32, 64)]
  assert.ok(bytes(nativeNoiseCrypto.chaCha20Poly1305Encrypt(pt, nonce, ad, k1)).equals(bytes(defaultNoiseCrypto.chaCha20Poly1305Encrypt(pt, nonce, ad, k1))))
  assert.ok(bytes(nativeNoiseCrypto.chaCha20Poly1305Encrypt(pt, nonce, ad, k2)).equals(bytes(defaultNoiseCrypto.chaCha20Poly1305Encrypt(pt, nonce, ad, k2))))
})

const ECHO = '/ipfs-accelerate/test/noise-echo/1.0.0'

async function node (crypto: ICryptoInterface | undefined): Promise<Libp2p> {
  const n = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise(crypto === undefined ? {} : { crypto })],
    streamMuxers: [yamux()]
  })
  await n.handle(ECHO, (stream: Stream) => {
    stream.addEventListener('message', (evt) => { stream.send(evt.data) })
    stream.addEventListener('remoteCloseWrite', () => { void stream.close().catch((err: unknown) => { stream.abort(err as Error) }) })
  })
  return n
}

/** Send `data` in pieces over an echo stream and return what comes back. */
async function echo (from: Libp2p, to: Libp2p, data: Uint8Array, signal: AbortSignal): Promise<Buffer> {
  const addr = to.getMultiaddrs()[0]
  assert.ok(addr !== undefined)
  const stream = await from.dialProtocol(addr, ECHO, { signal })
  const got = new Uint8ArrayList()
  const ended = new Promise<void>((resolve, reject) => {
    stream.addEventListener('message', (evt) => { got.append(evt.data) })
    stream.addEventListener('remoteCloseWrite', () => { resolve() })
    stream.addEventListener('close', (evt) => { if (evt.error !== undefined) reject(evt.error); else resolve() })
    signal.addEventListener('abort', () => { reject(signal.reason) })
  })
  // uneven pieces: some under the 1200-byte cutoff, some over one noise frame
  const pieces = [1, 100, 1199, 1200, 65519, 65520, 200_000]
  for (let i = 0, j = 0; i < data.byteLength; j++) {
    const end = Math.min(data.byteLength, i + pieces[j % pieces.length]!)
    if (!stream.send(data.subarray(i, end))) await stream.onDrain({ signal })
    i = end
  }
  await stream.close({ signal })
  await ended
  return bytes(got)
}

test('a real handshake and echo stream between a node using it and a node using the default', async () => {
  const signal = AbortSignal.timeout(30_000)
  const nodes: Libp2p[] = []
  try {
    // count the frames that take the native path on the node using it
    const large = { enc: 0, dec: 0 }
    const counted: ICryptoInterface = {
      ...nativeNoiseCrypto,
      chaCha20Poly1305Encrypt: (p, n, a, k) => { if (p.byteLength >= 1200) large.enc++; return nativeNoiseCrypto.chaCha20Poly1305Encrypt(p, n, a, k) },
      chaCha20Poly1305Decrypt: (c, n, a, k, d) => { if (c.byteLength >= 1200) large.dec++; return nativeNoiseCrypto.chaCha20Poly1305Decrypt(c, n, a, k, d) }
    }
    const native = await node(counted)
    nodes.push(native)
    const plain = await node(undefined)
    nodes.push(plain)
    const data = randomBytes(1024 * 1024 + 12345)
    // each way round: the dialer is the noise initiator
    assert.ok((await echo(native, plain, data, signal)).equals(data), 'native dials default')
    assert.ok((await echo(plain, native, data, signal)).equals(data), 'default dials native')
    assert.ok(large.enc >= 32 && large.dec >= 32, `native frames: ${JSON.stringify(large)}`)
    const conns = native.getConnections()
    assert.ok(conns.length >= 1)
    assert.ok(conns.every((c) => c.encryption === '/noise'))
  } finally {
    await Promise.all(nodes.map(async (n) => { await n.stop() }))
  }
})
