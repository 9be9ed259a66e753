/** What every `submit` subcommand shares: the timeout flag, where to find workers, and image files. */
import { readFile, stat } from 'node:fs/promises'
import type { OptionSpec, ParsedArgs } from '../command.ts'
import { bool, str, strs } from '../command.ts'
import type { ClientNode } from '../../node/client-node.ts'
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

/** The flags of every submit: where workers are, the swarm key, the timeout and --json. */
export const CLIENT_OPTIONS: OptionSpec = Object.freeze({
  bootstrap: { type: 'string', multiple: true },
  'data-dir': { type: 'string' },
  mdns: { type: 'boolean' },
  'swarm-key': { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' }
})

export interface SubmitSession {
  client: ClientNode
  /** What is left of --timeout, which covers joining and the job together. */
  remainingMs: () => number
  /** An image's job field (inline, or served by CID until the session ends). */
  image: (bytes: Uint8Array) => Promise<Uint8Array | { cid: string, size: number }>
}

/**
 * Join the swarm as a client for one submit (keep trying to join for as
 * long as the job may take: a node busy with a burst of clients answers
 * late, not never), run `fn`, and leave: attachments detached, libp2p stopped.
 */
export async function withClient<T> (args: ParsedArgs, fn: (session: SubmitSession) => Promise<T>): Promise<T> {
  const ms = timeoutMs(args)
  const keyFile = str(args, 'swarm-key') ?? process.env.IPFS_ACCELERATE_SWARM_KEY
  const swarm = keyFile === undefined ? undefined : await (await import('../../p2p/trust/swarm-key.ts')).readSwarmKey(keyFile)
  const { ClientNode } = await import('../../node/client-node.ts')
  const client = new ClientNode({ bootstrap: await bootstrapAddrs(args), mdns: bool(args, 'mdns') ?? true, joinMs: ms, ...(swarm === undefined ? {} : { swarmKey: swarm.key }) })
  const attached: string[] = []
  try {
    const joinedAt = performance.now()
    await client.start()
    return await fn({
      client,
      remainingMs: () => Math.max(1, Math.round(ms - (performance.now() - joinedAt))),
      image: async (bytes) => {
        const field = await imageField(client, bytes)
        if (!(field instanceof Uint8Array)) attached.push(field.cid)
        return field
      }
    })
  } finally {
    for (const cid of attached) await client.detach(cid)
    await client.stop()
  }
}
