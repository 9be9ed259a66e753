/** Recursive pins of model roots, walked over the local DAG only (dag.ts's walker). */
import type { CID } from 'multiformats/cid'
import { localDagWalker } from '../blocks/dag.ts'
import type { ModelStoreComponents } from './types.ts'

type Pins = ModelStoreComponents['pins']

/** Pin `root` and every block under it (all must be here); pinning a pinned root is not an error. */
export async function pinRoot (pins: Pins, root: CID, signal?: AbortSignal): Promise<void> {
  try {
    for await (const _ of pins.add(root, { signal, walker: localDagWalker() })) { /* walks the local DAG, pinning each block */ }
  } catch (err) {
    if ((err as Error).name !== 'AlreadyPinnedError') throw err
  }
}

/** Remove the recursive pin of `root` (blocks missing under it are passed over); false when there was none. */
export async function unpinRoot (pins: Pins, root: CID, signal?: AbortSignal): Promise<boolean> {
  try {
    for await (const _ of pins.rm(root, { signal, walker: localDagWalker({ skipMissing: true }) })) { /* walks the DAG, unpinning each block */ }
    return true
  } catch (err) {
    if ((err as Error).name === 'NotFoundError') return false
    throw err
  }
}
