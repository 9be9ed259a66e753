/**
 * Model records: what this node knows about each model in its store — id,
 * skillset, root CID, and each file's path, size, sha256 and CID. Kept in
 * one JSON file (`<data-dir>/store/records.json`), written atomically,
 * validated on read; a file of an unknown version is refused, not guessed.
 * One process owns the file at a time (the running node, or the CLI when
 * no node runs); writes within the process are serialised.
 */
import { readFile, rename, writeFile, mkdir, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { z } from 'zod'
import { SKILLSET_NAMES } from '../../interfaces/index.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { modelIdSchema } from '../../models/catalog.ts'
import { StoreError } from '../../errors.ts'

export const RECORDS_VERSION = 1
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

const recordsFileSchema = z.strictObject({
  version: z.literal(RECORDS_VERSION),
  models: z.array(modelRecordSchema).max(100_000)
})

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
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new StoreError(`${origin} is not valid JSON (${(err as Error).message}): restore it from a backup or move it away and re-import the models`, { cause: err })
  }
  const version = typeof raw === 'object' && raw !== null ? (raw as { version?: unknown }).version : undefined
  if (version !== RECORDS_VERSION) {
    throw new StoreError(`${origin} has version ${JSON.stringify(version)}, this build reads version ${RECORDS_VERSION}: use a matching ipfs-accelerate`)
  }
  const parsed = recordsFileSchema.safeParse(raw)
  if (!parsed.success) throw new StoreError(`${origin} is invalid: ${problems(parsed.error)}`)
  const seen = new Set<string>()
  for (const m of parsed.data.models) {
    if (seen.has(m.id)) throw new StoreError(`${origin}: model id "${m.id}" appears twice`)
    seen.add(m.id)
  }
  return parsed.data.models
}

export class RecordStore {
  readonly file: string
  private records: Map<string, ModelRecord> | undefined
  private writing: Promise<void> = Promise.resolve()

  constructor (file: string) {
    this.file = file
  }

  private async load (): Promise<Map<string, ModelRecord>> {
    if (this.records !== undefined) return this.records
    let text: string | undefined
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StoreError(`cannot read ${this.file}: ${(err as Error).message}`, { cause: err })
    }
    if (text !== undefined && text.length > MAX_RECORDS_BYTES) throw new StoreError(`${this.file} is over ${MAX_RECORDS_BYTES} bytes`)
    const list = text === undefined ? [] : parseRecordsFile(text, this.file)
    this.records = new Map(list.map((r) => [r.id, r]))
    return this.records
  }

  async list (): Promise<ModelRecord[]> {
    return [...(await this.load()).values()].sort((a, b) => a.id.localeCompare(b.id))
  }

  async get (id: string): Promise<ModelRecord | undefined> {
    return (await this.load()).get(id)
  }

  /** Records whose root CID is `cid` (one CID may carry several ids). */
  async byCid (cid: string): Promise<ModelRecord[]> {
    return [...(await this.load()).values()].filter((r) => r.cid === cid)
  }

  async put (record: ModelRecord): Promise<void> {
    const valid = parseModelRecord(record, 'record')
    await this.mutate((m) => { m.set(valid.id, valid) })
  }

  async update (id: string, patch: Partial<Omit<ModelRecord, 'id'>>): Promise<ModelRecord | undefined> {
    let out: ModelRecord | undefined
    await this.mutate((m) => {
      const prev = m.get(id)
      if (prev === undefined) return
      out = parseModelRecord({ ...prev, ...patch }, 'record')
      m.set(id, out)
    })
    return out
  }

  async delete (id: string): Promise<boolean> {
    let had = false
    await this.mutate((m) => { had = m.delete(id) })
    return had
  }

  private async mutate (fn: (m: Map<string, ModelRecord>) => void): Promise<void> {
    const run = async (): Promise<void> => {
      const m = await this.load()
      fn(m)
      await this.save(m)
    }
    const next = this.writing.then(run, run)
    this.writing = next.catch(() => undefined) // a failed write is reported to its caller; later writes still run
    await next
  }

  private async save (m: Map<string, ModelRecord>): Promise<void> {
    const body = JSON.stringify({ version: RECORDS_VERSION, models: [...m.values()].sort((a, b) => a.id.localeCompare(b.id)) }, null, 2) + '\n'
    await mkdir(dirname(this.file), { recursive: true })
    const tmp = `${this.file}.${process.pid}.tmp`
    try {
      await writeFile(tmp, body)
      await rename(tmp, this.file)
    } catch (err) {
      await unlink(tmp).catch(() => undefined) // best effort: the temp file may not exist
      throw new StoreError(`cannot write ${this.file}: ${(err as Error).message}`, { cause: err })
    }
  }
}
