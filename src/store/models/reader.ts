/**
 * Read a model's files straight from the blockstore directory, without a
 * second copy on disk and without Helia: for the inference thread, which
 * opens its own read-only view of `<data-dir>/store/blocks` (blockstore-fs
 * keeps one immutable file per block, so this is safe next to the node).
 * Every block is checked against its CID as it is read, and every file
 * against its recorded sha256 when read to the end; a mismatch is a
 * ModelIntegrityError that names the file; a block that fails its CID check
 * is deleted (the view's one write), so that a pull fetches it again.
 * `transformersCache` adapts the
 * reader to transformers.js's `env.customCache`.
 */
import { createHash } from 'node:crypto'
import { unixfs } from '@helia/unixfs'
import type { UnixFS } from '@helia/unixfs'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'
import { ModelIntegrityError, StoreError } from '../../errors.ts'
import { blockMatches, parseCid, readBlock } from '../blocks/cid.ts'
import { FastFsBlockstore } from '../blocks/fs-blockstore.ts'
import { listDagFiles } from './files.ts'
import type { ModelFile } from './records.ts'

export interface ModelReaderInit {
  /** `<data-dir>/store/blocks` (StoredModelLocation.blocksDir). */
  blocksDir: string
  /** Root CID of the model's directory. */
  root: string
  /** The model's id, for error messages. */
  id?: string
  /** Recorded files (StoredModelLocation.files): each is checked against its sha256. Without them only blocks are checked. */
  files?: ModelFile[]
}

export interface ModelFileInfo { path: string, size: number, sha256?: string }

export interface ModelReader {
  readonly root: string
  files(): Promise<ModelFileInfo[]>
  /** Info about one file, or undefined when the model has no such file. */
  stat(path: string): Promise<ModelFileInfo | undefined>
  /** A file's bytes as they are read (verified; the sha256 check fails the stream at its end). */
  stream(path: string, options?: { signal?: AbortSignal }): AsyncIterable<Uint8Array>
  /** A whole file, verified before it is returned. */
  readFile(path: string, options?: { signal?: AbortSignal }): Promise<Uint8Array>
  /** A web Response streaming the file, or undefined when there is no such file. */
  response(path: string): Promise<Response | undefined>
}

/** Blockstore view that refuses writes and checks each block against its CID (deleting one that fails). */
class VerifyingReadOnlyBlockstore implements Pick<Blockstore, 'get' | 'has' | 'put'> {
  private readonly inner: FastFsBlockstore
  private readonly model: string
  constructor (inner: FastFsBlockstore, model: string) { this.inner = inner; this.model = model }

  async * get (cid: CID, options?: { signal?: AbortSignal }): AsyncGenerator<Uint8Array> {
    let bytes: Uint8Array
    try {
      bytes = await readBlock(this.inner, cid, options)
    } catch (err) {
      throw new StoreError(`model ${this.model}: block ${cid.toString()} is missing from the store: pull the model again`, { cause: err })
    }
    if (!blockMatches(cid, bytes)) {
      // deleted, so that `models pull` fetches it again (Helia's put would skip a block that is there)
      const removed = await this.inner.delete(cid).then(() => 'deleted it', (err: unknown) => `could not delete it (${(err as Error).message})`)
      throw new ModelIntegrityError(`model ${this.model}: stored block ${cid.toString()} does not match its CID (disk corruption?); ${removed}: run \`models pull ${this.model}\` to fetch it again from a peer, or re-import the model`)
    }
    yield bytes
  }

  async has (cid: CID, options?: { signal?: AbortSignal }): Promise<boolean> {
    return await this.inner.has(cid, options)
  }

  async put (): Promise<CID> {
    throw new StoreError('the model reader is read-only')
  }
}

class BlockstoreModelReader implements ModelReader {
  readonly root: string
  private readonly rootCid: CID
  private readonly fs: UnixFS
  private readonly recorded: Map<string, ModelFile> | undefined
  private readonly id: string
  private listed: Map<string, ModelFileInfo & { cid?: CID }> | undefined

  constructor (init: ModelReaderInit, fs: UnixFS) {
    this.root = init.root
    this.rootCid = parseCid(init.root)
    this.fs = fs
    this.id = init.id ?? init.root
    this.recorded = init.files === undefined ? undefined : new Map(init.files.map((f) => [f.path, f]))
  }

  private async index (): Promise<Map<string, ModelFileInfo & { cid?: CID }>> {
    if (this.listed !== undefined) return this.listed
    if (this.recorded !== undefined) {
      this.listed = new Map([...this.recorded.values()].map((f) => [f.path, { path: f.path, size: f.size, sha256: f.sha256, cid: parseCid(f.cid) }]))
    } else {
      const files = await listDagFiles(this.fs, this.rootCid)
      this.listed = new Map(files.map((f) => [f.path, { path: f.path, size: f.size, cid: f.cid }]))
    }
    return this.listed
  }

  async files (): Promise<ModelFileInfo[]> {
    return [...(await this.index()).values()].map(({ path, size, sha256 }) => ({ path, size, ...(sha256 === undefined ? {} : { sha256 }) }))
  }

  async stat (path: string): Promise<ModelFileInfo | undefined> {
    const f = (await this.index()).get(path)
    return f === undefined ? undefined : { path: f.path, size: f.size, ...(f.sha256 === undefined ? {} : { sha256: f.sha256 }) }
  }

  async * stream (path: string, options: { signal?: AbortSignal } = {}): AsyncIterable<Uint8Array> {
    const f = (await this.index()).get(path)
    if (f === undefined) throw new StoreError(`model ${this.id} has no file ${path}`)
    const source = f.cid !== undefined ? this.fs.cat(f.cid, { signal: options.signal }) : this.fs.cat(this.rootCid, { path, signal: options.signal })
    const hash = f.sha256 === undefined ? undefined : createHash('sha256')
    let size = 0
    for await (const chunk of source) {
      hash?.update(chunk)
      size += chunk.byteLength
      yield chunk
    }
    if (hash !== undefined) {
      const got = hash.digest('hex')
      if (got !== f.sha256 || size !== f.size) {
        throw new ModelIntegrityError(`model ${this.id}: file ${path} does not match its recorded sha256 (got ${got.slice(0, 16)}…, ${size} bytes; expected ${String(f.sha256).slice(0, 16)}…, ${f.size} bytes): refusing to load it; re-pull or re-import the model`)
      }
    }
  }

  async readFile (path: string, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    const f = await this.stat(path)
    if (f === undefined) throw new StoreError(`model ${this.id} has no file ${path}`)
    const out = new Uint8Array(f.size)
    let pos = 0
    for await (const chunk of this.stream(path, options)) {
      if (pos + chunk.byteLength > out.byteLength) throw new ModelIntegrityError(`model ${this.id}: file ${path} is longer than its recorded ${f.size} bytes`)
      out.set(chunk, pos)
      pos += chunk.byteLength
    }
    if (pos !== f.size) throw new ModelIntegrityError(`model ${this.id}: file ${path} has ${pos} bytes, its record says ${f.size}`)
    return out
  }

  async response (path: string): Promise<Response | undefined> {
    const f = await this.stat(path)
    if (f === undefined) return undefined
    const body = ReadableStream.from(this.stream(path))
    return new Response(body as ReadableStream<Uint8Array<ArrayBuffer>>, { status: 200, headers: { 'content-length': String(f.size), 'content-type': 'application/octet-stream' } })
  }
}

/** Open a read-only, verifying reader over a model in a blocks directory (usable in any thread). */
export async function openModelReader (init: ModelReaderInit): Promise<ModelReader> {
  const blockstore = new FastFsBlockstore(init.blocksDir, { createIfMissing: false })
  await blockstore.open()
  const fs = unixfs({ blockstore: new VerifyingReadOnlyBlockstore(blockstore, init.id ?? init.root) })
  return new BlockstoreModelReader(init, fs)
}

/** The path of a model file named by a transformers.js cache request (a local path or a hub URL), if it is one. */
export function modelFilePath (request: string, modelId: string): string | undefined {
  const clean = request.split(/[?#]/)[0] ?? ''
  const marker = `${modelId}/`
  const at = clean.lastIndexOf(marker)
  if (at < 0) return undefined
  let rest = clean.slice(at + marker.length)
  const resolved = /^resolve\/[^/]+\/(.*)$/.exec(rest)
  if (resolved?.[1] !== undefined) rest = resolved[1]
  return rest.length > 0 && !rest.split('/').includes('..') ? rest : undefined
}

/**
 * A read-only transformers.js custom cache over a reader:
 * `env.useCustomCache = true; env.customCache = transformersCache(reader, modelId)`.
 */
export function transformersCache (reader: ModelReader, modelId: string): { match: (request: string | { url: string }) => Promise<Response | undefined>, put: () => Promise<void> } {
  return {
    match: async (request) => {
      const path = modelFilePath(typeof request === 'string' ? request : request.url, modelId)
      return path === undefined ? undefined : await reader.response(path)
    },
    put: async () => { /* read-only: the store is filled by import and pull, not by transformers.js */ }
  }
}
