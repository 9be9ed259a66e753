/**
 * One writer per store across processes (src/store/dir-lock.ts): a second
 * process waits for the lock (bounded) and then gets ERR_STORE_LOCKED
 * naming the owner; `models gc` from the CLI waits for a store peer to let
 * go; a lock left by a killed process is taken over; a lock from another
 * host, or one this build did not write, is never taken.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { acquireDirLock, lockFile } from '../../src/store/dir-lock.ts'
import { storePaths } from '../../src/store/helia.ts'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { RAW_CODE } from '../../src/store/blocks/cid.ts'
import { CLI, ROOT, startStorePeer, stopProc, track } from '../helpers/procs.ts'
import { blockFile, startStore, tempDir } from '../helpers/store-fixtures.ts'

/** A block no model pins (gc's to delete), put into the store of `dataDir`. */
async function putUnpinnedBlock (dataDir: string): Promise<CID> {
  const store = await startStore(dataDir, { lock: { waitMs: 0 } })
  try {
    const bytes = randomBytes(1000)
    const cid = CID.createV1(RAW_CODE, await sha256.digest(bytes))
    await store.helia.blockstore.put(cid, bytes)
    return cid
  } finally {
    await store.stop()
  }
}

const locked = (re: RegExp) => (err: Error & { code?: string }): boolean => err.code === 'ERR_STORE_LOCKED' && re.test(err.message)

test('a second process gets ERR_STORE_LOCKED naming the owner; the CLI\'s gc waits for the owner to let go, deleting nothing until then', async () => {
  const dataDir = join(await tempDir('ia-lock-'), 'data')
  const garbage = await putUnpinnedBlock(dataDir)
  const peer = await startStorePeer(dataDir)
  try {
    const owner = JSON.parse(await readFile(lockFile(storePaths(dataDir).root), 'utf8')) as { pid: number }
    assert.equal(owner.pid, peer.proc.pid)
    const t = Date.now()
    await assert.rejects(startStore(dataDir, { lock: { waitMs: 300 } }), locked(new RegExp(`in use by pid ${peer.proc.pid} .*wait for it to finish`)))
    assert.ok(Date.now() - t >= 300, 'it waited its bound first')

    // gc, started while the peer holds the lock, must wait: it says so, and the unpinned block stays until the peer lets go
    const gc = spawn(process.execPath, [CLI, 'models', 'gc', '--json', '--log-level', 'info', '--data-dir', dataDir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    const gcLog = track(gc, 'models gc')
    let gcOut = ''
    gc.stdout.on('data', (d: Buffer) => { gcOut += d.toString() })
    const gcExit = new Promise<number | null>((resolve) => gc.once('exit', resolve))
    const waiting = await new Promise<boolean>((resolve) => {
      const seen = (): void => { if (gcLog().includes('waiting for the store lock')) { gc.stderr.off('data', seen); resolve(true) } }
      gc.stderr.on('data', seen)
      void gcExit.then(() => { resolve(false) })
    })
    assert.ok(waiting, `gc ended while the store peer held the lock (stdout ${gcOut}):\n${gcLog()}`)
    assert.match(gcLog(), new RegExp(`waiting for the store lock .*owner="pid ${peer.proc.pid} `))
    assert.ok(existsSync(blockFile(storePaths(dataDir).blocks, garbage)), 'the unpinned block is still there while gc waits')
    assert.equal(await stopProc(peer.proc, 15_000), 0)
    assert.equal(await gcExit, 0, gcLog())
    assert.deepEqual(JSON.parse(gcOut), { deletedBlocks: 1 })
    assert.ok(!existsSync(blockFile(storePaths(dataDir).blocks, garbage)), 'gc deleted it once it had the lock')
  } finally {
    await stopProc(peer.proc, 15_000)
  }
  // the lock went with its last owner
  await assert.rejects(readFile(lockFile(storePaths(dataDir).root)), { code: 'ENOENT' })
})

test('a lock left by a killed process is stale: the next store takes it over', async () => {
  const dataDir = join(await tempDir('ia-lock-'), 'data')
  const peer = await startStorePeer(dataDir)
  peer.proc.kill('SIGKILL')
  await new Promise((resolve) => peer.proc.once('exit', resolve))
  const store = await startStore(dataDir, { lock: { waitMs: 0 } })
  try {
    const owner = JSON.parse(await readFile(lockFile(store.paths.root), 'utf8')) as { pid: number }
    assert.equal(owner.pid, process.pid)
    await assert.rejects(startStore(dataDir, { lock: { waitMs: 0 } }), locked(/another store object in this process/), 'a second store in this process is refused too')
  } finally {
    await store.stop()
  }
})

test('a lock from another host, or one this build did not write, is never taken over', async () => {
  const root = await tempDir('ia-lock-')
  const dead = spawn(process.execPath, ['-e', ''])
  await new Promise((resolve) => dead.once('exit', resolve))
  await writeFile(lockFile(root), JSON.stringify({ pid: dead.pid, host: `not-${hostname()}`, purpose: 'node', since: new Date().toISOString() }))
  await assert.rejects(acquireDirLock(root, { purpose: 'test', waitMs: 0 }), locked(/taken on another host: if no process there uses .* remove .*lock/))
  await writeFile(lockFile(root), 'garbage')
  await assert.rejects(acquireDirLock(root, { purpose: 'test', waitMs: 0 }), locked(/is not a lock this build wrote: .* remove it/))
  // the same lock from this host, its pid gone: taken over
  await writeFile(lockFile(root), JSON.stringify({ pid: dead.pid, host: hostname(), purpose: 'node', since: new Date().toISOString() }))
  const lock = await acquireDirLock(root, { purpose: 'test', waitMs: 0 })
  await lock.release()
  // a live pid, but the lock was taken before this host last booted: that pid is someone else now
  await writeFile(lockFile(root), JSON.stringify({ pid: process.ppid, host: hostname(), purpose: 'node', since: new Date().toISOString(), boot: 'an-earlier-boot' }))
  const after = await acquireDirLock(root, { purpose: 'test', waitMs: 0 })
  await after.release()
  await writeFile(lockFile(root), JSON.stringify({ pid: process.ppid, host: hostname(), purpose: 'node', since: new Date().toISOString() }))
  await assert.rejects(acquireDirLock(root, { purpose: 'test', waitMs: 0 }), locked(new RegExp(`in use by pid ${process.ppid} `)), 'a live owner of this boot keeps it')
})
