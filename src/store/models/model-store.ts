/**
 * The model store: models as pinned UnixFS DAGs in the blockstore, with a
 * record each (id, skillset, root CID, files with size and sha256). Import
 * from a folder, pull from peers (our block exchange first, bitswap as the
 * fallback), pin and unpin, gc, export, verify, and locate a model's blocks
 * for the inference thread's reader (reader.ts).
 *
 * One process owns a data dir's pins and records at a time: the running
 * node, or the CLI when no node runs (the CLI talks to the node otherwise).
 */
import { unixfs } from '@helia/unixfs'
import type { UnixFS } from '@helia/unixfs'
import type { Startable } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { mkdir, statfs } from 'node:fs/promises'
import { basename } from 'node:path'
import { ModelIntegrityError, ModelNotFoundError, StoreError } from '../../errors.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { forComponent } from '../../logger.ts'
import type { Logger } from '../../logger.ts'
import type { ModelCatalog } from '../../models/catalog.ts'
import { modelIdSchema } from '../../models/catalog.ts'
import { blockKey, parseCid, tryParseCid } from '../blocks/cid.ts'
import { missingBlocks, localDagWalker, walkLocal } from '../blocks/dag.ts'
import { RwLock } from '../sync.ts'
import { storePaths } from '../helia.ts'
import { exportFile, hashDagFile, importFiles, integrityError, listDagFiles, listLocalFiles, prepareExportDir, removeExported } from './files.ts'
import { pullModel } from './pull.ts'
import type { PullOptions, PullResult } from './pull.ts'
import { RecordStore } from './records.ts'
import type { HubOrigin, ModelFile, ModelRecord } from './records.ts'
import type { ModelStoreComponents, StoreProgress } from './types.ts'

export type { PullOptions, PullResult }
export type { ModelStoreComponents, StoreProgress }

export interface ModelStoreInit {
  dataDir: string
  catalog?: ModelCatalog
  /** Unpinned blocks that gc must keep (the embedding cache's). */
  keep?: (cid: CID) => boolean
  /** Peers whose manifests are believed when a pull names a model by id (default: none; pulls by CID work with any peer). */
  trustedPeers?: readonly string[]
  /** The largest model a pull takes (config store.maxPullMB). */
  maxPullBytes?: number
  /** Free bytes where blocks are written (default: statfs of the blocks folder; tests give a disk that is full). */
  freeBytes?: () => Promise<number>
}

export const DEFAULT_MAX_PULL_BYTES = 64 * 1024 ** 3

/** Free bytes for this user on the file system that holds `dir`. */
async function freeBytes (dir: string): Promise<number> {
  await mkdir(dir, { recursive: true })
  const s = await statfs(dir)
  return s.bavail * s.bsize
}

export interface ModelSummary {
  id: string
  skillset?: SkillsetName
  cid: string
  size: number
  files: number
  pinned: boolean
  /** Whether the root block is in the local blockstore (gc removes unpinned models). */
  local: boolean
  source: 'import' | 'pull'
}

/** Where a model's blocks are, for `openModelReader` in another thread. */
export interface StoredModelLocation {
  id: string
  cid: string
  blocksDir: string
  files: ModelFile[]
}

export interface ProgressOption {
  signal?: AbortSignal
  onProgress?: (p: StoreProgress) => void
}

export class ModelStore implements Startable {
  readonly records: RecordStore
  readonly blocksDir: string
  readonly fs: UnixFS
  private readonly components: ModelStoreComponents
  private readonly init: ModelStoreInit
  private readonly log: Logger
  private readonly lock = new RwLock()
  private started = false

  constructor (components: ModelStoreComponents, init: ModelStoreInit) {
    this.components = components
    this.init = init
    const paths = storePaths(init.dataDir)
    this.records = new RecordStore(paths.records)
    this.blocksDir = paths.blocks
    this.fs = unixfs({ blockstore: components.blockstore })
    this.log = forComponent('ipfs-accelerate:store:models')
  }

  async start (): Promise<void> {
    if (this.started) return
    await this.records.list() // fail early on a bad records file
    this.components.exchange?.setHandlers({
      has: async (roots) => await Promise.all(roots.map(async (r) => await this.isWhole(r))),
      manifest: async (ref) => await this.find(ref)
    })
    this.started = true
  }

  async stop (): Promise<void> {
    this.started = false
  }

  /** Import a Hugging Face-layout folder; pins it and records it. */
  async importDir (dir: string, options: ProgressOption & { id?: string, skillset?: SkillsetName, hub?: HubOrigin } = {}): Promise<ModelRecord> {
    const id = options.id ?? basename(dir)
    const idCheck = modelIdSchema.safeParse(id)
    if (!idCheck.success) throw new StoreError(`"${id}" is not a valid model id: pass --id NAME or OWNER/NAME`)
    const files = await listLocalFiles(dir, { storeDir: storePaths(this.init.dataDir).root })
    const totalBytes = files.reduce((s, f) => s + f.size, 0)
    let bytes = 0
    return await this.lock.read(async () => {
      const { root, files: imported } = await importFiles(this.fs, files, {
        signal: options.signal,
        onBytes: (n) => { bytes += n; options.onProgress?.({ phase: 'import', bytes, totalBytes }) }
      })
      await this.pinRoot(root, options.signal)
      const record: ModelRecord = {
        id,
        ...(options.skillset === undefined ? {} : { skillset: options.skillset }),
        cid: root.toString(),
        files: imported,
        size: totalBytes,
        pinned: true,
        source: 'import',
        ...(options.hub === undefined ? {} : { hub: options.hub }),
        createdAt: new Date().toISOString()
      }
      await this.replaceRecord(record)
      this.log.info('imported a model', { id, cid: record.cid, files: imported.length, bytes: totalBytes })
      return record
    })
  }

  async list (): Promise<ModelSummary[]> {
    const out: ModelSummary[] = []
    for (const r of await this.records.list()) {
      out.push({
        id: r.id,
        ...(r.skillset === undefined ? {} : { skillset: r.skillset }),
        cid: r.cid,
        size: r.size,
        files: r.files.length,
        pinned: r.pinned,
        local: await this.components.blockstore.has(parseCid(r.cid)),
        source: r.source
      })
    }
    return out
  }

  /** A record by model id or root CID, or undefined. */
  async find (ref: string): Promise<ModelRecord | undefined> {
    const byId = await this.records.get(ref)
    if (byId !== undefined) return byId
    const cid = tryParseCid(ref)
    if (cid === undefined) return undefined
    const byCid = await this.records.byCid(cid.toString())
    return byCid.find((r) => r.pinned) ?? byCid[0]
  }

  async get (ref: string): Promise<ModelRecord> {
    const r = await this.find(ref)
    if (r === undefined) throw new ModelNotFoundError(`no model "${ref}" in this store: import it (\`models import DIR\`) or pull it (\`models pull ID|CID\`)`)
    return r
  }

  /** Fetch a model by id or CID from peers, verify and pin it. Fetches nothing when it is already complete here. */
  async pull (ref: string, options: PullOptions = {}): Promise<PullResult> {
    return await this.lock.read(async () => await pullModel({
      ref,
      options,
      find: async (r) => await this.find(r),
      catalog: this.init.catalog,
      trusted: (peer) => this.init.trustedPeers?.includes(peer) === true,
      components: this.components,
      log: this.log,
      recordFromDag: async (root, base, signal, onProgress) => await this.recordFromDag(root, base, signal, onProgress),
      pinRoot: async (root, signal) => { await this.pinRoot(root, signal) },
      saveRecord: async (record) => { await this.replaceRecord(record) },
      maxPullBytes: this.init.maxPullBytes ?? DEFAULT_MAX_PULL_BYTES,
      freeBytes: this.init.freeBytes ?? (async () => await freeBytes(this.blocksDir))
    }))
  }

  async pin (ref: string, options: { signal?: AbortSignal } = {}): Promise<ModelRecord> {
    const r = await this.get(ref)
    return await this.lock.read(async () => {
      const missing = await missingBlocks(this.components.blockstore, parseCid(r.cid), options)
      if (missing.length > 0) throw new StoreError(`model ${r.id} is not complete here (${missing.length} subtrees missing): pull it first`)
      await this.pinRoot(parseCid(r.cid), options.signal)
      return await this.records.update(r.id, { pinned: true }) ?? r
    })
  }

  /** Unpin a model: its record stays; gc may then remove its blocks. */
  async unpin (ref: string, options: { signal?: AbortSignal } = {}): Promise<ModelRecord> {
    const r = await this.get(ref)
    return await this.lock.read(async () => {
      const updated = await this.records.update(r.id, { pinned: false }) ?? r
      const others = (await this.records.byCid(r.cid)).filter((o) => o.pinned)
      const root = parseCid(r.cid)
      if (others.length === 0) await this.unpinRoot(root, options.signal)
      this.log.info('unpinned a model', { id: r.id, cid: r.cid })
      return updated
    })
  }

  /**
   * Delete every block that is not pinned, not part of a pinned model's DAG
   * and not kept by the embedding cache. (The DAG walk over the records
   * guards against Helia's pin counts, which can drift for blocks shared
   * by several pins when one is removed and added again.)
   */
  async gc (options: { signal?: AbortSignal } = {}): Promise<{ deletedBlocks: number }> {
    return await this.lock.write(async () => {
      const bs = this.components.blockstore
      const live = new Set<string>()
      for (const r of await this.records.list()) {
        if (!r.pinned) continue
        await walkLocal(bs, parseCid(r.cid), (cid) => { live.add(blockKey(cid)) }, options.signal)
      }
      const doomed: CID[] = []
      for await (const { cid } of bs.getAll(options)) {
        if (live.has(blockKey(cid)) || this.init.keep?.(cid) === true) continue
        if (await this.components.pins.isPinned(cid, options)) continue
        doomed.push(cid)
      }
      let deletedBlocks = 0
      for (const cid of doomed) {
        options.signal?.throwIfAborted()
        await bs.delete(cid, options)
        deletedBlocks++
      }
      this.log.info('garbage-collected the blockstore', { deletedBlocks, liveBlocks: live.size })
      return { deletedBlocks }
    })
  }

  /**
   * Write a model's files into `dir`, a new or empty folder (anything else is
   * refused with ExistsError): each file created exclusively and verified
   * against its sha256. A failed export removes what it wrote.
   */
  async exportTo (ref: string, dir: string, options: ProgressOption = {}): Promise<{ files: number, bytes: number }> {
    const r = await this.get(ref)
    const totalBytes = r.size
    let bytes = 0
    await this.requireWhole(r, options.signal)
    const { created: dirCreated } = await prepareExportDir(dir)
    const created: string[] = []
    try {
      for (const f of r.files) {
        await exportFile(this.fs, r.id, f, dir, parseCid(f.cid), {
          signal: options.signal,
          onBytes: (n) => { bytes += n; options.onProgress?.({ phase: 'export', bytes, totalBytes }) },
          onCreated: (abs) => { created.push(abs) }
        })
      }
    } catch (err) {
      await removeExported(dir, created, dirCreated)
      throw err
    }
    await this.records.update(r.id, { usedAt: new Date().toISOString() })
    return { files: r.files.length, bytes }
  }

  /** Re-hash every file from the blockstore; throws ModelIntegrityError listing each mismatch. */
  async verify (ref: string, options: ProgressOption = {}): Promise<ModelRecord> {
    const r = await this.get(ref)
    await this.requireWhole(r, options.signal)
    const problems: string[] = []
    let bytes = 0
    for (const f of r.files) {
      const got = await hashDagFile(this.fs, parseCid(f.cid), options)
      bytes += got.size
      options.onProgress?.({ phase: 'verify', bytes, totalBytes: r.size })
      if (got.sha256 !== f.sha256 || got.size !== f.size) problems.push(integrityError(r.id, f, got).message)
    }
    if (problems.length > 0) throw new ModelIntegrityError(problems.join('; '))
    return r
  }

  /** Where a model's blocks and file records are, for a reader in another thread. */
  async locate (ref: string): Promise<StoredModelLocation> {
    const r = await this.get(ref)
    await this.requireWhole(r)
    await this.records.update(r.id, { usedAt: new Date().toISOString() })
    return { id: r.id, cid: r.cid, blocksDir: this.blocksDir, files: r.files }
  }

  /** Models this node holds whole and pinned: what adverts and provider records name. */
  async heldRoots (): Promise<Array<{ id: string, cid: string }>> {
    const out: Array<{ id: string, cid: string }> = []
    for (const r of await this.records.list()) if (r.pinned) out.push({ id: r.id, cid: r.cid })
    return out
  }

  /** Whether the whole DAG under `root` is here (pinned roots are whole by construction). */
  async isWhole (root: CID, signal?: AbortSignal): Promise<boolean> {
    if (await this.components.pins.isPinned(root, { signal })) return true
    return (await missingBlocks(this.components.blockstore, root, { signal })).length === 0
  }

  private async requireWhole (r: ModelRecord, signal?: AbortSignal): Promise<void> {
    if (!(await this.isWhole(parseCid(r.cid), signal))) {
      throw new StoreError(`model ${r.id} is not complete in this store (was it unpinned and garbage-collected?): pull it again`)
    }
  }

  private async pinRoot (root: CID, signal?: AbortSignal): Promise<void> {
    try {
      for await (const _ of this.components.pins.add(root, { signal, walker: localDagWalker() })) { /* walks the local DAG, pinning each block */ }
    } catch (err) {
      if ((err as Error).name !== 'AlreadyPinnedError') throw err
    }
  }

  /** Remove the recursive pin of `root`; false when there was none. */
  private async unpinRoot (root: CID, signal?: AbortSignal): Promise<boolean> {
    try {
      for await (const _ of this.components.pins.rm(root, { signal, walker: localDagWalker() })) { /* walks the DAG, unpinning each block */ }
      return true
    } catch (err) {
      if ((err as Error).name === 'NotFoundError') return false
      throw err
    }
  }

  /** Build a record for a local DAG: list its files and hash each one. */
  private async recordFromDag (root: CID, base: Pick<ModelRecord, 'id' | 'skillset'> & { files?: ModelFile[] }, signal?: AbortSignal, onProgress?: (p: StoreProgress) => void): Promise<ModelRecord> {
    const files = await listDagFiles(this.fs, root, { signal })
    const totalBytes = files.reduce((s, f) => s + f.size, 0)
    const claimed = new Map((base.files ?? []).map((f) => [f.path, f]))
    let bytes = 0
    const out: ModelFile[] = []
    for (const f of files) {
      const got = await hashDagFile(this.fs, f.cid, { signal })
      bytes += got.size
      onProgress?.({ phase: 'hash', bytes, totalBytes })
      const c = claimed.get(f.path)
      if (c !== undefined && (c.sha256 !== got.sha256 || c.size !== got.size)) {
        this.log.warn('a peer\'s record of a file differs from its verified blocks; keeping the hash of the blocks', { id: base.id, path: f.path })
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

  /** Save a record; when it replaces one with another root that nothing else pins, unpin that root. */
  private async replaceRecord (record: ModelRecord): Promise<void> {
    const prev = await this.records.get(record.id)
    await this.records.put(record)
    if (prev === undefined || prev.cid === record.cid || !prev.pinned) return
    const others = (await this.records.byCid(prev.cid)).filter((o) => o.pinned)
    const old = parseCid(prev.cid)
    if (others.length === 0 && await this.unpinRoot(old)) {
      this.log.info('unpinned the previous content of a re-imported model', { id: record.id, cid: prev.cid })
    }
  }
}
