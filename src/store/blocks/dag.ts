/**
 * UnixFS DAGs (dag-pb nodes over raw leaves): link parsing, and the walks
 * over a DAG: in parallel (fetches), and over the local blockstore (what is
 * missing, what is present, Helia's pin walker).
 */
import { CID } from 'multiformats/cid'
import type { GraphNode, GraphWalkerFactory } from '@helia/interface'
import type { Blockstore } from 'interface-blockstore'
import { StoreError } from '../../errors.ts'
import { blockMatches, DAG_PB_CODE, RAW_CODE, readBlock } from './cid.ts'

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

/** A block of a local DAG walk: `present` false means its subtree is not here (and is not descended into). */
interface LocalBlock { cid: CID, depth: number, present: boolean, /** The size its parent's link claims for its subtree (none for the root). */ tsize?: number }

/**
 * Walk a DAG depth first over the local blockstore, each block once, in
 * link order. Reads only dag-pb nodes: raw leaves have no links, so they are
 * checked for presence and not read.
 */
async function * walkLocalDag (blockstore: Pick<Blockstore, 'get' | 'has'>, root: CID, signal?: AbortSignal): AsyncGenerator<LocalBlock> {
  const stack: LocalBlock[] = [{ cid: root, depth: 0, present: false }]
  const seen = new Set<string>()
  while (stack.length > 0) {
    signal?.throwIfAborted()
    const next = stack.pop() as LocalBlock
    const { cid, depth } = next
    const k = cid.toString()
    if (seen.has(k)) continue
    seen.add(k)
    if (!(await blockstore.has(cid, { signal }))) {
      yield next
      continue
    }
    yield { ...next, present: true }
    if (cid.code !== DAG_PB_CODE) continue
    const bytes = await readBlock(blockstore, cid, { signal, offline: true })
    for (const l of childLinks(cid, bytes).reverse()) stack.push({ cid: l.cid, depth: depth + 1, present: false, ...(l.tsize === undefined ? {} : { tsize: l.tsize }) })
  }
}

/** Subtree roots under `root` that are not in the blockstore (empty: the DAG is whole here). */
export async function missingBlocks (blockstore: Pick<Blockstore, 'get' | 'has'>, root: CID, options: { signal?: AbortSignal } = {}): Promise<CID[]> {
  const missing: CID[] = []
  for await (const b of walkLocalDag(blockstore, root, options.signal)) if (!b.present) missing.push(b.cid)
  return missing
}

/**
 * What a DAG whose root is here says it weighs: its total size, and the
 * bytes of the subtrees that are not here (from the sizes its links claim;
 * a peer may lie about them, so fetches also count what arrives).
 */
export async function dagSize (blockstore: Pick<Blockstore, 'get' | 'has'>, root: CID, signal?: AbortSignal): Promise<{ totalBytes: number, missingBytes: number }> {
  const bytes = await readBlock(blockstore, root, { signal, offline: true })
  const totalBytes = bytes.byteLength + childLinks(root, bytes).reduce((s, l) => s + (l.tsize ?? 0), 0)
  let missingBytes = 0
  for await (const b of walkLocalDag(blockstore, root, signal)) if (!b.present) missingBytes += b.tsize ?? 0
  return { totalBytes, missingBytes }
}

/** Call `visit` for every block of a DAG that is present locally (missing subtrees are skipped). */
export async function walkLocal (blockstore: Pick<Blockstore, 'get' | 'has'>, root: CID, visit: (cid: CID) => void, signal?: AbortSignal): Promise<void> {
  for await (const b of walkLocalDag(blockstore, root, signal)) if (b.present) visit(b.cid)
}

/**
 * Blocks under `root` that are here but whose bytes do not match their CID
 * (disk corruption). Reads and hashes every local block of the DAG; a
 * corrupt dag-pb node is not descended into; missing subtrees are skipped.
 */
export async function corruptBlocks (blockstore: Pick<Blockstore, 'get' | 'has'>, root: CID, options: { signal?: AbortSignal, concurrency?: number } = {}): Promise<CID[]> {
  const bad: CID[] = []
  const seen = new Set<string>()
  await walkParallel([root], options.concurrency ?? 4, async (cid) => {
    const k = cid.toString()
    if (seen.has(k)) return []
    seen.add(k)
    if (!(await blockstore.has(cid, { signal: options.signal }))) return []
    const bytes = await readBlock(blockstore, cid, { signal: options.signal, offline: true })
    if (!blockMatches(cid, bytes)) {
      bad.push(cid)
      return []
    }
    return childLinks(cid, bytes).map((l) => l.cid)
  }, options.signal)
  return bad
}

/**
 * A graph walker for Helia's pins over a local DAG (Helia's default walker
 * reads every block, which made pinning a 200 MB model cost a full read of
 * it). A missing block fails the pin. Pins use only `node.block.cid` of what
 * a walker yields. `skipMissing` (for unpinning a DAG that a crash or a
 * repair left incomplete) passes over missing subtrees instead of failing.
 */
export function localDagWalker (options: { skipMissing?: boolean } = {}): GraphWalkerFactory {
  return (components) => ({
    async * walk<T> (root: CID, walkOptions: { signal?: AbortSignal } = {}): AsyncGenerator<GraphNode<T>> {
      for await (const b of walkLocalDag(components.blockstore, root, walkOptions.signal)) {
        if (!b.present && options.skipMissing === true) continue
        if (!b.present) throw new StoreError(`block ${b.cid.toString()} is not in the local blockstore: pull the model first`)
        yield { block: { cid: b.cid } as unknown as GraphNode<T>['block'], depth: b.depth, path: [] }
      }
    }
  })
}
