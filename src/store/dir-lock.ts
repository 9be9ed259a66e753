/**
 * One writer per store across processes: `<data-dir>/store/lock`, created
 * exclusively (O_EXCL) and holding the owner's pid, host and purpose. The
 * running node holds it for its lifetime; the CLI holds it while it has the
 * store open (it uses the node's API when a node runs). A second writer
 * waits (bounded) and then gets StoreLockedError naming the owner.
 *
 * A lock whose pid is gone on this host, or that was taken before this
 * host last booted (Linux boot id: a pid may have been reused), is stale: it is renamed aside
 * (atomic: of two processes that both saw it stale, only one moves it),
 * checked once more, and removed. A lock from another host (a shared
 * folder) is never taken over: the error says to remove it by hand.
 * Within one process, a second store on the same folder is refused the
 * same way.
 */
import { hostname } from 'node:os'
import { join } from 'node:path'
import { link, open, readFile, rename, unlink } from 'node:fs/promises'
import { z } from 'zod'
import { errorMessage, StoreLockedError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import { fsyncDir } from './blocks/fs-blockstore.ts'

const lockSchema = z.strictObject({
  pid: z.number().int().positive(),
  host: z.string().max(256),
  purpose: z.string().max(200),
  since: z.string().max(40),
  /** The host's boot id when the lock was taken (Linux; null elsewhere). */
  boot: z.string().max(64).nullable().optional()
})
export type LockOwner = z.infer<typeof lockSchema>

export interface DirLock {
  readonly file: string
  release(): Promise<void>
}

export interface AcquireOptions {
  /** What the lock is for, shown to whoever waits (e.g. "node", "models gc"). */
  purpose: string
  /** How long to wait for another writer to finish (default 10 s; 0: fail at once). */
  waitMs?: number
  signal?: AbortSignal
  log?: Logger
  /** How the owner is checked (tests). */
  alive?: (pid: number) => boolean
}

const heldHere = new Set<string>()
let bootId: string | null | undefined

/** This boot's id (Linux), or null where the system has none: then only the pid says whether an owner is gone. */
async function currentBoot (log?: Logger): Promise<string | null> {
  if (bootId !== undefined) return bootId
  try {
    bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim().slice(0, 64)
  } catch (err) {
    log?.debug('no boot id on this system: a stale store lock is told by its pid alone', { error: errorMessage(err) })
    bootId = null
  }
  return bootId
}

export function lockFile (storeRoot: string): string {
  return join(storeRoot, 'lock')
}

function pidAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function readOwner (file: string): Promise<LockOwner | 'gone' | 'unreadable'> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone'
    throw err
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    raw = { notJson: errorMessage(err) } // refused by the schema below: the caller says what to do
  }
  const parsed = lockSchema.safeParse(raw)
  return parsed.success ? parsed.data : 'unreadable'
}

function describe (o: LockOwner): string {
  return `pid ${o.pid} on ${o.host} (${o.purpose}, since ${o.since})`
}

/** Take the lock of `storeRoot`, waiting at most `waitMs` for its owner to let go. */
export async function acquireDirLock (storeRoot: string, options: AcquireOptions): Promise<DirLock> {
  const file = lockFile(storeRoot)
  const alive = options.alive ?? pidAlive
  const deadline = Date.now() + (options.waitMs ?? 10_000)
  const me: LockOwner = { pid: process.pid, host: hostname(), purpose: options.purpose.slice(0, 200), since: new Date().toISOString(), boot: await currentBoot(options.log) }
  let delay = 25
  let logged = false
  for (;;) {
    options.signal?.throwIfAborted()
    if (!heldHere.has(file)) {
      try {
        const h = await open(file, 'wx', 0o644)
        try {
          await h.writeFile(JSON.stringify(me) + '\n')
          await h.sync()
        } finally {
          await h.close()
        }
        await fsyncDir(storeRoot)
        heldHere.add(file)
        return { file, release: async () => { await release(file) } }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
    }
    const owner = heldHere.has(file) ? { ...me, purpose: 'another store object in this process' } : await readOwner(file)
    if (owner === 'gone') continue
    if (owner === 'unreadable') {
      throw new StoreLockedError(`${file} is not a lock this build wrote: if no ipfs-accelerate process uses ${storeRoot}, remove it and try again`)
    }
    const rebooted = typeof owner.boot === 'string' && typeof me.boot === 'string' && owner.boot !== me.boot
    if (!heldHere.has(file) && owner.host === me.host && (rebooted || !alive(owner.pid))) {
      if (await takeStale(file, owner)) {
        options.log?.warn(`removed a stale store lock (${rebooted ? 'taken before the host last booted' : 'its process is gone'})`, { file, pid: owner.pid, purpose: owner.purpose })
        continue
      }
    }
    if (Date.now() >= deadline) {
      const foreign = owner.host !== me.host ? ` It was taken on another host: if no process there uses ${storeRoot}, remove ${file}.` : ''
      throw new StoreLockedError(`the store in ${storeRoot} is in use by ${describe(owner)}: wait for it to finish and run this again (a running node does the work itself: use the CLI against it, which goes through its API).${foreign}`)
    }
    if (!logged) {
      options.log?.info('waiting for the store lock', { file, owner: describe(owner) })
      logged = true
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(delay, Math.max(1, deadline - Date.now()))))
    delay = Math.min(delay * 2, 500)
  }
}

/** Move a stale lock aside and remove it, unless it turned out not to be the one seen stale. */
async function takeStale (file: string, seen: LockOwner): Promise<boolean> {
  const aside = `${file}.stale.${process.pid}`
  try {
    await rename(file, aside)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true // another process moved it first
    throw err
  }
  const moved = await readOwner(aside)
  if (moved !== 'gone' && moved !== 'unreadable' && (moved.pid !== seen.pid || moved.since !== seen.since)) {
    // a live owner's fresh lock was moved: put it back (link fails rather than replace a newer one)
    await link(aside, file).catch((err: unknown) => { if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err })
    await unlink(aside)
    return false
  }
  await unlink(aside)
  return true
}

async function release (file: string): Promise<void> {
  if (!heldHere.delete(file)) return
  const owner = await readOwner(file)
  if (owner === 'gone' || owner === 'unreadable' || owner.pid !== process.pid) return
  await unlink(file)
}
