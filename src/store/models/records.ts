/**
 * Model records: what this node knows about each model in its store — id,
 * skillset, root CID, and each file's path, size, sha256 and CID. Kept in
 * one JSON file (`<data-dir>/store/records.json`), written atomically,
 * validated on read; a file of an unknown version is refused, not guessed.
 * One process owns the file at a time (the running node, or the CLI when
 * no node runs; dir-lock.ts enforces it); writes within the process are
 * serialised, and each write is fsynced (the file, then its folder).
 *
 * Version 2 adds `pending`: an import or pull is written here, by root CID,
 * before its root is pinned and removed once its record is saved, so a
 * crash in between leaves a trace that start-up reconciles (reconcile.ts).
 * Version 1 files are read as having none.
 */
import { readFile, rename, writeFile, mkdir, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { z } from 'zod'
import { SKILLSET_NAMES } from '../../interfaces/index.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { modelIdSchema } from '../../models/catalog.ts'
import { StoreError } from '../../errors.ts'
import { fsyncDir } from '../blocks/fs-blockstore.ts'

export const RECORDS_VERSION = 2
const READABLE_VERSIONS: readonly unknown[] = [1, RECORDS_VERSION]
const MAX_RECORDS_BYTES = 64 * 1024 * 1024

const cidString = z.string().min(8).max(200).regex(/^[A-Za-z0-9]+$/, 'a CID string')
export const filePathSchema = z.string().min(1).max(1024).refine((p) => {
  const parts = p.split('/')
  return !p.startsWith('/') && parts.every((s) => s.length > 0 && s !== '.' && s !== '..') && !p.includes('\\') && !p.includes('\0')
}, 'a relative path of "/"-separated names, without "." or ".." parts')

export const modelFileSchema = z.strictObject({
  path: filePathSchema,
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex sha256'),
  cid: cidString
})
export type ModelFile = z.infer<typeof modelFileSchema>

export const modelRecordSchema = z.strictObject({
  id: modelIdSchema,
  skillset: z.enum(SKILLSET_NAMES as [SkillsetName, ...SkillsetName[]]).optional(),
  cid: cidString,
  files: z.array(modelFileSchema).max(100_000),
  /** Sum of the files' sizes. */
  size: z.number().int().nonnegative(),
  pinned: z.boolean(),
  source: z.enum(['import', 'pull']),
  /** Where an import came from when it was a hub download: the repo and the commit every file came from. */
  hub: z.strictObject({ repo: z.string().min(1).max(200), revision: z.string().regex(/^[0-9a-f]{40}$/) }).optional(),
  createdAt: z.string().max(40),
  /** Last time the model was pulled, exported or opened for loading. */
  usedAt: z.string().max(40).optional()
})
export type ModelRecord = z.infer<typeof modelRecordSchema>
export type HubOrigin = NonNullable<ModelRecord['hub']>

/** An import or pull under way (or interrupted by a crash): its root may be pinned without a record. */
export const pendingSchema = z.strictObject({
  cid: cidString,
  op: z.enum(['import', 'pull']),
  /** The id it will be recorded under, when known at the start. */
  id: modelIdSchema.optional(),
  skillset: z.enum(SKILLSET_NAMES as [SkillsetName, ...SkillsetName[]]).optional(),
  startedAt: z.string().max(40),
  pid: z.number().int().positive(),
  /** Set by start-up reconciliation when it could not complete it: its pin was freed, gc frees its blocks. */
  interrupted: z.boolean()
})
export type PendingEntry = z.infer<typeof pendingSchema>

const recordsFileSchema = z.strictObject({
  version: z.union([z.literal(1), z.literal(RECORDS_VERSION)]),
  models: z.array(modelRecordSchema).max(100_000),
  pending: z.array(pendingSchema).max(10_000).optional()
})

interface RecordsState { models: Map<string, ModelRecord>, pending: Map<string, PendingEntry> }

/** Validate an untrusted record (e.g. a peer's manifest); throws StoreError naming every problem. */
export function parseModelRecord (raw: unknown, origin: string): ModelRecord {
  const parsed = modelRecordSchema.safeParse(raw)
  if (!parsed.success) throw new StoreError(`${origin}: invalid model record: ${problems(parsed.error)}`)
  return parsed.data
}

function problems (err: z.ZodError): string {
  return err.issues.slice(0, 10).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
}

/** Parse the records file's text; an unknown version or a malformed file throws StoreError. */
export function parseRecordsFile (text: string, origin: string): ModelRecord[] {
  return parseRecordsState(text, origin).models
}

function parseRecordsState (text: string, origin: string): { models: ModelRecord[], pending: PendingEntry[] } {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new StoreError(`${origin} is not valid JSON (${(err as Error).message}): restore it from a backup or move it away and re-import the models`, { cause: err })
  }
  const version = typeof raw === 'object' && raw !== null ? (raw as { version?: unknown }).version : undefined
  if (!READABLE_VERSIONS.includes(version)) {
    throw new StoreError(`${origin} has version ${JSON.stringify(version)}, this build reads versions ${READABLE_VERSIONS.join(' and ')}: use a matching ipfs-accelerate`)
  }
  const parsed = recordsFileSchema.safeParse(raw)
  if (!parsed.success) throw new StoreError(`${origin} is invalid: ${problems(parsed.error)}`)
  const seen = new Set<string>()
  for (const m of parsed.data.models) {
    if (seen.has(m.id)) throw new StoreError(`${origin}: model id "${m.id}" appears twice`)
    seen.add(m.id)
  }
  return { models: parsed.data.models, pending: parsed.data.pending ?? [] }
}

export class RecordStore {
  readonly file: string
  private state: RecordsState | undefined
  private writing: Promise<void> = Promise.resolve()

  constructor (file: string) {
    this.file = file
  }

  private async load (): Promise<RecordsState> {
    if (this.state !== undefined) return this.state
    let text: string | undefined
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StoreError(`cannot read ${this.file}: ${(err as Error).message}`, { cause: err })
    }
    if (text !== undefined && text.length > MAX_RECORDS_BYTES) throw new StoreError(`${this.file} is over ${MAX_RECORDS_BYTES} bytes`)
    const parsed = text === undefined ? { models: [], pending: [] } : parseRecordsState(text, this.file)
    this.state = { models: new Map(parsed.models.map((r) => [r.id, r])), pending: new Map(parsed.pending.map((p) => [p.cid, p])) }
    return this.state
  }

  async list (): Promise<ModelRecord[]> {
    return [...(await this.load()).models.values()].sort((a, b) => a.id.localeCompare(b.id))
  }

  async get (id: string): Promise<ModelRecord | undefined> {
    return (await this.load()).models.get(id)
  }

  /** Records whose root CID is `cid` (one CID may carry several ids). */
  async byCid (cid: string): Promise<ModelRecord[]> {
    return [...(await this.load()).models.values()].filter((r) => r.cid === cid)
  }

  async put (record: ModelRecord): Promise<void> {
    const valid = parseModelRecord(record, 'record')
    await this.mutate((s) => { s.models.set(valid.id, valid) })
  }

  async update (id: string, patch: Partial<Omit<ModelRecord, 'id'>>): Promise<ModelRecord | undefined> {
    let out: ModelRecord | undefined
    await this.mutate((s) => {
      const prev = s.models.get(id)
      if (prev === undefined) return
      out = parseModelRecord({ ...prev, ...patch }, 'record')
      s.models.set(id, out)
    })
    return out
  }

  async delete (id: string): Promise<boolean> {
    let had = false
    await this.mutate((s) => { had = s.models.delete(id) })
    return had
  }

  /** Imports and pulls under way or interrupted, oldest first. */
  async pending (): Promise<PendingEntry[]> {
    return [...(await this.load()).pending.values()].sort((a, b) => a.startedAt.localeCompare(b.startedAt))
  }

  /** Note an import or pull of `entry.cid` before its root is pinned. */
  async begin (entry: Omit<PendingEntry, 'startedAt' | 'pid' | 'interrupted'>): Promise<void> {
    const parsed = pendingSchema.safeParse({ ...entry, startedAt: new Date().toISOString(), pid: process.pid, interrupted: false })
    if (!parsed.success) throw new StoreError(`invalid pending entry: ${problems(parsed.error)}`)
    await this.mutate((s) => { s.pending.set(parsed.data.cid, parsed.data) })
  }

  /** The import or pull of `cid` ended (its record is saved, or it was undone). */
  async end (cid: string): Promise<void> {
    await this.mutate((s) => { s.pending.delete(cid) })
  }

  async markInterrupted (cid: string): Promise<void> {
    await this.mutate((s) => {
      const p = s.pending.get(cid)
      if (p !== undefined) s.pending.set(cid, { ...p, interrupted: true })
    })
  }

  private async mutate (fn: (s: RecordsState) => void): Promise<void> {
    const run = async (): Promise<void> => {
      const s = await this.load()
      fn(s)
      await this.save(s)
    }
    const next = this.writing.then(run, run)
    this.writing = next.catch(() => undefined) // a failed write is reported to its caller; later writes still run
    await next
  }

  private async save (s: RecordsState): Promise<void> {
    const body = JSON.stringify({
      version: RECORDS_VERSION,
      models: [...s.models.values()].sort((a, b) => a.id.localeCompare(b.id)),
      pending: [...s.pending.values()].sort((a, b) => a.cid.localeCompare(b.cid))
    }, null, 2) + '\n'
    const folder = dirname(this.file)
    await mkdir(folder, { recursive: true })
    const tmp = `${this.file}.${process.pid}.tmp`
    try {
      await writeFile(tmp, body, { flush: true })
      await rename(tmp, this.file)
      await fsyncDir(folder)
    } catch (err) {
      await unlink(tmp).catch(() => undefined) // best effort: the temp file may not exist
      throw new StoreError(`cannot write ${this.file}: ${(err as Error).message}`, { cause: err })
    }
  }
}
