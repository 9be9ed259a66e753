/**
 * How a fetch is split across peers: the missing subtrees are expanded a
 * few levels (fetching only their small dag-pb nodes) until there is
 * enough work for every stream, then handed out as batches: one subtree,
 * or up to N leaves, per request. A batch that fails goes back to the
 * queue with the failing peer excluded.
 */
import type { CID } from 'multiformats/cid'
import { DAG_PB_CODE } from '../blocks/cid.ts'

export interface PlanSteps {
  /** Fetch these dag-pb nodes alone into the blockstore; false if no peer could. */
  fetchNodes: (cids: CID[]) => Promise<boolean>
  /** Children of a now-local node that are still missing (subtree roots). */
  missingChildren: (cid: CID) => Promise<CID[]>
}

/** Expand up to `maxRounds` levels while there are fewer than 4 items per worker. */
export async function planWork (missing: CID[], workers: number, steps: PlanSteps, maxRounds = 4): Promise<CID[]> {
  let items = missing
  for (let round = 0; round < maxRounds && items.length < workers * 4; round++) {
    const nodes = items.filter((c) => c.code === DAG_PB_CODE)
    if (nodes.length === 0) break
    if (!(await steps.fetchNodes(nodes))) break
    const next = items.filter((c) => c.code !== DAG_PB_CODE)
    for (const n of nodes) next.push(...await steps.missingChildren(n))
    items = next
  }
  return items
}

interface Item { cid: CID, excluded: Set<string> }

export interface Batch { cids: CID[], excluded: Set<string> }

export class WorkQueue {
  private pending: Item[]
  private inflight = 0
  private readonly leavesPerRequest: number
  private wake: Array<() => void> = []

  constructor (cids: CID[], leavesPerRequest: number) {
    this.pending = cids.map((cid) => ({ cid, excluded: new Set<string>() }))
    this.leavesPerRequest = Math.max(1, leavesPerRequest)
  }

  /** The next batch this peer may take; undefined when no work can come its way any more. */
  async take (peer: string, signal: AbortSignal): Promise<Batch | undefined> {
    for (;;) {
      signal.throwIfAborted()
      const batch = this.pick(peer)
      if (batch !== undefined) {
        this.inflight++
        return batch
      }
      if (this.inflight === 0) {
        this.notify()
        return undefined
      }
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => { reject(signal.reason) }
        signal.addEventListener('abort', onAbort, { once: true })
        this.wake.push(() => {
          signal.removeEventListener('abort', onAbort)
          resolve()
        })
      })
    }
  }

  private pick (peer: string): Batch | undefined {
    const cids: CID[] = []
    const excluded = new Set<string>()
    const rest: Item[] = []
    for (const item of this.pending) {
      const fits = !item.excluded.has(peer) && (
        cids.length === 0 || (item.cid.code !== DAG_PB_CODE && (cids[0] as CID).code !== DAG_PB_CODE && cids.length < this.leavesPerRequest))
      if (fits) {
        cids.push(item.cid)
        for (const e of item.excluded) excluded.add(e)
      } else {
        rest.push(item)
      }
    }
    if (cids.length === 0) return undefined
    this.pending = rest
    return { cids, excluded }
  }

  /** A batch ended; `left` (if any) is requeued without `peer`. */
  done (batch: Batch, left: CID[], peer: string): void {
    this.inflight--
    if (left.length > 0) {
      const excluded = new Set([...batch.excluded, peer])
      for (const cid of left) this.pending.push({ cid, excluded: new Set(excluded) })
    }
    this.notify()
  }

  private notify (): void {
    const w = this.wake
    this.wake = []
    for (const f of w) f()
  }

  /** Work nobody could do. */
  leftover (): CID[] {
    return this.pending.map((i) => i.cid)
  }
}
