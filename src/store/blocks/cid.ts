/**
 * Blocks and their names: the codecs a model DAG uses, checking bytes
 * against a CID, reading a block whole, and parsing CIDs from text.
 */
import { createHash } from 'node:crypto'
import { base32 } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import type { Blockstore } from 'interface-blockstore'
import { StoreError } from '../../errors.ts'

export const RAW_CODE = 0x55
export const DAG_PB_CODE = 0x70
export const SHA2_256_CODE = 0x12
export const IDENTITY_CODE = 0x00
/** Largest block we accept from anyone (bitswap's limit is 2 MiB; we write 1 MiB). */
export const MAX_BLOCK_BYTES = 4 * 1024 * 1024

export type BlockGetter = Pick<Blockstore, 'get'>

/** Whether `bytes` hash to `cid`. Only sha2-256 and identity multihashes are known. */
export function blockMatches (cid: CID, bytes: Uint8Array): boolean {
  const mh = cid.multihash
  if (mh.code === SHA2_256_CODE) {
    const digest = createHash('sha256').update(bytes).digest()
    return digest.length === mh.digest.length && digest.equals(mh.digest)
  }
  if (mh.code === IDENTITY_CODE) return Buffer.from(mh.digest).equals(bytes)
  throw new StoreError(`unsupported multihash 0x${mh.code.toString(16)} in ${cid.toString()}: only sha2-256 blocks are stored`)
}

/** A stable key for a block in maps: blockstores key blocks by multihash, not CID. */
export function blockKey (cid: CID): string {
  return base32.encode(cid.multihash.bytes)
}

/** Read a whole block from a blockstore whose `get` yields chunks. */
export async function readBlock (blockstore: BlockGetter, cid: CID, options: { signal?: AbortSignal, offline?: boolean } = {}): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  let length = 0
  for await (const chunk of blockstore.get(cid, options)) {
    chunks.push(chunk)
    length += chunk.byteLength
    if (length > MAX_BLOCK_BYTES) throw new StoreError(`block ${cid.toString()} is over ${MAX_BLOCK_BYTES} bytes`)
  }
  if (chunks.length === 1 && chunks[0] !== undefined) return chunks[0]
  return Buffer.concat(chunks, length)
}

/** Parse a CID string, or throw a StoreError that says what was expected. */
export function parseCid (text: string): CID {
  try {
    return CID.parse(text)
  } catch (err) {
    throw new StoreError(`"${text}" is not a CID`, { cause: err })
  }
}

export function tryParseCid (text: string): CID | undefined {
  if (!/^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,}|z[1-9A-HJ-NP-Za-km-z]{20,}|f[0-9a-f]{20,})$/.test(text)) return undefined
  try {
    return CID.parse(text)
  } catch {
    return undefined // not a CID: the caller treats the text as a model id
  }
}
