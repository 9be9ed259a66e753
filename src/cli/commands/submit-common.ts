/** What every `submit` subcommand shares: the timeout flag and where to find workers. */
import type { ParsedArgs } from '../command.ts'
import { str, strs } from '../command.ts'
import { defaultDataDir } from '../../config/schema.ts'
import { UsageError } from '../../errors.ts'
import { readLiveNodeFile } from '../../node/node-file.ts'

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

