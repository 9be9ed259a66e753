/**
 * A crypto implementation for `noise({ crypto })` (@chainsafe/libp2p-noise 17)
 * that keeps the package's default crypto except for ChaCha20-Poly1305 on
 * transport-sized frames.
 *
 * The default node implementation calls `createCipheriv(alg, k, ...)` with
 * the raw key bytes for every frame (up to 64 KiB each); on Node 24 that
 * builds a fresh secret key each time and costs ~25 us per frame, and
 * encryption then copies every frame once more in `Buffer.concat` to append
 * the tag. Here the `KeyObject` is built once per cipher-state key (cached
 * by the key array's identity, checked against a copy of its bytes, so a
 * reused or mutated key buffer is never served a stale key), and the
 * ciphertext and tag are returned as a `Uint8ArrayList` without copying.
 *
 * Output is byte-identical to the default (same RFC 8439 AEAD); payloads
 * under 1200 bytes (the handshake messages) go to the default unchanged,
 * as does everything else (SHA-256, HKDF, X25519).
 */
import { createCipheriv, createDecipheriv, createSecretKey, getCiphers, timingSafeEqual } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { pureJsCrypto } from '@chainsafe/libp2p-noise'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { Uint8ArrayList } from 'uint8arraylist'
import { forComponent } from '../../logger.ts'

const ALG = 'chacha20-poly1305'
const TAG = 16
/** Below this the default uses its WebAssembly ChaCha20-Poly1305, faster for small payloads. */
const SMALL = 1200

/**
 * The package's own default crypto (`defaultCrypto` in dist/src/crypto/index.js).
 * The package does not export it, so it is loaded by file; pure JS if that fails.
 */
async function loadDefaultCrypto (): Promise<ICryptoInterface> {
  let why: string
  try {
    const url = new URL('./crypto/index.js', import.meta.resolve('@chainsafe/libp2p-noise'))
    const mod = await import(url.href) as { defaultCrypto?: ICryptoInterface }
    if (typeof mod.defaultCrypto?.chaCha20Poly1305Encrypt === 'function') return mod.defaultCrypto
    why = `${url.href} has no defaultCrypto`
  } catch (err) {
    why = (err as Error).message
  }
  forComponent('ipfs-accelerate:noise').warn('using noise\'s pure-JS crypto for handshakes and small frames (slower): its default crypto could not be loaded', { reason: why })
  return pureJsCrypto
}

/** What `noise()` uses when given no `crypto`. */
export const defaultNoiseCrypto: ICryptoInterface = await loadDefaultCrypto()

interface CachedKey { raw: Buffer, key: KeyObject }
const keys = new WeakMap<Uint8Array, CachedKey>()

/** The KeyObject for `k`, built once per key array (and again if its bytes change). */
function keyObject (k: Uint8Array): KeyObject {
  const hit = keys.get(k)
  if (hit !== undefined && hit.raw.byteLength === k.byteLength && timingSafeEqual(hit.raw, k)) return hit.key
  const raw = Buffer.from(k) // a copy: the key object and the check must not follow later writes to k
  const key = createSecretKey(raw)
  keys.set(k, { raw, key })
  return key
}

// noise 17 types its lists with its own uint8arraylist 2.x, this project has
// 3.x; at runtime the two are the same (same methods, same Symbol.for brand,
// which is what `isUint8ArrayList` and `append` check), and libp2p mixes them
// already, so lists built here are cast to noise's type.
type Encrypt = ICryptoInterface['chaCha20Poly1305Encrypt']
type Decrypt = ICryptoInterface['chaCha20Poly1305Decrypt']
type NoiseList = Exclude<ReturnType<Encrypt>, Uint8Array>
const asNoiseList = (list: Uint8ArrayList): NoiseList => list as unknown as NoiseList

const encrypt: Encrypt = (plaintext, nonce, ad, k) => {
  if (plaintext.byteLength < SMALL) return defaultNoiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
  const cipher = createCipheriv(ALG, keyObject(k), nonce, { authTagLength: TAG })
  if (ad.byteLength > 0) cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
  const out = new Uint8ArrayList()
  if (plaintext instanceof Uint8Array) {
    out.append(cipher.update(plaintext))
  } else {
    for (const buf of plaintext) out.append(cipher.update(buf))
  }
  const final = cipher.final()
  if (final.byteLength > 0) out.append(final)
  out.append(cipher.getAuthTag())
  return asNoiseList(out)
}

const decrypt: Decrypt = (ciphertext, nonce, ad, k, dst) => {
  if (ciphertext.byteLength < SMALL) return defaultNoiseCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
  const len = ciphertext.byteLength - TAG
  const decipher = createDecipheriv(ALG, keyObject(k), nonce, { authTagLength: TAG })
  if (ad.byteLength > 0) decipher.setAAD(ad, { plaintextLength: len })
  decipher.setAuthTag(ciphertext.subarray(len))
  if (ciphertext instanceof Uint8Array) {
    const out = decipher.update(ciphertext.subarray(0, len))
    const final = decipher.final() // throws when the tag does not match
    return final.byteLength > 0 ? Buffer.concat([out, final]) : out
  }
  const out = new Uint8ArrayList()
  for (const buf of ciphertext.sublist(0, len)) out.append(decipher.update(buf))
  const final = decipher.final()
  if (final.byteLength > 0) out.append(final)
  return asNoiseList(out)
}

/**
 * Pass to `noise({ crypto: nativeNoiseCrypto })`. Falls back to the default
 * where node:crypto has no chacha20-poly1305 (e.g. Electron's BoringSSL).
 */
export const nativeNoiseCrypto: ICryptoInterface = getCiphers().includes(ALG)
  ? { ...defaultNoiseCrypto, chaCha20Poly1305Encrypt: encrypt, chaCha20Poly1305Decrypt: decrypt }
  : defaultNoiseCrypto
