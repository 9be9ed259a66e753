/**
 * blockstore-fs with faster block I/O: `get` is one `readFile` per block
 * instead of a read stream of 64 KiB chunks (model blocks are 1 MiB; the
 * stream made every read of a model several times slower), and `put`
 * writes a temp file and renames it into place without blockstore-fs's
 * per-write mkdir and write queue. The layout is blockstore-fs's own
 * (NextToLast sharding, `.data` files), and every block appears whole or
 * not at all, so other processes and threads can share the directory.
 * Writes are durable by default: the temp file is fsynced before the rename
 * (a crash never leaves a short block under a valid name), and its folder
 * after it (the block is there after a crash once `put` returned).
 */
import { mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises'
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

export interface FastFsBlockstoreInit extends Omit<FsBlockstoreInit, 'shardingStrategy'> {
  /** fsync each block and its folder on `put` (default true). */
  fsync?: boolean
}

export class FastFsBlockstore extends FsBlockstore {
  private readonly layout: NextToLast
  private readonly dirs = new Set<string>()
  private readonly fsync: boolean

  constructor (location: string, init: FastFsBlockstoreInit = {}) {
    const { fsync, ...rest } = init
    const layout = new NextToLast()
    super(location, { ...rest, shardingStrategy: layout })
    this.layout = layout
    this.fsync = fsync ?? true
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
      if (this.fsync) await fsyncDir(this.path) // a new shard folder's entry
      this.dirs.add(dir)
    }
    const target = join(folder, file)
    const tmp = `${target}.${process.pid}-${tmpCounter++}.tmp`
    try {
      await writeFile(tmp, val instanceof Uint8Array ? val : await collect(val), { signal: options.signal, flush: this.fsync })
      await rename(tmp, target)
      if (this.fsync) await fsyncDir(folder)
    } catch (err) {
      await unlink(tmp).catch(() => undefined) // best effort: the temp file may not exist
      throw err
    }
    return key
  }
}

/** fsync a folder, so that a rename or a new file in it survives a crash. */
export async function fsyncDir (dir: string): Promise<void> {
  const h = await open(dir, 'r')
  try {
    await h.sync()
  } finally {
    await h.close()
  }
}

async function collect (source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for await (const p of source) parts.push(p)
  return Buffer.concat(parts)
}
