/**
 * Blocks that fail their CID check (disk corruption) are deleted, so that a
 * pull fetches them again: Helia's `put` skips a block it already has, so a
 * bad block left in place would never be replaced. `checkModel` is what
 * `models verify` runs: every block of every file checked (bad ones deleted
 * and named with their files), then every file hashed against its record.
 */
import type { UnixFS } from '@helia/unixfs'
import type { CID } from 'multiformats/cid'
import { errorMessage, ModelIntegrityError } from '../../errors.ts'
import type { Logger } from '../../logger.ts'
import { parseCid } from '../blocks/cid.ts'
import { corruptBlocks, missingBlocks } from '../blocks/dag.ts'
import { hashDagFile, integrityError } from './files.ts'
import type { ModelRecord } from './records.ts'
import type { ModelStoreComponents, StoreProgress } from './types.ts'

type Blockstore = ModelStoreComponents['blockstore']

/** Delete every block under `root` that is here but does not match its CID; returns them. */
export async function dropCorruptBlocks (blockstore: Blockstore, root: CID, log: Logger, signal?: AbortSignal): Promise<CID[]> {
  const bad = await corruptBlocks(blockstore, root, { signal })
  for (const cid of bad) {
    try {
      await blockstore.delete(cid, { signal })
    } catch (err) {
      log.error('could not delete a corrupt block', { cid: cid.toString(), root: root.toString(), error: errorMessage(err) })
      throw err
    }
    log.error('deleted a stored block that does not match its CID (disk corruption?); a pull fetches it again', { cid: cid.toString(), root: root.toString() })
  }
  return bad
}

/**
 * Check a model's blocks and files. Corrupt blocks are deleted; throws
 * ModelIntegrityError naming each corrupt or missing block with the files
 * it belongs to, and each file whose sha256 differs from the record.
 */
export async function checkModel (c: ModelStoreComponents, fs: UnixFS, r: ModelRecord, log: Logger, options: { signal?: AbortSignal, onProgress?: (p: StoreProgress) => void } = {}): Promise<void> {
  const root = parseCid(r.cid)
  const bad = await dropCorruptBlocks(c.blockstore, root, log, options.signal)
  const problems: string[] = []
  const damaged: string[] = []
  for (const f of r.files) {
    const gone = await missingBlocks(c.blockstore, parseCid(f.cid), options)
    if (gone.length > 0) damaged.push(`${f.path} (${gone.length} block(s): ${gone.slice(0, 3).map((g) => g.toString()).join(', ')}${gone.length > 3 ? ', …' : ''})`)
  }
  const rootGone = await missingBlocks(c.blockstore, root, options)
  if (bad.length > 0) problems.push(`model ${r.id}: ${bad.length} stored block(s) did not match their CID and were deleted: ${bad.slice(0, 5).map((b) => b.toString()).join(', ')}${bad.length > 5 ? ', …' : ''}`)
  if (damaged.length > 0) problems.push(`files with blocks missing or deleted: ${damaged.join('; ')}`)
  else if (rootGone.length > 0) problems.push(`${rootGone.length} folder block(s) of the model are missing`)
  if (problems.length > 0) throw new ModelIntegrityError(`${problems.join('; ')}: run \`models pull ${r.id}\` to fetch them again from a peer (or re-import the model)`)
  let bytes = 0
  for (const f of r.files) {
    const got = await hashDagFile(fs, parseCid(f.cid), options)
    bytes += got.size
    options.onProgress?.({ phase: 'verify', bytes, totalBytes: r.size })
    if (got.sha256 !== f.sha256 || got.size !== f.size) problems.push(integrityError(r.id, f, got).message)
  }
  if (problems.length > 0) throw new ModelIntegrityError(problems.join('; '))
}
