/**
 * blockstore-fs with faster block I/O: `get` is one `readFile` per block
 * instead of a read stream of 64 KiB chunks (model blocks are 1 MiB; the
 * stream made every read of a model several times slower), and `put`
 * writes a temp file and renames it into place without blockstore-fs's
 * per-write mkdir and write queue. The layout is blockstore-fs's own
 * (NextToLast sharding, `.data` files), and every block appears whole or
 * not at all, so other processes and threads can share the directory.
 */
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import type { FsBlockstoreInit } from 'blockstore-fs'
import { NextToLast } from 'blockstore-fs/sharding'
import type { CID } from 'multiformats/cid'

/** Same `name` as interface-store's error: Helia and its helpers test for it. */
export class BlockNotFoundError extends Error {
  override name = 'NotFoundError'
}

let tmpCounter = 0

export class FastFsBlockstore extends FsBlockstore {
  private readonly layout: NextToLast
  private readonly dirs = new Set<string>()

  constructor (location: string, init: Omit<FsBlockstoreInit, 'shardingStrategy'> = {}) {
    const layout = new NextToLast()
    super(location, { ...init, shardingStrategy: layout })
    this.layout = layout
  }

  override async * get (key: CID, options: { signal?: AbortSignal } = {}): AsyncGenerator<Uint8Array> {
    const { dir, file } = this.layout.encode(key)
    let bytes: Uint8Array
    try {
      bytes = await readFile(join(this.path, dir, file), { signal: options.signal })
    } catch (err) {
      options.signal?.throwIfAborted()
      throw new BlockNotFoundError(`block ${key.toString()} is not in ${this.path}: ${(err as Error).message}`, { cause: err })
    }
    yield bytes
  }

  override async put (key: CID, val: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options: { signal?: AbortSignal } = {}): Promise<CID> {
    const { dir, file } = this.layout.encode(key)
    const folder = join(this.path, dir)
    if (!this.dirs.has(dir)) {
      await mkdir(folder, { recursive: true })
      this.dirs.add(dir)
    }
    const target = join(folder, file)
    const tmp = `${target}.${process.pid}-${tmpCounter++}.tmp`
    try {
      await writeFile(tmp, val instanceof Uint8Array ? val : await collect(val), { signal: options.signal })
      await rename(tmp, target)
    } catch (err) {
      await unlink(tmp).catch(() => undefined) // best effort: the temp file may not exist
      throw err
    }
    return key
  }
}

async function collect (source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for await (const p of source) parts.push(p)
  return Buffer.concat(parts)
}
