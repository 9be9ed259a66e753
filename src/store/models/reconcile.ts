/**
 * Pins against records, at start-up and when an import or pull fails.
 * An import or pull writes a pending entry (records.ts) before it pins its
 * root and removes it once the record is saved, so after a crash:
 *   - a pending root whose DAG is whole here (and every block matches its
 *     CID) is completed: pinned, its files hashed, recorded;
 *   - one that is not is unpinned and marked interrupted: `models list`
 *     shows it, `gc` frees its blocks and drops the entry;
 *   - a pinned root that no record and no pending entry names (a pin of an
 *     older build, or of an import that crashed before writing its entry)
 *     is unpinned.
 * gc itself trusts records, not Helia's per-block pin counts, so the block
 * pins a crash leaves half-written cannot keep blocks alive.
 */
import type { CID } from 'multiformats/cid'
import { errorMessage } from '../../errors.ts'
import type { Logger } from '../../logger.ts'
import { parseCid } from '../blocks/cid.ts'
import { missingBlocks } from '../blocks/dag.ts'
import { pinRoot, unpinRoot } from './pins.ts'
import type { ModelRecord, PendingEntry, RecordStore } from './records.ts'
import { dropCorruptBlocks } from './repair.ts'
import type { ModelStoreComponents } from './types.ts'

export interface ReconcileContext {
  components: ModelStoreComponents
  records: RecordStore
  log: Logger
  recordFromDag: (root: CID, base: Pick<ModelRecord, 'id' | 'skillset'>, signal?: AbortSignal) => Promise<ModelRecord>
  saveRecord: (record: ModelRecord) => Promise<void>
}

export interface ReconcileResult { completed: string[], interrupted: string[], unpinnedOrphans: string[] }

function article (op: PendingEntry['op']): string {
  return op === 'import' ? 'an import' : 'a pull'
}

/** Whether a saved, pinned record holds `cid`. */
async function recorded (records: RecordStore, cid: string): Promise<boolean> {
  return (await records.byCid(cid)).some((r) => r.pinned)
}

/** Undo a failed import or pull of `root`: free its pin unless a record holds it, and drop its pending entry. */
export async function abandon (ctx: Pick<ReconcileContext, 'components' | 'records' | 'log'>, root: CID, why: unknown): Promise<void> {
  const cid = root.toString()
  if (!(await recorded(ctx.records, cid))) await unpinRoot(ctx.components.pins, root)
  await ctx.records.end(cid)
  ctx.log.warn('an import or pull failed: its pin is freed and gc frees its blocks', { cid, error: errorMessage(why) })
}

async function settle (ctx: ReconcileContext, p: PendingEntry, signal?: AbortSignal): Promise<'completed' | 'interrupted' | 'recorded'> {
  const root = parseCid(p.cid)
  if (await recorded(ctx.records, p.cid)) {
    await ctx.records.end(p.cid)
    return 'recorded'
  }
  const bs = ctx.components.blockstore
  await dropCorruptBlocks(bs, root, ctx.log, signal)
  if ((await missingBlocks(bs, root, { signal })).length === 0) {
    await pinRoot(ctx.components.pins, root, signal)
    const record = await ctx.recordFromDag(root, { id: p.id ?? p.cid, ...(p.skillset === undefined ? {} : { skillset: p.skillset }) }, signal)
    await ctx.saveRecord({ ...record, source: p.op })
    await ctx.records.end(p.cid)
    return 'completed'
  }
  await unpinRoot(ctx.components.pins, root, signal)
  await ctx.records.markInterrupted(p.cid)
  return 'interrupted'
}

/** Settle what earlier processes left pending, and free pins nothing records. `ours` are this process's runs. */
export async function reconcile (ctx: ReconcileContext, ours: ReadonlySet<string>, signal?: AbortSignal): Promise<ReconcileResult> {
  const out: ReconcileResult = { completed: [], interrupted: [], unpinnedOrphans: [] }
  for (const p of await ctx.records.pending()) {
    if (p.interrupted || ours.has(p.cid)) continue
    const how = await settle(ctx, p, signal)
    if (how === 'completed') {
      out.completed.push(p.cid)
      ctx.log.warn(`completed ${article(p.op)} that a crash interrupted (its DAG was whole here)`, { cid: p.cid, id: p.id ?? p.cid, pid: p.pid, startedAt: p.startedAt })
    } else if (how === 'interrupted') {
      out.interrupted.push(p.cid)
      ctx.log.warn(`${article(p.op)} was interrupted before its DAG was whole: its pin is freed; \`models pull\` it again, or \`models gc\` frees its blocks`, { cid: p.cid, id: p.id ?? p.cid, pid: p.pid })
    }
  }
  const pending = new Set((await ctx.records.pending()).filter((p) => !p.interrupted).map((p) => p.cid))
  const orphans: CID[] = []
  for await (const pin of ctx.components.pins.ls({ signal })) {
    const cid = pin.cid.toString()
    if (!pending.has(cid) && !(await recorded(ctx.records, cid))) orphans.push(pin.cid)
  }
  for (const root of orphans) {
    await unpinRoot(ctx.components.pins, root, signal)
    out.unpinnedOrphans.push(root.toString())
    ctx.log.warn('unpinned a root that no model record names (left by a crash or an older build); gc frees its blocks', { cid: root.toString() })
  }
  return out
}
