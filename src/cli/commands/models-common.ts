/**
 * Shared by the `models` store commands: where the data dir is, whether a
 * node runs on it (then its HTTP API does the work: it owns pins and
 * records), otherwise opening the store in this process; progress on
 * stderr; Ctrl-C as a cancel signal.
 */
import type { ParsedArgs, OptionSpec } from '../command.ts'
import { bool, str, strs } from '../command.ts'
import { defaultDataDir } from '../../config/schema.ts'
import { StoreError, UsageError } from '../../errors.ts'
import { setLogLevel } from '../../logger.ts'
import type { StoreProgress } from '../../store/models/model-store.ts'
import type { ModelStoreApi } from '../../store/api/client.ts'
import { ProgressBar } from '../../store/progress.ts'

export const COMMON_OPTIONS: OptionSpec = Object.freeze({
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  'log-level': { type: 'string' }
})

export const COMMON_HELP = `  --data-dir DIR    the node's data dir (default ~/.ipfs-accelerate;
                    env IPFS_ACCELERATE_DATA_DIR)
  --json            print the result as one JSON object
  -q, --quiet       no progress lines on stderr
  --log-level L     error, warn, info or debug (default warn)
  -h, --help        this help

When a node runs on the data dir (its node.json names a live process), the
command asks that node through its HTTP API, with the token the node keeps
in <data-dir>/api.token; otherwise it opens the store itself. One process
writes a store at a time (<data-dir>/store/lock): this command waits up to
10 s for another that has it open, then fails with ERR_STORE_LOCKED.`

export function dataDirOf (args: ParsedArgs): string {
  return str(args, 'data-dir') ?? process.env.IPFS_ACCELERATE_DATA_DIR ?? defaultDataDir()
}

export interface OpenedStore {
  api: ModelStoreApi
  /** 'node': through the running node's API; 'local': opened here. */
  via: 'node' | 'local'
  close(): Promise<void>
}

export interface OpenOptions {
  /** Open libp2p (for pull) when opening locally; a swarm key file joins a private swarm; trusted peers' manifests are believed. */
  network?: { bootstrap: string[], mdns: boolean, swarmKey?: string, trustedPeers?: string[] }
}

/** Talk to the node that runs on the data dir, or open the store here. */
export async function openStore (args: ParsedArgs, options: OpenOptions = {}): Promise<OpenedStore> {
  const level = str(args, 'log-level') ?? 'warn'
  if (!['error', 'warn', 'info', 'debug'].includes(level)) throw new UsageError(`--log-level ${level}: expected error, warn, info or debug`)
  setLogLevel(level as 'error' | 'warn' | 'info' | 'debug')
  const dataDir = dataDirOf(args)
  const { readLiveNodeFile } = await import('../../node/node-file.ts')
  const node = await readLiveNodeFile(dataDir)
  if (node !== undefined) {
    if (node.httpUrl === null) {
      throw new StoreError(`a node (pid ${node.pid}) runs on ${dataDir} without its HTTP API, and owns the store: stop it, or restart it with --http HOST:PORT`)
    }
    const { StoreApiClient } = await import('../../store/api/client.ts')
    const { readApiToken } = await import('../../gateway/token.ts')
    return { api: new StoreApiClient(node.httpUrl, { token: await readApiToken(dataDir) }), via: 'node', close: async () => {} }
  }
  const { createContentStore } = await import('../../store/content-store.ts')
  const { loadCatalog, DEFAULT_CATALOG_PATH } = await import('../../models/catalog.ts')
  const catalog = await loadCatalog(str(args, 'catalog') ?? process.env.IPFS_ACCELERATE_CATALOG ?? DEFAULT_CATALOG_PATH)
  let libp2p
  if (options.network !== undefined) {
    const { libp2pOptions } = await import('../../p2p/swarm/libp2p.ts')
    const { loadOrCreateIdentity } = await import('../../p2p/trust/identity.ts')
    const keyFile = options.network.swarmKey
    const swarm = keyFile === undefined ? undefined : await (await import('../../p2p/trust/swarm-key.ts')).readSwarmKey(keyFile)
    libp2p = libp2pOptions({ privateKey: await loadOrCreateIdentity(dataDir), listen: [], bootstrap: options.network.bootstrap, mdns: options.network.mdns, ...(swarm === undefined ? {} : { swarmKey: swarm.key }) })
  }
  const store = await createContentStore({ dataDir, catalog, ...(libp2p === undefined ? {} : { libp2p }), trustedPeers: options.network?.trustedPeers ?? [] })
  await store.start()
  return { api: store.models, via: 'local', close: async () => { await store.stop() } }
}

/** Run `fn` with a signal that Ctrl-C (and an optional --timeout) aborts; always closes the store. */
export async function withStore<T> (args: ParsedArgs, options: OpenOptions, fn: (api: ModelStoreApi, signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController()
  const onSignal = (): void => { ac.abort(new StoreError('cancelled (Ctrl-C)')) }
  process.once('SIGINT', onSignal)
  const timeoutS = str(args, 'timeout')
  const signals = [ac.signal]
  if (timeoutS !== undefined) {
    const s = Number(timeoutS)
    if (!Number.isFinite(s) || s <= 0) throw new UsageError(`--timeout ${timeoutS}: expected a number of seconds`)
    signals.push(AbortSignal.timeout(s * 1000))
  }
  const opened = await openStore(args, options)
  try {
    return await fn(opened.api, AbortSignal.any(signals))
  } finally {
    process.off('SIGINT', onSignal)
    await opened.close()
  }
}

/** A progress callback drawing on stderr (one bar per phase), unless --quiet or --json on a non-TTY. */
export function progressFor (args: ParsedArgs, label: string): { onProgress: (p: StoreProgress) => void, finish: () => void } {
  const quiet = bool(args, 'quiet') === true || (bool(args, 'json') === true && process.stderr.isTTY !== true)
  let bar: ProgressBar | undefined
  let phase: string | undefined
  return {
    onProgress: (p) => {
      if (quiet) return
      if (p.phase !== phase) {
        bar?.finish()
        phase = p.phase
        bar = new ProgressBar({ out: process.stderr, label: p.phase === label ? label : `${label}: ${p.phase}` })
      }
      bar?.update(p.bytes, p.totalBytes)
    },
    finish: () => { bar?.finish() }
  }
}

export function print (args: ParsedArgs, json: unknown, text: string): void {
  process.stdout.write(bool(args, 'json') === true ? JSON.stringify(json) + '\n' : text.trimEnd() + '\n')
}

export function onePositional (args: ParsedArgs, what: string, command: string): string {
  if (args.positionals.length !== 1 || args.positionals[0] === undefined) throw new UsageError(`expected one ${what}: ipfs-accelerate models ${command} ${what.toUpperCase()}`)
  return args.positionals[0]
}

export function bootstrapOf (args: ParsedArgs): string[] {
  return strs(args, 'bootstrap')
}
