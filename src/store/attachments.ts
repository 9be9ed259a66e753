/**
 * Job attachments: an input too large to travel inside a job (an image
 * over the inline limit) travels as the root CID of a UnixFS file. The
 * client imports the bytes into memory and serves them on its own libp2p
 * node over the blocks protocol (`AttachmentServer`); the worker fetches
 * them from that client (`fetchAttachment`), every block checked against
 * its CID, into memory, and nothing of it is written to the worker's
 * store. A client serves only what it attached, and only while the job
 * needs it.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { exporter } from 'ipfs-unixfs-exporter'
import { importBytes } from 'ipfs-unixfs-importer'
import { CID } from 'multiformats/cid'
import { InputTooLargeError, InvalidInputError, StoreError } from '../errors.ts'
import { BlockExchange } from './exchange/block-exchange.ts'
import { IMPORT_OPTIONS } from './models/files.ts'

type ExchangeLibp2p = Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'>

/** Block bytes a file of `size` bytes may take beyond its content: dag-pb nodes of 1 MiB chunks, with room to spare. */
function dagAllowance (size: number): number {
  return size + Math.ceil(size / 256) + 64 * 1024
}

/** The client side: attached files, held in memory and served to peers that fetch them. */
export class AttachmentServer {
  private readonly blockstore = new MemoryBlockstore()
  private readonly exchange: BlockExchange
  /** Root CID → the blocks of its file, to forget them when the job is done. */
  private readonly files = new Map<string, CID[]>()
  private starting: Promise<void> | undefined

  constructor (libp2p: ExchangeLibp2p) {
    this.exchange = new BlockExchange({ libp2p, blockstore: this.blockstore })
  }

  /** Attach `bytes`: returns the reference a job carries instead of them. */
  async add (bytes: Uint8Array): Promise<{ cid: string, size: number }> {
    this.starting ??= this.exchange.start()
    await this.starting
    const blocks: CID[] = []
    const recording = { put: async (cid: CID, block: Uint8Array) => { blocks.push(cid); return await this.blockstore.put(cid, block) } }
    const { cid } = await importBytes(bytes, recording, IMPORT_OPTIONS)
    this.files.set(cid.toString(), blocks)
    return { cid: cid.toString(), size: bytes.byteLength }
  }

  /** Stop serving an attached file (its job is over). Blocks shared with another attachment stay. */
  async remove (cid: string): Promise<void> {
    const blocks = this.files.get(cid)
    if (blocks === undefined) return
    this.files.delete(cid)
    const kept = new Set([...this.files.values()].flat().map((c) => c.toString()))
    for (const b of blocks) if (!kept.has(b.toString())) await this.blockstore.delete(b)
  }

  async stop (): Promise<void> {
    this.files.clear()
    await this.exchange.stop()
  }
}

/**
 * The worker side: fetch the file `cid` of `size` bytes from the client
 * `from` into memory and return its bytes. Fails with InvalidInputError
 * when the client does not serve it or it is not a file of that size, and
 * InputTooLargeError when it passes `maxBytes`.
 */
export async function fetchAttachment (libp2p: ExchangeLibp2p, ref: { cid: string, size: number }, from: PeerId, options: { maxBytes: number, signal?: AbortSignal }): Promise<Uint8Array> {
  if (ref.size > options.maxBytes) throw new InputTooLargeError(`attachment ${ref.cid} has ${ref.size} bytes, over the limit of ${options.maxBytes}`)
  const root = CID.parse(ref.cid)
  const blockstore = new MemoryBlockstore()
  // Fetch only: never started, so it answers no one.
  const exchange = new BlockExchange({ libp2p, blockstore })
  let fetched
  try {
    fetched = await exchange.fetch(root, [from], { maxBytes: dagAllowance(ref.size), ...(options.signal === undefined ? {} : { signal: options.signal }) })
  } catch (err) {
    options.signal?.throwIfAborted()
    if (err instanceof StoreError) throw new InvalidInputError(`cannot fetch the job's attachment ${ref.cid} from its client: ${err.message}`, { cause: err })
    throw err
  }
  if (fetched.leftover.length > 0) {
    const why = fetched.failures.join('; ')
    throw new InvalidInputError(`the job's client did not serve its attachment ${ref.cid} (${fetched.leftover.length} blocks missing${why === '' ? '' : `: ${why}`}): submit the job again`)
  }
  const entry = await exporter(root, blockstore, options.signal === undefined ? {} : { signal: options.signal })
  if (entry.type !== 'file' && entry.type !== 'raw') throw new InvalidInputError(`the job's attachment ${ref.cid} is a UnixFS ${entry.type}, not a file`)
  const out = new Uint8Array(ref.size)
  let at = 0
  for await (const chunk of entry.content()) {
    if (at + chunk.byteLength > ref.size) throw new InvalidInputError(`the job's attachment ${ref.cid} holds more than the ${ref.size} bytes its job declares`)
    out.set(chunk, at)
    at += chunk.byteLength
  }
  if (at !== ref.size) throw new InvalidInputError(`the job's attachment ${ref.cid} holds ${at} bytes, its job declares ${ref.size}`)
  return out
}
