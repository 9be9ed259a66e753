/** What every `submit` subcommand shares: the timeout flag, where to find workers, and image files. */
import { readFile, stat } from 'node:fs/promises'
import type { ParsedArgs } from '../command.ts'
import { str, strs } from '../command.ts'
import { defaultDataDir } from '../../config/schema.ts'
import { UsageError } from '../../errors.ts'
import { readLiveNodeFile } from '../../node/node-file.ts'
import { checkImageBytes, DEFAULT_INLINE_IMAGE_BYTES, IMAGE_LIMIT_CEILINGS } from '../../../skillsets/image/index.ts'

const MAX_TIMEOUT_S = 3600

/** A result's provenance as `submit --json` prints it: hashes in hex, the signature in base64. */
export function provenanceJson (p: { worker: string, modelCid: string, provider: string, dtype: string, inputHash: Uint8Array, partialsHash?: Uint8Array, signature: Uint8Array }): Record<string, string> {
  return {
    worker: p.worker,
    modelCid: p.modelCid,
    provider: p.provider,
    dtype: p.dtype,
    inputHash: Buffer.from(p.inputHash).toString('hex'),
    ...(p.partialsHash === undefined ? {} : { partialsHash: Buffer.from(p.partialsHash).toString('hex') }),
    signature: Buffer.from(p.signature).toString('base64')
  }
}

export function timeoutMs (args: ParsedArgs): number {
  const raw = str(args, 'timeout') ?? '30'
  const s = Number(raw)
  if (!Number.isFinite(s) || s <= 0 || s > MAX_TIMEOUT_S) throw new UsageError(`--timeout ${raw}: expected seconds between 0 and ${MAX_TIMEOUT_S}`)
  return Math.round(s * 1000)
}

/** Where to find workers: --bootstrap, else the node running from this data dir. */
export async function bootstrapAddrs (args: ParsedArgs): Promise<string[]> {
  const given = strs(args, 'bootstrap')
  if (given.length > 0) return given
  const dataDir = str(args, 'data-dir') ?? process.env.IPFS_ACCELERATE_DATA_DIR ?? defaultDataDir()
  const local = await readLiveNodeFile(dataDir)
  const all = local?.multiaddrs ?? []
  const loopback = all.filter((a) => a.startsWith('/ip4/127.') || a.startsWith('/ip6/::1/'))
  return loopback.length > 0 ? loopback : all
}


/** An image a job carries, read from a file: `key` is its field in the job's input. */
export interface JobImage { key: string, bytes: Uint8Array }

/** The bytes of the image file `file` (a PNG, JPEG or WebP), bounded; a UsageError names the flag. */
export async function readImageFile (flag: string, file: string): Promise<Uint8Array> {
  let bytes: Uint8Array
  try {
    const size = (await stat(file)).size
    if (size > IMAGE_LIMIT_CEILINGS.maxBytes) throw new UsageError(`--${flag} ${file}: ${size} bytes, over the ${IMAGE_LIMIT_CEILINGS.maxBytes}-byte limit on images: scale it down`)
    bytes = new Uint8Array(await readFile(file))
  } catch (err) {
    if (err instanceof UsageError) throw err
    throw new UsageError(`--${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  try {
    checkImageBytes(bytes, IMAGE_LIMIT_CEILINGS, `--${flag} ${file}`)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  return bytes
}

/**
 * The image field of a job: the bytes themselves up to the inline limit,
 * else a reference the client serves (the worker fetches it from the
 * client by CID; `detach` it when the job is over).
 */
export async function imageField (client: { attach: (bytes: Uint8Array) => Promise<{ cid: string, size: number }> }, bytes: Uint8Array): Promise<Uint8Array | { cid: string, size: number }> {
  return bytes.byteLength <= DEFAULT_INLINE_IMAGE_BYTES ? bytes : await client.attach(bytes)
}
