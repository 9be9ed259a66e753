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
import { createHash } from 'node:crypto'
import { encode } from 'cborg'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { errorMessage } from '../errors.ts'

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
  return encode({ ctx: CONTEXT, jobId: f.jobId, client: f.client, worker: f.worker, model: f.model, modelCid: f.modelCid, provider: f.provider, dtype: f.dtype, inputHash: f.inputHash, outputHash: f.outputHash })
}

export async function signResult (key: PrivateKey, f: SignedFields): Promise<Uint8Array> {
  return await key.sign(signedBytes(f))
}

/** Check a result's signature against the worker's peer id; a reason when it fails, undefined when it holds. */
export async function verifyResult (f: SignedFields, signature: Uint8Array): Promise<string | undefined> {
  let ok: boolean
  try {
    const key = peerIdFromString(f.worker).publicKey
    if (key === undefined) return `peer id ${f.worker} does not embed a public key`
    ok = await key.verify(signedBytes(f), signature)
  } catch (err) {
    return `the signature could not be checked: ${errorMessage(err)}`
  }
  return ok ? undefined : 'the signature does not match the result'
}
