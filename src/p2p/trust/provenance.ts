/**
 * Signed results. Every result a worker sends carries its provenance: the
 * model's root CID, the provider and dtype it really ran on, a hash of the
 * input, and the worker's signature (its libp2p key) over these, the job,
 * the client it answers and a hash of the output. The client checks it
 * against the worker's peer id (which embeds the public key) and its own
 * input; a result that fails is refused and the job goes elsewhere.
 *
 * Hashes are sha256 of the canonical CBOR (cborg sorts map keys; byte
 * strings stay bytes), so both sides compute them from the decoded values.
 */
import { createHash, createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { encode } from 'cborg'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { errorMessage } from '../../errors.ts'
import { BoundedMap } from '../wire/bounded.ts'

/** What the worker states about how it computed a result. */
export interface ProvenanceClaim {
  modelCid: string
  provider: string
  dtype: string
}

/** The provenance on the wire (inside a result frame). */
export interface WireProvenance extends ProvenanceClaim {
  inputHash: Uint8Array
  signature: Uint8Array
}

export interface SignedFields extends ProvenanceClaim {
  jobId: string
  client: string
  worker: string
  model: string
  inputHash: Uint8Array
  outputHash: Uint8Array
  /** Streaming jobs: how many partials came before the result, and their running hash (jobs/stream-flow.ts). */
  partials?: number
  partialsHash?: Uint8Array
}

const CONTEXT = 'ipfs-accelerate/result/1'

function sha256 (bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest())
}

/** Hash of a job's input and params, as both sides see them. */
export function hashInput (input: Record<string, unknown>, params: Record<string, unknown> | undefined): Uint8Array {
  return sha256(encode({ input, params: params ?? null }))
}

export function hashOutput (output: Record<string, unknown>): Uint8Array {
  return sha256(encode(output))
}

/** The exact bytes signed: a context string and every field, canonically encoded. */
export function signedBytes (f: SignedFields): Uint8Array {
  const base = { ctx: CONTEXT, jobId: f.jobId, client: f.client, worker: f.worker, model: f.model, modelCid: f.modelCid, provider: f.provider, dtype: f.dtype, inputHash: f.inputHash, outputHash: f.outputHash }
  // A non-streaming result signs exactly what 1.0.0 signed; a stream adds its partials.
  if (f.partials === undefined && f.partialsHash === undefined) return encode(base)
  return encode({ ...base, partials: f.partials ?? null, partialsHash: f.partialsHash ?? null })
}

/*
 * Ed25519 (every identity this project makes) signs and verifies through
 * node:crypto with key objects made once: @libp2p/crypto imports the key
 * from JWK on every call, which cost ~190 us a signature and ~200 us a
 * check, about a tenth of a small job's trip. Other key types take
 * @libp2p/crypto's own path.
 */
const signers = new WeakMap<PrivateKey, KeyObject>()
const verifiers = new BoundedMap<string, KeyObject>(1024, 3_600_000)
const b64url = (b: Uint8Array): string => Buffer.from(b).toString('base64url')

export async function signResult (key: PrivateKey, f: SignedFields): Promise<Uint8Array> {
  if (key.type !== 'Ed25519') return await key.sign(signedBytes(f))
  let obj = signers.get(key)
  if (obj === undefined) {
    obj = createPrivateKey({ format: 'jwk', key: { crv: 'Ed25519', kty: 'OKP', d: b64url(key.raw.subarray(0, 32)), x: b64url(key.publicKey.raw) } })
    signers.set(key, obj)
  }
  return new Uint8Array(nodeSign(null, signedBytes(f), obj))
}

/** Check a result's signature against the worker's peer id; a reason when it fails, undefined when it holds. */
export async function verifyResult (f: SignedFields, signature: Uint8Array): Promise<string | undefined> {
  let ok: boolean
  try {
    let obj = verifiers.get(f.worker)
    if (obj !== undefined) {
      ok = nodeVerify(null, signedBytes(f), obj, signature)
    } else {
      const key = peerIdFromString(f.worker).publicKey
      if (key === undefined) return `peer id ${f.worker} does not embed a public key`
      if (key.type === 'Ed25519') {
        obj = createPublicKey({ format: 'jwk', key: { crv: 'Ed25519', kty: 'OKP', x: b64url(key.raw) } })
        verifiers.set(f.worker, obj)
        ok = nodeVerify(null, signedBytes(f), obj, signature)
      } else {
        ok = await key.verify(signedBytes(f), signature)
      }
    }
  } catch (err) {
    return `the signature could not be checked: ${errorMessage(err)}`
  }
  return ok ? undefined : 'the signature does not match the result'
}
