/**
 * The model store: models as pinned UnixFS DAGs in the blockstore, with a
 * record each (id, skillset, root CID, files with size and sha256). Import
 * from a folder, pull from peers (our block exchange first, bitswap as the
 * fallback), pin and unpin, gc, export, verify, and locate a model's blocks
 * for the inference thread's reader (reader.ts).
 *
 * One process owns a data dir's pins and records at a time: the running
 * node, or the CLI when no node runs (the CLI talks to the node otherwise;
 * dir-lock.ts keeps a second process out). Imports and pulls are written
 * as pending before they pin, and start-up reconciles pins with records
 * (reconcile.ts). A block that fails its CID check is deleted so that a
 * pull fetches it again (repair.ts).
 */
import { unixfs } from '@helia/unixfs'
import type { UnixFS } from '@helia/unixfs'
import type { Startable } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { basename } from 'node:path'
import { ModelNotFoundError, StoreError } from '../../errors.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { forComponent } from '../../logger.ts'
import type { Logger } from '../../logger.ts'
import { modelIdSchema } from '../../models/catalog.ts'
import { blockKey, parseCid, tryParseCid } from '../blocks/cid.ts'
import { missingBlocks, walkLocal } from '../blocks/dag.ts'
import { RwLock } from '../sync.ts'
import { storePaths } from '../helia.ts'
import { exportFile, importFiles, listLocalFiles, prepareExportDir, recordFromDag, removeExported, syncExported } from './files.ts'
import { pinRoot, unpinRoot } from './pins.ts'
import { abandon, reconcile } from './reconcile.ts'
import type { ReconcileResult } from './reconcile.ts'
import { checkModel, dropCorruptBlocks } from './repair.ts'
import { DEFAULT_MAX_PULL_BYTES, freeBytes, pullModel } from './pull.ts'
import type { PullOptions, PullResult } from './pull.ts'
import { RecordStore } from './records.ts'
import type { HubOrigin, ModelFile, ModelRecord } from './records.ts'
import type { ModelStoreComponents, ModelStoreInit, ModelSummary, ProgressOption, StoreProgress, StoredModelLocation } from './types.ts'

export type { PullOptions, PullResult }
export type { ModelStoreComponents, StoreProgress }
export type { ModelStoreInit, ModelSummary, ProgressOption, StoredModelLocation } from './types.ts'

export class ModelStore implements Startable {
  readonly records: RecordStore
  readonly blocksDir: string
  readonly fs: UnixFS
  private readonly components: ModelStoreComponents
  private readonly init: ModelStoreInit
  private readonly log: Logger
  private readonly lock = new RwLock()
  /** Root CIDs of this process's imports and pulls under way. */
  private readonly running = new Set<string>()
  private started = false
  /** What start-up reconciliation did (for tests and status). */
  lastReconcile: ReconcileResult | undefined

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
    this.lastReconcile = await this.lock.read(async () => await reconcile({
      components: this.components,
      records: this.records,
      log: this.log,
      recordFromDag: async (root, base, signal) => await this.recordFromDag(root, base, signal),
      saveRecord: async (record) => { await this.replaceRecord(record) }
    }, this.running))
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
      await this.pending(root, { op: 'import', id, ...(options.skillset === undefined ? {} : { skillset: options.skillset }) }, async () => {
        await this.pinRoot(root, options.signal)
        await this.replaceRecord(record)
      })
      this.log.info('imported a model', { id, cid: record.cid, files: imported.length, bytes: totalBytes })
      return record
    })
  }

  async list (): Promise<ModelSummary[]> {
    const out: ModelSummary[] = []
    for (const p of await this.records.pending()) {
      if ((await this.records.byCid(p.cid)).some((r) => r.pinned)) continue
      out.push({
        id: p.id ?? p.cid,
        ...(p.skillset === undefined ? {} : { skillset: p.skillset }),
        cid: p.cid,
        size: 0,
        files: 0,
        pinned: false,
        local: await this.components.blockstore.has(parseCid(p.cid)),
        source: p.op,
        state: p.interrupted ? 'interrupted' : 'pending'
      })
    }
    for (const r of await this.records.list()) {
      out.push({
        id: r.id,
        ...(r.skillset === undefined ? {} : { skillset: r.skillset }),
        cid: r.cid,
        size: r.size,
        files: r.files.length,
        pinned: r.pinned,
        local: await this.components.blockstore.has(parseCid(r.cid)),
        source: r.source,
        state: 'ready'
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

  /**
   * Fetch a model by id or CID from peers, verify and pin it. Blocks here
   * that fail their CID check are deleted and fetched again; fetches nothing
   * when the model is whole and sound here.
   */
  async pull (ref: string, options: PullOptions = {}): Promise<PullResult> {
    let begun: CID | undefined
    const explicitId = options.id ?? (modelIdSchema.safeParse(ref).success && tryParseCid(ref) === undefined ? ref : undefined)
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
      freeBytes: this.init.freeBytes ?? (async () => await freeBytes(this.blocksDir)),
      dropCorrupt: async (root, signal) => await dropCorruptBlocks(this.components.blockstore, root, this.log, signal),
      begin: async (root) => {
        begun = root
        this.running.add(root.toString())
        await this.records.begin({ cid: root.toString(), op: 'pull', ...(explicitId === undefined ? {} : { id: explicitId }), ...(options.skillset === undefined ? {} : { skillset: options.skillset }) })
      }
    }).then(async (res) => {
      if (begun !== undefined) await this.finish(begun)
      return res
    }, async (err: unknown) => {
      if (begun !== undefined) await this.finish(begun, err)
      throw err
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
   * Delete every block that is not part of a pinned model's DAG (or of an
   * import or pull under way) and not kept by the embedding cache, and drop
   * the entries of interrupted ones. Liveness comes from the records, not
   * from Helia's per-block pin counts: those drift for blocks shared by
   * several pins, and a crash in the middle of pinning leaves them behind.
   */
  async gc (options: { signal?: AbortSignal } = {}): Promise<{ deletedBlocks: number }> {
    return await this.lock.write(async () => {
      const bs = this.components.blockstore
      const live = new Set<string>()
      const roots = (await this.records.list()).filter((r) => r.pinned).map((r) => r.cid)
      const pending = await this.records.pending()
      roots.push(...pending.filter((p) => !p.interrupted).map((p) => p.cid))
      for (const root of roots) await walkLocal(bs, parseCid(root), (cid) => { live.add(blockKey(cid)) }, options.signal)
      const doomed: CID[] = []
      for await (const { cid } of bs.getAll(options)) {
        if (live.has(blockKey(cid)) || this.init.keep?.(cid) === true) continue
        doomed.push(cid)
      }
      let deletedBlocks = 0
      for (const cid of doomed) {
        options.signal?.throwIfAborted()
        await bs.delete(cid, options)
        deletedBlocks++
      }
      for (const p of pending) if (p.interrupted) await this.records.end(p.cid)
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
      await syncExported(dir, created)
    } catch (err) {
      await removeExported(dir, created, dirCreated)
      throw err
    }
    await this.records.update(r.id, { usedAt: new Date().toISOString() })
    return { files: r.files.length, bytes }
  }

  /**
   * Check every block against its CID (a corrupt one is deleted, so that
   * `models pull` fetches it again) and re-hash every file; throws
   * ModelIntegrityError naming each bad or missing block with its file, and
   * each file that differs from its record.
   */
  async verify (ref: string, options: ProgressOption = {}): Promise<ModelRecord> {
    const r = await this.get(ref)
    await this.lock.read(async () => { await checkModel(this.components, this.fs, r, this.log, options) })
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

  /** Whether the whole DAG under `root` is here (walked: a repair or a reader may have deleted a corrupt block of a pinned model). */
  async isWhole (root: CID, signal?: AbortSignal): Promise<boolean> {
    return (await missingBlocks(this.components.blockstore, root, { signal })).length === 0
  }

  private async requireWhole (r: ModelRecord, signal?: AbortSignal): Promise<void> {
    if (!(await this.isWhole(parseCid(r.cid), signal))) {
      throw new StoreError(`model ${r.id} is not complete in this store (was it unpinned and garbage-collected?): pull it again`)
    }
  }

  private async pinRoot (root: CID, signal?: AbortSignal): Promise<void> {
    await pinRoot(this.components.pins, root, signal)
  }

  private async unpinRoot (root: CID, signal?: AbortSignal): Promise<boolean> {
    return await unpinRoot(this.components.pins, root, signal)
  }

  /** Run `fn` (which pins `root` and saves its record) with a pending entry written first; a failure undoes the pin. */
  private async pending (root: CID, entry: { op: 'import' | 'pull', id?: string, skillset?: SkillsetName }, fn: () => Promise<void>): Promise<void> {
    this.running.add(root.toString())
    await this.records.begin({ cid: root.toString(), ...entry })
    try {
      await fn()
    } catch (err) {
      await this.finish(root, err)
      throw err
    }
    await this.finish(root)
  }

  /** An import or pull of `root` ended; `err` set: it failed, so its pin is freed unless a record holds it. */
  private async finish (root: CID, err?: unknown): Promise<void> {
    this.running.delete(root.toString())
    if (err === undefined) await this.records.end(root.toString())
    else await abandon({ components: this.components, records: this.records, log: this.log }, root, err)
  }

  private async recordFromDag (root: CID, base: Pick<ModelRecord, 'id' | 'skillset'> & { files?: ModelFile[] }, signal?: AbortSignal, onProgress?: (p: StoreProgress) => void): Promise<ModelRecord> {
    return await recordFromDag(this.fs, root, base, this.log, { signal, onProgress })
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
