/**
 * What a cached embedding is: its key (what was embedded, by which weights,
 * in which dtype on which provider) and its value (a CBOR block that names
 * its key, model and dtype next to the vector). Every value is checked
 * against what the reader expects before it is used, whoever stored it.
 */
import { createHash } from 'node:crypto'
import { decode, encode } from 'cborg'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { z } from 'zod'
import { CacheEntryError, errorMessage, StoreError } from '../../errors.ts'
import { RAW_CODE, SHA2_256_CODE } from '../blocks/cid.ts'

export interface EmbeddingKeyParts {
  /** Root CID of the model that computed the embedding. */
  modelCid: string
  /** The weights' dtype (fp32, q8, ...): vectors differ between them. */
  dtype: string
  /** The execution provider (cpu, cuda, ...): kernels differ between them. */
  provider: string
  /** The input text; it is NFC-normalised and hashed, never stored. */
  text: string
  pooling: string
  normalize: boolean
}

export interface Embedding {
  dims: number[]
  data: Float32Array
}

/** What a reader expects of every cached vector it uses. */
export interface EmbeddingExpect {
  modelCid: string
  dtype: string
  /** The model's embedding width. */
  dims: number
  /** Whether vectors were L2-normalised (their norm is then 1). */
  normalize: boolean
}

/** Normalisation applied to an input before hashing: Unicode NFC, nothing else (tokenisers differ on the rest). */
export function normalizeInput (text: string): string {
  return text.normalize('NFC')
}

/** The cache key: hex sha256 over a canonical encoding of the parts. */
export function embeddingKey (parts: EmbeddingKeyParts): string {
  const inputHash = createHash('sha256').update(normalizeInput(parts.text), 'utf8').digest('hex')
  const canonical = encode(['ipfs-accelerate/embedding/2', parts.modelCid, parts.dtype, parts.provider, inputHash, parts.pooling, parts.normalize])
  return createHash('sha256').update(canonical).digest('hex')
}

/** The widest vector a value may hold (the largest embedding models are 4096-8192 wide). */
const MAX_DIMS = 65_536

const valueSchema = z.strictObject({
  v: z.literal(2),
  key: z.string().regex(/^[0-9a-f]{64}$/),
  model: z.string().min(1).max(200),
  dtype: z.string().min(1).max(20),
  dims: z.array(z.number().int().positive().max(MAX_DIMS)).length(1),
  data: z.instanceof(Uint8Array)
})

export function encodeEmbedding (key: string, meta: Pick<EmbeddingExpect, 'modelCid' | 'dtype'>, e: Embedding): Uint8Array {
  const count = e.dims.reduce((a, b) => a * b, 1)
  if (e.dims.length !== 1 || count !== e.data.length) throw new StoreError(`an embedding of dims [${e.dims.join(', ')}] with ${e.data.length} values cannot be cached: one vector per entry`)
  const data = new Uint8Array(e.data.buffer, e.data.byteOffset, e.data.byteLength)
  return encode({ v: 2, key, model: meta.modelCid, dtype: meta.dtype, dims: e.dims, data })
}

/** The key a value names (to match a peer's answer to what was asked), or undefined when it is no value. */
export function keyOfValue (bytes: Uint8Array): string | undefined {
  const parsed = valueSchema.safeParse(decodeCbor(bytes))
  return parsed.success ? parsed.data.key : undefined
}

function decodeCbor (bytes: Uint8Array): unknown {
  try {
    return decode(bytes)
  } catch (err) {
    throw new CacheEntryError(`a cached embedding block is not CBOR: ${errorMessage(err)}`, { cause: err })
  }
}

/**
 * Decode a value and check it against its key and what the reader expects:
 * the model, the dtype, the width, and finite numbers. Throws
 * CacheEntryError saying which check failed.
 */
export function decodeEmbedding (bytes: Uint8Array, key: string, expect: EmbeddingExpect): Embedding {
  const parsed = valueSchema.safeParse(decodeCbor(bytes))
  if (!parsed.success) throw new CacheEntryError('a cached embedding block is malformed')
  const v = parsed.data
  if (v.key !== key) throw new CacheEntryError('a cached embedding block carries another key')
  if (v.model !== expect.modelCid) throw new CacheEntryError(`a cached embedding was computed by model ${v.model}, not ${expect.modelCid}`)
  if (v.dtype !== expect.dtype) throw new CacheEntryError(`a cached embedding was computed in ${v.dtype}, not ${expect.dtype}`)
  if (v.dims[0] !== expect.dims) throw new CacheEntryError(`a cached embedding has ${v.dims[0]} dims, the model gives ${expect.dims}`)
  if (v.data.byteLength !== expect.dims * 4) throw new CacheEntryError(`a cached embedding holds ${v.data.byteLength} bytes for ${expect.dims} float32 values`)
  const copy = new Uint8Array(v.data)
  const data = new Float32Array(copy.buffer, 0, expect.dims)
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) throw new CacheEntryError(`a cached embedding holds a non-finite value at ${i}`)
  }
  if (expect.normalize) {
    let sq = 0
    for (let i = 0; i < data.length; i++) sq += data[i]! * data[i]!
    if (Math.abs(Math.sqrt(sq) - 1) > 1e-3) throw new CacheEntryError(`a cached embedding of a normalised model has norm ${Math.sqrt(sq).toFixed(4)}, not 1`)
  }
  return { dims: [expect.dims], data }
}

export function embeddingCid (bytes: Uint8Array): CID {
  const digest = Digest.create(SHA2_256_CODE, createHash('sha256').update(bytes).digest())
  return CID.createV1(RAW_CODE, digest)
}
