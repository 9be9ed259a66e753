/**
 * Pulling a model: resolve the reference (local record, CID, catalog, or a
 * trusted peer's manifest: an id → CID answer decides what is fetched, so
 * only peers in `trustedPeers` are asked; a CID verifies its content
 * itself, so by CID any peer serves), find sources (named peers, provider records from
 * adverts, connected peers, each asked `has`), stream the DAG with the
 * block exchange, fall back to bitswap for whatever that could not give
 * (saying why), check the DAG is whole, pin, hash the files, record.
 * Local blocks that fail their CID check are deleted first and fetched
 * again (a model whose blocks are all here is still re-checked).
 */
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { mkdir, statfs } from 'node:fs/promises'
import type { CID } from 'multiformats/cid'
import { errorMessage, ModelNotFoundError, StoreError } from '../../errors.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import type { Logger } from '../../logger.ts'
import type { ModelCatalog } from '../../models/catalog.ts'
import { childLinks, dagSize, missingBlocks, walkParallel } from '../blocks/dag.ts'
import { DAG_PB_CODE, parseCid, readBlock, tryParseCid } from '../blocks/cid.ts'
import { BLOCKS_PROTOCOL } from '../exchange/block-exchange.ts'
import type { ModelStoreComponents, StoreProgress } from './types.ts'
import { parseModelRecord } from './records.ts'
import type { ModelFile, ModelRecord } from './records.ts'

export interface PullOptions {
  /** Peers to ask first: multiaddrs ending in /p2p/<id>, or peer ids. Provider records and connected peers are asked too. */
  peers?: string[]
  /** Record the model under this id (default: the peer's id for it, the catalog's, or the CID). */
  id?: string
  skillset?: SkillsetName
  signal?: AbortSignal
  onProgress?: (p: StoreProgress) => void
  /** Skip the block exchange (benchmarks, or peers that only speak bitswap). */
  bitswapOnly?: boolean
  /** How long each peer has to answer `has` (ms). */
  askTimeoutMs?: number
  /** Refuse a model larger than this (default: the store's `maxPullBytes`). */
  maxBytes?: number
  /** Give up on bitswap when no block came for this long (ms, default 30 s). */
  bitswapStallMs?: number
}

export interface PullResult {
  record: ModelRecord
  fetched: {
    blocks: number
    bytes: number
    /** Time spent fetching blocks (finding sources, transfer, verification, writes). */
    ms: number
    /** Time for the whole pull (also pinning and hashing the files for the record). */
    totalMs: number
    /** 'none' when the model was already whole here. */
    via: 'none' | 'exchange' | 'bitswap' | 'exchange+bitswap'
    byPeer: Record<string, number>
    /** Why peers were dropped or skipped, one line each. */
    failures: string[]
  }
}

export interface PullContext {
  ref: string
  options: PullOptions
  find: (ref: string) => Promise<ModelRecord | undefined>
  catalog?: ModelCatalog
  /** Whether a peer's manifest for a model id is believed (its id → CID answer). */
  trusted: (peer: string) => boolean
  components: ModelStoreComponents
  log: Logger
  recordFromDag: (root: CID, base: Pick<ModelRecord, 'id' | 'skillset'> & { files?: ModelFile[] }, signal?: AbortSignal, onProgress?: (p: StoreProgress) => void) => Promise<ModelRecord>
  pinRoot: (root: CID, signal?: AbortSignal) => Promise<void>
  saveRecord: (record: ModelRecord) => Promise<void>
  /** The largest model a pull takes unless told otherwise (config store.maxPullMB). */
  maxPullBytes: number
  /** Free bytes where blocks are written. */
  freeBytes: () => Promise<number>
  /** Delete the blocks under `root` that are here but fail their CID check, so that they are fetched again. */
  dropCorrupt: (root: CID, signal?: AbortSignal) => Promise<CID[]>
  /** Called once the root is known, before anything is fetched or pinned (the store notes the pull as pending). */
  begin: (root: CID) => Promise<void>
}

/** The largest model a pull takes unless told otherwise (config store.maxPullMB's default). */
export const DEFAULT_MAX_PULL_BYTES = 64 * 1024 ** 3

/** Free bytes for this user on the file system that holds `dir`. */
export async function freeBytes (dir: string): Promise<number> {
  await mkdir(dir, { recursive: true })
  const s = await statfs(dir)
  return s.bavail * s.bsize
}

/** Disk kept free after a pull, for records, the cache and the rest of the host. */
export const DISK_RESERVE_BYTES = 256 * 1024 * 1024

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`

export async function pullModel (ctx: PullContext): Promise<PullResult> {
  const started = performance.now()
  const { options, components: c, log } = ctx
  const signal = options.signal
  const exchange = c.exchange
  let record = await ctx.find(ctx.ref)
  const entry = ctx.catalog?.find(ctx.ref)
  let root: CID | undefined = record !== undefined ? parseCid(record.cid) : tryParseCid(ctx.ref) ?? (entry?.cid === undefined ? undefined : parseCid(entry.cid))
  const fetched: PullResult['fetched'] = { blocks: 0, bytes: 0, ms: 0, totalMs: 0, via: 'none', byPeer: {}, failures: [] }
  const done = (r: ModelRecord): PullResult => ({ record: r, fetched: { ...fetched, totalMs: Math.round(performance.now() - started) } })

  // Helia's put skips blocks it has: a corrupt one is deleted first, so that it is fetched again below
  const corrupt = root === undefined ? [] : await ctx.dropCorrupt(root, signal)
  if (corrupt.length > 0) fetched.failures.push(`${corrupt.length} local block(s) did not match their CID and were deleted to be fetched again`)
  if (root !== undefined && record?.pinned === true && (await missingBlocks(c.blockstore, root, { signal })).length === 0) {
    return done(record)
  }
  if (exchange === undefined || c.libp2p === undefined) {
    throw new StoreError(`cannot pull "${ctx.ref}": this store has no network (start the node, or pass --bootstrap to the CLI)`)
  }

  const fetchStarted = performance.now()
  const candidates = await connectCandidates(ctx, root)
  let manifest: (ModelRecord & { from: string }) | undefined
  if (root === undefined) {
    const trusted = candidates.filter((p) => ctx.trusted(p.toString()))
    manifest = await askManifest(ctx, trusted, ctx.ref)
    if (manifest !== undefined) root = parseCid(manifest.cid)
    else if (trusted.length < candidates.length) log.info('peers not trusted for manifests were not asked which CID a model id names', { ref: ctx.ref, untrusted: candidates.length - trusted.length })
  }
  if (root === undefined) {
    const untrusted = candidates.filter((p) => !ctx.trusted(p.toString())).length
    throw new ModelNotFoundError(`no local record, catalog CID or trusted peer knows model "${ctx.ref}"${untrusted > 0 ? ` (${untrusted} reachable peer(s) are not trusted, so they were not asked)` : ''}: pass its root CID, or trust a peer that holds it (--trusted-peer ID, config trustedPeers) and --bootstrap it`)
  }

  await ctx.begin(root)
  const missing = await exchange.missingBlocks(root, { signal })
  if (missing.length > 0 && candidates.length === 0) {
    throw new StoreError(`no peer to fetch ${root.toString()} from: pass --bootstrap with the address of a peer that holds it (or start the node, whose adverts name holders)`)
  }
  if (missing.length > 0) {
    const sources: PeerId[] = []
    const notes: string[] = []
    if (options.bitswapOnly !== true) {
      await Promise.all(candidates.map(async (peer) => {
        try {
          const [have] = await exchange.has(peer, [root], { signal: AbortSignal.any([AbortSignal.timeout(options.askTimeoutMs ?? 5000), ...(signal === undefined ? [] : [signal])]) })
          if (have === true) sources.push(peer)
          else notes.push(`${peer.toString()} does not hold it`)
        } catch (err) {
          signal?.throwIfAborted()
          notes.push((err as Error).name === 'UnsupportedProtocolError' ? `${peer.toString()} does not speak ${BLOCKS_PROTOCOL}` : `${peer.toString()}: ${errorMessage(err)}`)
        }
      }))
    }
    const maxBytes = options.maxBytes ?? ctx.maxPullBytes
    const admit = async (totalBytes: number, neededBytes: number): Promise<void> => {
      if (totalBytes > maxBytes) throw new StoreError(`model ${root.toString()} is ${mb(totalBytes)}, over the ${mb(maxBytes)} a pull takes (store.maxPullMB): raise the limit if you expect a model this large`)
      const free = await ctx.freeBytes()
      if (free < neededBytes + DISK_RESERVE_BYTES) throw new StoreError(`model ${root.toString()} needs ${mb(neededBytes)} more on disk, and the store's disk has ${mb(free)} free (${mb(DISK_RESERVE_BYTES)} is kept spare): free space, or run \`ipfs-accelerate models gc\``)
    }
    // The root here: check before fetching; else as soon as it arrives, before anything is written.
    if (await c.blockstore.has(root)) {
      const size = await dagSize(c.blockstore, root, signal)
      await admit(size.totalBytes, size.missingBytes)
    }
    const admitRoot = async (totalBytes: number): Promise<void> => { await admit(totalBytes, totalBytes) }
    const onProgress = (p: { bytes: number, totalBytes?: number }): void => { options.onProgress?.({ phase: 'fetch', bytes: p.bytes, ...(p.totalBytes === undefined ? {} : { totalBytes: p.totalBytes }) }) }
    let leftover = missing
    if (sources.length > 0) {
      log.info('fetching a model DAG from peers', { cid: root.toString(), peers: sources.length })
      const res = await exchange.fetch(root, sources, { signal, onProgress, admit: admitRoot, maxBytes })
      fetched.blocks += res.blocks
      fetched.bytes += res.bytes
      fetched.byPeer = res.byPeer
      fetched.via = 'exchange'
      leftover = res.leftover
      notes.push(...res.failures)
      fetched.failures.push(...res.failures)
    }
    if (leftover.length > 0) {
      const reason = options.bitswapOnly === true
        ? 'bitswap was asked for'
        : sources.length === 0 ? `no peer serves it on ${BLOCKS_PROTOCOL} (${notes.join('; ') || 'no peers'})` : `the block exchange left ${leftover.length} subtrees (${notes.join('; ')})`
      log.warn('fetching via bitswap', { cid: root.toString(), reason })
      let got: { blocks: number, bytes: number }
      try {
        got = await bitswapFetch(c, root, leftover, candidates, fetched.bytes, { signal, onProgress: (bytes) => { onProgress({ bytes }) }, admit: admitRoot, maxBytes, stallMs: options.bitswapStallMs })
      } catch (err) {
        signal?.throwIfAborted()
        // a limit (size, disk) says itself; anything else, a stall included, says what the exchange found first
        if (err instanceof StoreError && !(err instanceof BitswapStalled)) throw err
        throw new StoreError(`no peer could give all of ${root.toString()}: ${reason}; then bitswap failed (${errorMessage(err)}): pass --bootstrap with the address of a peer that holds it`, { cause: err })
      }
      fetched.blocks += got.blocks
      fetched.bytes += got.bytes
      fetched.via = fetched.via === 'exchange' ? 'exchange+bitswap' : 'bitswap'
    }
    const still = await exchange.missingBlocks(root, { signal })
    if (still.length > 0) throw new StoreError(`model ${root.toString()} is still missing ${still.length} subtrees after fetching: no peer could give them`)
    fetched.ms = Math.round(performance.now() - fetchStarted)
  }

  await ctx.pinRoot(root, signal)
  if (manifest === undefined && record === undefined && candidates.length > 0) manifest = await askManifest(ctx, candidates, root.toString())
  const id = options.id ?? record?.id ?? await manifestId(ctx, manifest, root) ?? entry?.id ?? root.toString()
  const prev = record?.cid === root.toString() ? record : undefined
  const next = prev !== undefined
    ? { ...prev, pinned: true, usedAt: new Date().toISOString() }
    : await ctx.recordFromDag(root, {
      id,
      ...(options.skillset ?? manifest?.skillset ?? entry?.skillset) === undefined ? {} : { skillset: options.skillset ?? manifest?.skillset ?? entry?.skillset },
      ...(manifest === undefined ? {} : { files: manifest.files })
    }, signal, options.onProgress)
  await ctx.saveRecord(next)
  log.info('pulled a model', { id: next.id, cid: next.cid, blocks: fetched.blocks, bytes: fetched.bytes, via: fetched.via })
  return done(next)
}

/** Named peers, provider records for the root, and connected peers, dialled and de-duplicated. */
async function connectCandidates (ctx: PullContext, root: CID | undefined): Promise<PeerId[]> {
  const libp2p = ctx.components.libp2p
  if (libp2p === undefined) return []
  const signal = ctx.options.signal
  const out = new Map<string, PeerId>()
  const targets: Array<Parameters<typeof libp2p.dial>[0]> = []
  for (const p of ctx.options.peers ?? []) {
    try {
      targets.push(p.startsWith('/') ? multiaddr(p) : peerIdFromString(p))
    } catch (err) {
      throw new StoreError(`"${p}" is neither a multiaddr nor a peer id: ${errorMessage(err)}`, { cause: err })
    }
  }
  if (root !== undefined) for (const e of ctx.components.providers?.find(root) ?? []) targets.push(e.multiaddrs.length > 0 ? e.multiaddrs : e.peerId)
  await Promise.all(targets.map(async (t) => {
    try {
      const conn = await libp2p.dial(t, { signal: AbortSignal.any([AbortSignal.timeout(10_000), ...(signal === undefined ? [] : [signal])]) })
      out.set(conn.remotePeer.toString(), conn.remotePeer)
    } catch (err) {
      signal?.throwIfAborted()
      ctx.log.warn('could not reach a peer', { peer: t.toString(), error: errorMessage(err) })
    }
  }))
  for (const p of libp2p.getPeers()) out.set(p.toString(), p)
  return [...out.values()]
}

/**
 * The id a peer's manifest gives the pulled root, when it may: a peer's
 * manifest never replaces a record here, nor claims an id that models.json
 * pins to another root, nor names anything unless its peer is trusted or
 * models.json pins that id to this very root. Otherwise the model is
 * recorded under its CID (rename it with --id), and the refusal is logged.
 */
async function manifestId (ctx: PullContext, manifest: (ModelRecord & { from: string }) | undefined, root: CID): Promise<string | undefined> {
  if (manifest === undefined) return undefined
  const pinned = ctx.catalog?.find(manifest.id)?.cid
  const existing = await ctx.find(manifest.id)
  const why = existing !== undefined && existing.cid !== root.toString()
    ? `this store already has ${manifest.id} as ${existing.cid}`
    : pinned !== undefined && pinned !== root.toString()
      ? `models.json pins ${manifest.id} to ${pinned}`
      : pinned === undefined && !ctx.trusted(manifest.from) ? `peer ${manifest.from} is not trusted to name models` : undefined
  if (why === undefined) return manifest.id
  ctx.log.warn('a peer\'s manifest names the pulled model with an id it may not take; recording it under its CID', { claimed: manifest.id, cid: root.toString(), why })
  return undefined
}

/** The first valid record a peer gives for `ref`, with the peer that gave it. */
async function askManifest (ctx: PullContext, peers: PeerId[], ref: string): Promise<(ModelRecord & { from: string }) | undefined> {
  const exchange = ctx.components.exchange
  if (exchange === undefined) return undefined
  const answers = await Promise.all(peers.map(async (peer) => {
    try {
      const raw = await exchange.manifest(peer, ref, { signal: AbortSignal.any([AbortSignal.timeout(5000), ...(ctx.options.signal === undefined ? [] : [ctx.options.signal])]) })
      return raw === undefined ? undefined : { ...parseModelRecord(raw, `peer ${peer.toString()}`), from: peer.toString() }
    } catch (err) {
      ctx.log.debug('no manifest from a peer', { peer: peer.toString(), error: errorMessage(err) })
      return undefined
    }
  }))
  return answers.find((a) => a !== undefined && (a.id === ref || a.cid === ref))
}

/** bitswap went quiet: the caller words the error with what the block exchange found before it. */
class BitswapStalled extends StoreError {}

/** Walk the missing subtrees through Helia's networked blockstore (bitswap), many wants at once. */
async function bitswapFetch (c: ModelStoreComponents, root: CID, missing: CID[], peers: PeerId[], base: number, options: { signal?: AbortSignal, onProgress?: (bytes: number) => void, stallMs?: number, admit: (totalBytes: number) => Promise<void>, maxBytes: number }): Promise<{ blocks: number, bytes: number }> {
  // bitswap waits for providers for as long as it is let: give up when no block came for a while
  const stallMs = options.stallMs ?? 30_000
  const stalled = new AbortController()
  const stall = (): void => { stalled.abort(new BitswapStalled(`it got no block of ${root.toString()} for ${stallMs / 1000} s: no reachable peer has it`)) }
  let timer = setTimeout(stall, stallMs)
  const progress = (): void => {
    clearTimeout(timer)
    timer = setTimeout(stall, stallMs)
  }
  const signal = options.signal === undefined ? stalled.signal : AbortSignal.any([options.signal, stalled.signal])
  const session = c.blockstore.createSession?.(root, { signal, providers: peers.map((p) => p.toCID()) })
  const bs = session ?? c.blockstore
  let blocks = 0
  let bytes = 0
  try {
    await walkParallel(missing, 32, async (cid) => {
      const local = await c.blockstore.has(cid)
      if (local && cid.code !== DAG_PB_CODE) return []
      const data = await readBlock(bs, cid, { signal })
      progress()
      if (!local) {
        // bitswap writes what it gets: the root's claim is checked as it lands, the running total on every block
        if (cid.equals(root) && cid.code === DAG_PB_CODE) await options.admit(data.byteLength + childLinks(cid, data).reduce((s, l) => s + (l.tsize ?? 0), 0))
        blocks++
        bytes += data.byteLength
        if (base + bytes > options.maxBytes) throw new StoreError(`${root.toString()} passed ${options.maxBytes} bytes while it was fetched over bitswap, more than the pull allows`)
        options.onProgress?.(base + bytes)
      }
      return childLinks(cid, data).map((l) => l.cid)
    }, signal)
  } catch (err) {
    if (stalled.signal.aborted && options.signal?.aborted !== true) throw stalled.signal.reason
    throw err
  } finally {
    clearTimeout(timer)
    session?.close()
  }
  return { blocks, bytes }
}
