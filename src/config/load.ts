/**
 * Configuration sources merged as file < environment (IPFS_ACCELERATE_*) <
 * flags, validated once against the schema and frozen. Every problem is
 * reported at once, each naming its field.
 */
import { readFile, stat } from 'node:fs/promises'
import { extname, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { ConfigError } from '../errors.ts'
import { configSchema } from './schema.ts'
import type { NodeConfig } from './schema.ts'

const MAX_CONFIG_BYTES = 1024 * 1024

type Plain = Record<string, unknown>

function isPlain (v: unknown): v is Plain {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Deep merge: objects merge key by key, anything else (arrays too) replaces. */
export function mergeConfig (...layers: Plain[]): Plain {
  const out: Plain = {}
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      if (v === undefined) continue
      const prev = out[k]
      out[k] = isPlain(prev) && isPlain(v) ? mergeConfig(prev, v) : v
    }
  }
  return out
}

export async function readConfigFile (path: string): Promise<Plain> {
  const file = resolve(path)
  const info = await stat(file).catch((err: unknown) => {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`, { cause: err })
  })
  if (info.size > MAX_CONFIG_BYTES) throw new ConfigError(`config file ${file} is over ${MAX_CONFIG_BYTES} bytes`)
  const text = await readFile(file, 'utf8')
  let parsed: unknown
  try {
    parsed = extname(file) === '.json' ? JSON.parse(text) : parseYaml(text)
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message}`, { cause: err })
  }
  if (parsed === null || parsed === undefined) return {}
  if (!isPlain(parsed)) throw new ConfigError(`config file ${file} must hold a mapping of settings at its top level`)
  return parsed
}

function list (v: string): string[] {
  return v.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
}

function boolEnv (name: string, v: string): boolean {
  if (/^(1|true|yes|on)$/i.test(v)) return true
  if (/^(0|false|no|off)$/i.test(v)) return false
  throw new ConfigError(`${name}=${JSON.stringify(v)}: expected true or false`)
}

function intEnv (name: string, v: string): number {
  if (!/^-?\d+$/.test(v.trim())) throw new ConfigError(`${name}=${JSON.stringify(v)}: expected an integer`)
  return Number(v)
}

/** Settings from IPFS_ACCELERATE_* variables. */
export function configFromEnv (env: NodeJS.ProcessEnv = process.env): Plain {
  const out: Plain = {}
  const e = (k: string): string | undefined => env[`IPFS_ACCELERATE_${k}`]
  const v = {
    dataDir: e('DATA_DIR'),
    listen: e('LISTEN'),
    bootstrap: e('BOOTSTRAP'),
    mdns: e('MDNS'),
    http: e('HTTP'),
    apiKey: e('API_KEY'),
    models: e('MODELS'),
    device: e('DEVICE'),
    dtype: e('DTYPE'),
    catalog: e('CATALOG'),
    logLevel: e('LOG_LEVEL'),
    cacheBudgetMB: e('CACHE_BUDGET_MB'),
    maxPullMB: e('MAX_PULL_MB'),
    maxBatchCost: e('MAX_BATCH_COST'),
    embedCache: e('EMBED_CACHE'),
    swarmKey: e('SWARM_KEY'),
    allowPeers: e('ALLOW_PEERS'),
    trustedPeers: e('TRUSTED_PEERS')
  }
  if (v.dataDir !== undefined) out.dataDir = v.dataDir
  if (v.listen !== undefined) out.listen = list(v.listen)
  if (v.bootstrap !== undefined) out.bootstrap = list(v.bootstrap)
  if (v.mdns !== undefined) out.mdns = boolEnv('IPFS_ACCELERATE_MDNS', v.mdns)
  if (v.http !== undefined) out.http = /^(off|false|none)$/i.test(v.http) ? false : v.http
  if (v.apiKey !== undefined) out.apiKey = v.apiKey
  if (v.models !== undefined) out.models = list(v.models)
  if (v.device !== undefined) out.device = v.device
  if (v.dtype !== undefined) out.dtype = v.dtype
  if (v.catalog !== undefined) out.catalog = v.catalog
  if (v.logLevel !== undefined) out.logLevel = v.logLevel
  if (v.swarmKey !== undefined) out.swarmKey = v.swarmKey
  if (v.allowPeers !== undefined) out.allowPeers = list(v.allowPeers)
  if (v.trustedPeers !== undefined) out.trustedPeers = list(v.trustedPeers)
  if (v.cacheBudgetMB !== undefined) out.store = { cacheBudgetMB: intEnv('IPFS_ACCELERATE_CACHE_BUDGET_MB', v.cacheBudgetMB) }
  if (v.maxPullMB !== undefined) out.store = { ...(out.store as Plain | undefined), maxPullMB: intEnv('IPFS_ACCELERATE_MAX_PULL_MB', v.maxPullMB) }
  if (v.embedCache !== undefined) out.store = { ...(out.store as Plain | undefined), embeddingCache: boolEnv('IPFS_ACCELERATE_EMBED_CACHE', v.embedCache) }
  if (v.maxBatchCost !== undefined) out.scheduler = { maxBatchCost: intEnv('IPFS_ACCELERATE_MAX_BATCH_COST', v.maxBatchCost) }
  return out
}

/** Validate merged settings; all problems in one ConfigError. */
export function validateConfig (raw: Plain, origin = 'configuration'): Readonly<NodeConfig> {
  const parsed = configSchema.safeParse(raw)
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(top level)'}: ${i.message}`)
    throw new ConfigError(`invalid ${origin}: ${problems.join('; ')}`)
  }
  const cfg = parsed.data
  cfg.dataDir = resolve(cfg.dataDir)
  if (cfg.swarmKey !== undefined) cfg.swarmKey = resolve(cfg.swarmKey)
  cfg.allowPeers = [...new Set(cfg.allowPeers)]
  cfg.trustedPeers = [...new Set(cfg.trustedPeers)]
  return Object.freeze(cfg)
}

export interface LoadConfigOptions {
  /** Config file path (--config or IPFS_ACCELERATE_CONFIG). */
  file?: string
  flags?: Plain
  env?: NodeJS.ProcessEnv
}

export async function loadConfig (opts: LoadConfigOptions = {}): Promise<Readonly<NodeConfig>> {
  const env = opts.env ?? process.env
  const path = opts.file ?? env.IPFS_ACCELERATE_CONFIG
  const fromFile = path === undefined ? {} : await readConfigFile(path)
  return validateConfig(mergeConfig(fromFile, configFromEnv(env), opts.flags ?? {}))
}
