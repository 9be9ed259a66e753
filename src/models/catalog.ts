/**
 * The model catalog: models.json, validated once and frozen.
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import type { ModelEntry, SkillsetName } from '../interfaces/index.ts'
import { DTYPES, SKILLSET_NAMES } from '../interfaces/index.ts'
import { ConfigError, ModelNotFoundError } from '../errors.ts'

const MAX_CATALOG_BYTES = 1024 * 1024

export const modelIdSchema = z.string().min(1).max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/, 'a model id is NAME or OWNER/NAME of letters, digits, ".", "_" and "-"')

const sourceSchema = z.union([
  z.strictObject({ kind: z.literal('generated'), generator: z.literal('bert'), size: z.enum(['tiny', 'minilm']), seed: z.number().int().nonnegative() }),
  z.strictObject({ kind: z.literal('generated'), generator: z.literal('qwen2'), size: z.enum(['tiny', 'small', 'bench']), seed: z.number().int().nonnegative() }),
  z.strictObject({ kind: z.literal('generated'), generator: z.literal('detr'), size: z.enum(['tiny', 'bench']), seed: z.number().int().nonnegative() }),
  z.strictObject({ kind: z.literal('generated'), generator: z.literal('llava-next'), size: z.enum(['tiny']), seed: z.number().int().nonnegative() }),
  /** A placeholder folder for the stand-in skillset: no weights. */
  z.strictObject({ kind: z.literal('generated'), generator: z.literal('stand-in'), seed: z.number().int().nonnegative() }),
  z.strictObject({ kind: z.literal('hub'), repo: z.string().min(1).max(200), revision: z.string().max(100).optional() })
])

const dtypeSchema = z.enum(DTYPES as [string, ...string[]])

export const modelEntrySchema = z.strictObject({
  id: modelIdSchema,
  skillset: z.enum(SKILLSET_NAMES as [SkillsetName, ...SkillsetName[]]),
  source: sourceSchema,
  dtypes: z.array(dtypeSchema).min(1),
  sizeMB: z.number().positive(),
  cid: z.string().min(1).max(200).optional(),
  description: z.string().max(1000).optional(),
  offlineDefault: z.boolean().optional(),
  /** Served by default when the model hub (or a peer holding it) is reachable: a hub model. */
  onlineDefault: z.boolean().optional(),
  /** The dtypes whose results do not depend on batch-mates; absent: the float ones. */
  reproducibleDtypes: z.array(dtypeSchema).optional()
}).superRefine((m, ctx) => {
  if (m.onlineDefault === true && m.source.kind !== 'hub') ctx.addIssue({ code: 'custom', path: ['onlineDefault'], message: 'only a hub model can be the online default (a generated one is the offline default)' })
  const unknown = (m.reproducibleDtypes ?? []).filter((d) => !m.dtypes.includes(d))
  if (unknown.length > 0) ctx.addIssue({ code: 'custom', path: ['reproducibleDtypes'], message: `${unknown.join(', ')} not among the model's dtypes (${m.dtypes.join(', ')})` })
})

const catalogSchema = z.strictObject({
  version: z.literal(1),
  models: z.array(modelEntrySchema).max(10_000)
})

export const DEFAULT_CATALOG_PATH = fileURLToPath(new URL('../../models.json', import.meta.url))

export class ModelCatalog {
  readonly models: readonly ModelEntry[]
  constructor (models: ModelEntry[]) {
    const seen = new Set<string>()
    const defaults = new Set<string>()
    for (const m of models) {
      if (seen.has(m.id)) throw new ConfigError(`models.json: model id "${m.id}" appears twice`)
      seen.add(m.id)
      for (const kind of ['offlineDefault', 'onlineDefault'] as const) {
        if (m[kind] !== true) continue
        if (defaults.has(`${kind}:${m.skillset}`)) throw new ConfigError(`models.json: two ${kind} models for the ${m.skillset} skillset; mark one`)
        defaults.add(`${kind}:${m.skillset}`)
      }
    }
    this.models = Object.freeze(models.map((m) => Object.freeze(m)))
  }

  get (id: string): ModelEntry {
    const m = this.models.find((e) => e.id === id)
    if (m === undefined) throw new ModelNotFoundError(`unknown model "${id}": known models are ${this.models.map((e) => e.id).join(', ')}`)
    return m
  }

  find (id: string): ModelEntry | undefined {
    return this.models.find((e) => e.id === id)
  }

  forSkillset (skillset: SkillsetName): ModelEntry[] {
    return this.models.filter((m) => m.skillset === skillset)
  }

  /** The real model served, where the hub or a peer holding it is reachable, for a skillset. */
  onlineDefault (skillset: SkillsetName): ModelEntry | undefined {
    return this.models.find((m) => m.skillset === skillset && m.onlineDefault === true)
  }

  /** The model served when no hub is reachable, for a skillset. */
  offlineDefault (skillset: SkillsetName): ModelEntry | undefined {
    return this.models.find((m) => m.skillset === skillset && m.offlineDefault === true)
  }
}

export function parseCatalog (raw: unknown, origin: string): ModelCatalog {
  const parsed = catalogSchema.safeParse(raw)
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new ConfigError(`${origin} is invalid: ${problems}`)
  }
  return new ModelCatalog(parsed.data.models as ModelEntry[])
}

export async function loadCatalog (path: string = DEFAULT_CATALOG_PATH): Promise<ModelCatalog> {
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw new ConfigError(`cannot read the model catalog ${path}: ${(err as Error).message}`, { cause: err })
  })
  if (text.length > MAX_CATALOG_BYTES) throw new ConfigError(`${path} is over ${MAX_CATALOG_BYTES} bytes`)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`${path} is not valid JSON: ${(err as Error).message}`, { cause: err })
  }
  return parseCatalog(json, path)
}
