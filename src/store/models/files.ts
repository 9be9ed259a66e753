/**
 * A model's files as UnixFS: import a Hugging Face-layout folder (CIDv1,
 * raw leaves, 1 MiB chunks, no mtime or mode, so identical files in
 * different models and on different peers give identical blocks), list
 * and hash the files of a DAG, write them back out (fsynced), check copies
 * on disk.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, readdir, rmdir, stat, unlink } from 'node:fs/promises'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { unixfs } from '@helia/unixfs'
import type { UnixFS } from '@helia/unixfs'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import type { CID } from 'multiformats/cid'
import { ExistsError, ModelIntegrityError, StoreError } from '../../errors.ts'
import type { Logger } from '../../logger.ts'
import { fsyncDir } from '../blocks/fs-blockstore.ts'
import type { ModelFile, ModelRecord } from './records.ts'
import type { StoreProgress } from './types.ts'

export const CHUNK_BYTES = 1024 * 1024
export const IMPORT_OPTIONS = Object.freeze({
  cidVersion: 1 as const,
  rawLeaves: true,
  chunker: fixedSize({ chunkSize: CHUNK_BYTES }),
  layout: balanced({ maxChildrenPerNode: 1024 }),
  reduceSingleLeafToSelf: true,
  wrapWithDirectory: true
})
const MAX_FILES = 100_000

export interface LocalFile { path: string, abs: string, size: number }

/** Regular files under `dir` (symlinks followed, `.git` skipped), sorted, as "/"-separated relative paths. */
export async function listLocalFiles (dir: string, options: { storeDir?: string } = {}): Promise<LocalFile[]> {
  const root = resolve(dir)
  if (options.storeDir !== undefined) {
    // Found by fuzzing the API: importing a folder that holds the store raced with the store's own writes (a raw ENOENT).
    const own = resolve(options.storeDir)
    const inside = (a: string, b: string): boolean => a === b || a.startsWith(b.endsWith(sep) ? b : b + sep)
    if (inside(root, own) || inside(own, root)) throw new StoreError(`${root} overlaps this node's store ${own}: pass the model's own folder`)
  }
  const info = await stat(root).catch((err: unknown) => {
    throw new StoreError(`cannot read the model folder ${root}: ${(err as Error).message}`, { cause: err })
  })
  if (!info.isDirectory()) throw new StoreError(`${root} is not a folder: pass the folder that holds config.json`)
  const out: LocalFile[] = []
  const unreadable = (what: string) => (err: unknown): never => {
    throw new StoreError(`cannot read ${what} while listing the model folder ${root}: ${(err as Error).message}`, { cause: err })
  }
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(unreadable(d))
    for (const e of entries) {
      if (e.name === '.git') continue
      const abs = join(d, e.name)
      const s = await stat(abs).catch(unreadable(abs)) // follows symlinks (Hugging Face cache snapshots are links into blobs/)
      if (s.isDirectory()) await walk(abs)
      else if (s.isFile()) {
        out.push({ path: relative(root, abs).split(sep).join('/'), abs, size: s.size })
        if (out.length > MAX_FILES) throw new StoreError(`${root} holds more than ${MAX_FILES} files: is it a model folder?`)
      }
    }
  }
  await walk(root)
  if (out.length === 0) throw new StoreError(`${root} holds no files`)
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

/** Import files into the blockstore; returns the root directory CID and each file's record. */
/**
 * The root CID a folder imports as (the same layout and chunking as
 * `models import`), computed without writing a block anywhere: what
 * models.json pins for a generated model.
 */
export async function folderCid (dir: string, options: { signal?: AbortSignal } = {}): Promise<CID> {
  const discard = { put: async (cid: CID) => cid, has: async () => false }
  const fs = unixfs({ blockstore: discard } as unknown as Parameters<typeof unixfs>[0])
  return (await importFiles(fs, await listLocalFiles(dir), options)).root
}

export async function importFiles (fs: UnixFS, files: LocalFile[], options: { signal?: AbortSignal, onBytes?: (n: number) => void } = {}): Promise<{ root: CID, files: ModelFile[] }> {
  const hashes = new Map<string, string>()
  const candidates = files.map((f) => ({
    path: f.path,
    content: (async function * () {
      const hash = createHash('sha256')
      try {
        for await (const chunk of createReadStream(f.abs, { highWaterMark: CHUNK_BYTES, signal: options.signal })) {
          const buf = chunk as Buffer
          hash.update(buf)
          options.onBytes?.(buf.byteLength)
          yield buf
        }
      } catch (err) {
        if (options.signal?.aborted === true) throw err
        throw new StoreError(`cannot read ${f.abs} while importing it (did it change or vanish since it was listed?): ${(err as Error).message}`, { cause: err })
      }
      hashes.set(f.path, hash.digest('hex'))
    })()
  }))
  const cids = new Map<string, CID>()
  let root: CID | undefined
  for await (const r of fs.addAll(candidates, { ...IMPORT_OPTIONS, signal: options.signal })) {
    if (r.path === '' || r.path === undefined) root = r.cid
    else cids.set(r.path, r.cid)
  }
  if (root === undefined) throw new StoreError('the importer gave no root directory')
  const out: ModelFile[] = files.map((f) => {
    const cid = cids.get(f.path)
    const sha256 = hashes.get(f.path)
    if (cid === undefined || sha256 === undefined) throw new StoreError(`the importer skipped ${f.path}`)
    return { path: f.path, size: f.size, sha256, cid: cid.toString() }
  })
  return { root, files: out }
}

/** The files of a UnixFS directory DAG (all blocks local), with their CIDs and sizes. */
export async function listDagFiles (fs: UnixFS, root: CID, options: { signal?: AbortSignal } = {}): Promise<Array<{ path: string, cid: CID, size: number }>> {
  const out: Array<{ path: string, cid: CID, size: number }> = []
  const walk = async (cid: CID, prefix: string): Promise<void> => {
    for await (const e of fs.ls(cid, { signal: options.signal, offline: true })) {
      const path = prefix === '' ? e.name : `${prefix}/${e.name}`
      const st = await fs.stat(e.cid, { signal: options.signal, offline: true })
      if (st.type === 'directory') await walk(e.cid, path)
      else out.push({ path, cid: e.cid, size: Number(st.size) })
      if (out.length > MAX_FILES) throw new StoreError(`DAG ${root.toString()} holds more than ${MAX_FILES} files`)
    }
  }
  const st = await fs.stat(root, { signal: options.signal, offline: true })
  if (st.type !== 'directory') throw new StoreError(`${root.toString()} is not a UnixFS directory: a model is a folder`)
  await walk(root, '')
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

/** sha256 and size of a file read from the blockstore. */
export async function hashDagFile (fs: UnixFS, cid: CID, options: { signal?: AbortSignal } = {}): Promise<{ sha256: string, size: number }> {
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of fs.cat(cid, { signal: options.signal, offline: true })) {
    hash.update(chunk)
    size += chunk.byteLength
  }
  return { sha256: hash.digest('hex'), size }
}

/** Build a record (source 'pull') for a local DAG: list its files and hash each one; a peer's claimed hashes are only compared. */
export async function recordFromDag (fs: UnixFS, root: CID, base: Pick<ModelRecord, 'id' | 'skillset'> & { files?: ModelFile[] }, log: Logger, options: { signal?: AbortSignal, onProgress?: (p: StoreProgress) => void } = {}): Promise<ModelRecord> {
  const { signal, onProgress } = options
  const files = await listDagFiles(fs, root, { signal })
  const totalBytes = files.reduce((s, f) => s + f.size, 0)
  const claimed = new Map((base.files ?? []).map((f) => [f.path, f]))
  let bytes = 0
  const out: ModelFile[] = []
  for (const f of files) {
    const got = await hashDagFile(fs, f.cid, { signal })
    bytes += got.size
    onProgress?.({ phase: 'hash', bytes, totalBytes })
    const c = claimed.get(f.path)
    if (c !== undefined && (c.sha256 !== got.sha256 || c.size !== got.size)) {
      log.warn('a peer\'s record of a file differs from its verified blocks; keeping the hash of the blocks', { id: base.id, path: f.path })
    }
    out.push({ path: f.path, size: got.size, sha256: got.sha256, cid: f.cid.toString() })
  }
  return {
    id: base.id,
    ...(base.skillset === undefined ? {} : { skillset: base.skillset }),
    cid: root.toString(),
    files: out,
    size: totalBytes,
    pinned: true,
    source: 'pull',
    createdAt: new Date().toISOString()
  }
}

export function integrityError (modelId: string, file: ModelFile, got: { sha256: string, size: number }): InstanceType<typeof ModelIntegrityError> {
  return new ModelIntegrityError(`model ${modelId}: file ${file.path} does not match its record (sha256 ${got.sha256.slice(0, 16)}…, ${got.size} bytes; expected ${file.sha256.slice(0, 16)}…, ${file.size} bytes): re-import or re-pull the model`)
}

/**
 * Make `dir` ready for an export: create it, or take it when it is an empty
 * folder. Anything else (a non-empty folder, a file) is refused with
 * ExistsError, so an export never replaces or mixes with what is there.
 */
export async function prepareExportDir (dir: string): Promise<{ created: boolean }> {
  let entries: string[]
  try {
    entries = await readdir(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') {
      await mkdir(dir, { recursive: true })
      return { created: true }
    }
    if (code === 'ENOTDIR') throw new ExistsError(`${dir} exists and is not a folder: export into a new or empty folder; nothing was written`)
    throw new StoreError(`cannot read ${dir}: ${(err as Error).message}`, { cause: err })
  }
  if (entries.length > 0) throw new ExistsError(`${dir} is not empty (${entries.length} entries): export into a new or empty folder; nothing was written`)
  return { created: false }
}

/**
 * Write one file of a model under `dir` (fsynced before it is closed), created exclusively (O_EXCL: an
 * existing file is refused with ExistsError, never replaced), hashed as it
 * is written; a file that fails its sha256 or is cancelled is removed.
 * `onCreated` hears each path this call created, for the caller's clean-up.
 */
export async function exportFile (fs: UnixFS, modelId: string, file: ModelFile, dir: string, cid: CID, options: { signal?: AbortSignal, onBytes?: (n: number) => void, onCreated?: (abs: string) => void } = {}): Promise<void> {
  const target = resolve(dir, ...file.path.split('/'))
  if (!target.startsWith(resolve(dir) + sep)) throw new StoreError(`refusing to write ${file.path} outside ${dir}`)
  await mkdir(dirname(target), { recursive: true })
  let handle
  try {
    handle = await open(target, 'wx', 0o644)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ExistsError(`${target} already exists: export into a new or empty folder; nothing was overwritten`, { cause: err })
    throw new StoreError(`cannot create ${target}: ${(err as Error).message}`, { cause: err })
  }
  options.onCreated?.(target)
  const hash = createHash('sha256')
  let size = 0
  try {
    await pipeline((async function * () {
      for await (const chunk of fs.cat(cid, { signal: options.signal, offline: true })) {
        hash.update(chunk)
        size += chunk.byteLength
        options.onBytes?.(chunk.byteLength)
        yield chunk
      }
    })(), handle.createWriteStream({ flush: true }), { signal: options.signal })
    const sha256 = hash.digest('hex')
    if (sha256 !== file.sha256 || size !== file.size) throw integrityError(modelId, file, { sha256, size })
  } catch (err) {
    await handle.close().catch(() => undefined) // best effort: the stream may have closed it already
    await unlink(target).catch(() => undefined) // best effort: this call created it, and it is wrong or partial
    throw err
  }
}

/** fsync the folders an export wrote into (files are fsynced as they close), so the export survives a crash. */
export async function syncExported (dir: string, created: readonly string[]): Promise<void> {
  const root = resolve(dir)
  const folders = new Set<string>([root, dirname(root)])
  for (const f of created) {
    for (let d = dirname(f); d.startsWith(root + sep); d = dirname(d)) folders.add(d)
  }
  for (const d of folders) await fsyncDir(d)
}

/**
 * Undo a failed export: remove the files it created, then the folders under
 * `dir` that are left empty, then `dir` itself when the export created it.
 * Only empty folders are removed (rmdir), so nothing else can go.
 */
export async function removeExported (dir: string, created: readonly string[], dirCreated: boolean): Promise<void> {
  for (const f of created) await unlink(f).catch(() => undefined) // best effort: already removed by exportFile
  const root = resolve(dir)
  const folders = new Set<string>()
  for (const f of created) {
    for (let d = dirname(f); d.startsWith(root + sep); d = dirname(d)) folders.add(d)
  }
  for (const d of [...folders].sort((a, b) => b.length - a.length)) await rmdir(d).catch(() => undefined) // best effort: only empty folders go
  if (dirCreated) await rmdir(root).catch(() => undefined) // best effort: only when empty
}

/** Check a copy of a model's files on disk; returns one line per problem (empty: all match). */
export async function verifyLocalFiles (dir: string, files: ModelFile[], options: { signal?: AbortSignal } = {}): Promise<string[]> {
  const problems: string[] = []
  for (const f of files) {
    const abs = resolve(dir, ...f.path.split('/'))
    const hash = createHash('sha256')
    let size = 0
    try {
      for await (const chunk of createReadStream(abs, { highWaterMark: CHUNK_BYTES, signal: options.signal })) {
        hash.update(chunk as Buffer)
        size += (chunk as Buffer).byteLength
      }
    } catch (err) {
      problems.push(`${f.path}: ${(err as Error).message}`)
      continue
    }
    const sha256 = hash.digest('hex')
    if (sha256 !== f.sha256 || size !== f.size) problems.push(`${f.path}: sha256 ${sha256} (${size} bytes), expected ${f.sha256} (${f.size} bytes)`)
  }
  return problems
}
