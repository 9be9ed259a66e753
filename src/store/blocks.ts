/**
 * Block-level helpers shared by the store: CID verification, dag-pb link
 * parsing (UnixFS DAGs are dag-pb nodes over raw leaves), reading a block
 * whole, and a small concurrency limiter and read/write lock.
 */
import { createHash } from 'node:crypto'
import { base32 } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import type { GraphNode, GraphWalkerFactory } from '@helia/interface'
import type { Blockstore } from 'interface-blockstore'
import { StoreError } from '../errors.ts'

export const RAW_CODE = 0x55
export const DAG_PB_CODE = 0x70
export const SHA2_256_CODE = 0x12
export const IDENTITY_CODE = 0x00
/** Largest block we accept from anyone (bitswap's limit is 2 MiB; we write 1 MiB). */
export const MAX_BLOCK_BYTES = 4 * 1024 * 1024

export type BlockGetter = Pick<Blockstore, 'get'>

/** Whether `bytes` hash to `cid`. Only sha2-256 and identity multihashes are known. */
export function blockMatches (cid: CID, bytes: Uint8Array): boolean {
  const mh = cid.multihash
  if (mh.code === SHA2_256_CODE) {
    const digest = createHash('sha256').update(bytes).digest()
    return digest.length === mh.digest.length && digest.equals(mh.digest)
  }
  if (mh.code === IDENTITY_CODE) return Buffer.from(mh.digest).equals(bytes)
  throw new StoreError(`unsupported multihash 0x${mh.code.toString(16)} in ${cid.toString()}: only sha2-256 blocks are stored`)
}

/** A stable key for a block in maps: blockstores key blocks by multihash, not CID. */
export function blockKey (cid: CID): string {
  return base32.encode(cid.multihash.bytes)
}

/** Read a whole block from a blockstore whose `get` yields chunks. */
export async function readBlock (blockstore: BlockGetter, cid: CID, options: { signal?: AbortSignal, offline?: boolean } = {}): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  let length = 0
  for await (const chunk of blockstore.get(cid, options)) {
    chunks.push(chunk)
    length += chunk.byteLength
    if (length > MAX_BLOCK_BYTES) throw new StoreError(`block ${cid.toString()} is over ${MAX_BLOCK_BYTES} bytes`)
  }
  if (chunks.length === 1 && chunks[0] !== undefined) return chunks[0]
  return Buffer.concat(chunks, length)
}

export interface PbLink { cid: CID, name?: string, tsize?: number }

function readVarint (buf: Uint8Array, pos: number): [number, number] {
  let value = 0
  let shift = 0
  for (let i = 0; i < 8; i++) {
    const b = buf[pos + i]
    if (b === undefined) throw new StoreError('truncated dag-pb varint')
    value += (b & 0x7f) * 2 ** shift
    if ((b & 0x80) === 0) return [value, pos + i + 1]
    shift += 7
  }
  throw new StoreError('dag-pb varint too long')
}

/** The links of a dag-pb node (PBNode field 2: PBLink{1: Hash, 2: Name, 3: Tsize}). */
export function dagPbLinks (bytes: Uint8Array): PbLink[] {
  const links: PbLink[] = []
  let pos = 0
  while (pos < bytes.length) {
    const [tag, p1] = readVarint(bytes, pos)
    const field = Math.floor(tag / 8)
    const wire = tag & 7
    if (wire !== 2) throw new StoreError(`unexpected dag-pb wire type ${wire}`)
    const [len, p2] = readVarint(bytes, p1)
    const end = p2 + len
    if (end > bytes.length) throw new StoreError('truncated dag-pb node')
    if (field === 2) links.push(parseLink(bytes.subarray(p2, end)))
    pos = end
  }
  return links
}

function parseLink (bytes: Uint8Array): PbLink {
  let pos = 0
  let cid: CID | undefined
  let name: string | undefined
  let tsize: number | undefined
  while (pos < bytes.length) {
    const [tag, p1] = readVarint(bytes, pos)
    const field = Math.floor(tag / 8)
    const wire = tag & 7
    if (wire === 0) {
      const [v, p2] = readVarint(bytes, p1)
      if (field === 3) tsize = v
      pos = p2
      continue
    }
    if (wire !== 2) throw new StoreError(`unexpected dag-pb link wire type ${wire}`)
    const [len, p2] = readVarint(bytes, p1)
    const end = p2 + len
    if (end > bytes.length) throw new StoreError('truncated dag-pb link')
    if (field === 1) cid = CID.decode(bytes.subarray(p2, end))
    if (field === 2) name = Buffer.from(bytes.subarray(p2, end)).toString('utf8')
    pos = end
  }
  if (cid === undefined) throw new StoreError('dag-pb link without a hash')
  return { cid, ...(name === undefined ? {} : { name }), ...(tsize === undefined ? {} : { tsize }) }
}

/** Children of a block: dag-pb links; raw blocks have none; other codecs are refused. */
export function childLinks (cid: CID, bytes: Uint8Array): PbLink[] {
  if (cid.code === RAW_CODE) return []
  if (cid.code === DAG_PB_CODE) return dagPbLinks(bytes)
  throw new StoreError(`unsupported codec 0x${cid.code.toString(16)} in ${cid.toString()}: model DAGs are UnixFS (dag-pb + raw)`)
}

/** Parse a CID string, or throw a StoreError that says what was expected. */
export function parseCid (text: string): CID {
  try {
    return CID.parse(text)
  } catch (err) {
    throw new StoreError(`"${text}" is not a CID`, { cause: err })
  }
}

export function tryParseCid (text: string): CID | undefined {
  if (!/^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,}|z[1-9A-HJ-NP-Za-km-z]{20,}|f[0-9a-f]{20,})$/.test(text)) return undefined
  try {
    return CID.parse(text)
  } catch {
    return undefined // not a CID: the caller treats the text as a model id
  }
}

/** Runs at most `limit` tasks at once; `run` waits for a free slot. */
export class Limiter {
  private active = 0
  private readonly waiters: Array<() => void> = []
  private readonly limit: number
  private readonly pending = new Set<Promise<void>>()
  private firstError: unknown
  constructor (limit: number) { this.limit = limit }

  /** Start `task` once a slot is free; its failure surfaces from `drain()`. */
  async run (task: () => Promise<void>): Promise<void> {
    if (this.firstError !== undefined) throw this.firstError
    while (this.active >= this.limit) await new Promise<void>((resolve) => { this.waiters.push(resolve) })
    this.active++
    const p = task().catch((err: unknown) => { this.firstError ??= err }).finally(() => {
      this.active--
      this.pending.delete(p)
      this.waiters.shift()?.()
    })
    this.pending.add(p)
  }

  async drain (): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending])
    if (this.firstError !== undefined) throw this.firstError
  }
}

/** An in-process read/write lock: many readers (imports, pulls) or one writer (gc). */
export class RwLock {
  private readers = 0
  private writer = false
  private readonly queue: Array<{ write: boolean, resolve: () => void }> = []

  async read<T> (fn: () => Promise<T>): Promise<T> {
    await this.acquire(false)
    try { return await fn() } finally { this.release(false) }
  }

  async write<T> (fn: () => Promise<T>): Promise<T> {
    await this.acquire(true)
    try { return await fn() } finally { this.release(true) }
  }

  private async acquire (write: boolean): Promise<void> {
    if (this.queue.length === 0 && !this.writer && (!write || this.readers === 0)) {
      if (write) this.writer = true
      else this.readers++
      return
    }
    await new Promise<void>((resolve) => { this.queue.push({ write, resolve }) })
  }

  private release (write: boolean): void {
    if (write) this.writer = false
    else this.readers--
    while (this.queue.length > 0) {
      const next = this.queue[0]
      if (next === undefined) break
      if (next.write) {
        if (this.readers > 0 || this.writer) break
        this.queue.shift()
        this.writer = true
        next.resolve()
        break
      }
      if (this.writer) break
      this.queue.shift()
      this.readers++
      next.resolve()
    }
  }
}

/** Visit a DAG with `concurrency` workers; `visit` returns the children to visit next. */
export async function walkParallel (start: CID[], concurrency: number, visit: (cid: CID) => Promise<CID[]>, signal?: AbortSignal): Promise<void> {
  const queue = [...start]
  let active = 0
  let wake: Array<() => void> = []
  let failed: unknown
  const notify = (): void => {
    const w = wake
    wake = []
    for (const f of w) f()
  }
  const worker = async (): Promise<void> => {
    for (;;) {
      if (failed !== undefined) return
      signal?.throwIfAborted()
      const cid = queue.pop()
      if (cid === undefined) {
        if (active === 0) { notify(); return }
        await new Promise<void>((resolve) => { wake.push(resolve) })
        continue
      }
      active++
      try {
        queue.push(...await visit(cid))
      } catch (err) {
        failed ??= err
      } finally {
        active--
        notify()
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  if (failed !== undefined) throw failed
}

/** Subtree roots under `root` that are not in the blockstore (empty: the DAG is whole). Reads only local blocks. */
export async function findMissing (blockstore: Pick<Blockstore, 'get' | 'has'>, root: CID, options: { signal?: AbortSignal } = {}): Promise<CID[]> {
  const missing: CID[] = []
  const stack: CID[] = [root]
  const seen = new Set<string>()
  while (stack.length > 0) {
    options.signal?.throwIfAborted()
    const cid = stack.pop() as CID
    const k = cid.toString()
    if (seen.has(k)) continue
    seen.add(k)
    if (!(await blockstore.has(cid, options))) { missing.push(cid); continue }
    if (cid.code !== DAG_PB_CODE) continue
    const bytes = await readBlock(blockstore, cid, { ...options, offline: true })
    for (const l of childLinks(cid, bytes)) stack.push(l.cid)
  }
  return missing
}

/**
 * A graph walker for Helia's pins over a local DAG that reads only the
 * dag-pb nodes: raw leaves have no links, so they are checked for presence
 * and not read (Helia's default walker reads every block, which made
 * pinning a 200 MB model cost a full read of it). Pins use only
 * `node.block.cid` of what a walker yields.
 */
export function localDagWalker (): GraphWalkerFactory {
  return (components) => ({
    async * walk<T> (root: CID, options: { signal?: AbortSignal } = {}): AsyncGenerator<GraphNode<T>> {
      const stack: Array<{ cid: CID, depth: number }> = [{ cid: root, depth: 0 }]
      const seen = new Set<string>()
      while (stack.length > 0) {
        options.signal?.throwIfAborted()
        const { cid, depth } = stack.pop() as { cid: CID, depth: number }
        const k = cid.toString()
        if (seen.has(k)) continue
        seen.add(k)
        if (!(await components.blockstore.has(cid, options))) throw new StoreError(`block ${k} is not in the local blockstore: pull the model first`)
        if (cid.code === DAG_PB_CODE) {
          const bytes = await readBlock(components.blockstore, cid, { ...options, offline: true })
          for (const l of childLinks(cid, bytes).reverse()) stack.push({ cid: l.cid, depth: depth + 1 })
        }
        yield { block: { cid } as unknown as GraphNode<T>['block'], depth, path: [] }
      }
    }
  })
}

/** Call `visit` for every block of a DAG that is present locally (missing subtrees are skipped); reads dag-pb nodes only. */
export async function walkLocal (blockstore: Pick<Blockstore, 'get' | 'has'>, root: CID, visit: (cid: CID) => void, signal?: AbortSignal): Promise<void> {
  const stack: CID[] = [root]
  const seen = new Set<string>()
  while (stack.length > 0) {
    signal?.throwIfAborted()
    const cid = stack.pop() as CID
    const k = cid.toString()
    if (seen.has(k)) continue
    seen.add(k)
    if (!(await blockstore.has(cid))) continue
    visit(cid)
    if (cid.code !== DAG_PB_CODE) continue
    const bytes = await readBlock(blockstore, cid, { signal, offline: true })
    for (const l of childLinks(cid, bytes)) stack.push(l.cid)
  }
}
