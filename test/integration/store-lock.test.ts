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
import { readFile, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { acquireDirLock, lockFile } from '../../src/store/dir-lock.ts'
import { storePaths } from '../../src/store/helia.ts'
import { CLI, runProc, startStorePeer, stopProc } from '../helpers/procs.ts'
import { startStore, tempDir } from '../helpers/store-fixtures.ts'

const locked = (re: RegExp) => (err: Error & { code?: string }): boolean => err.code === 'ERR_STORE_LOCKED' && re.test(err.message)

test('a second process gets ERR_STORE_LOCKED naming the owner; the CLI\'s gc waits for the owner to let go', async () => {
  const dataDir = join(await tempDir('ia-lock-'), 'data')
  const peer = await startStorePeer(dataDir)
  try {
    const owner = JSON.parse(await readFile(lockFile(storePaths(dataDir).root), 'utf8')) as { pid: number }
    assert.equal(owner.pid, peer.proc.pid)
    const t = Date.now()
    await assert.rejects(startStore(dataDir, { lock: { waitMs: 300 } }), locked(new RegExp(`in use by pid ${peer.proc.pid} .*wait for it to finish`)))
    assert.ok(Date.now() - t >= 300, 'it waited its bound first')

    const gc = runProc([CLI, 'models', 'gc', '--json', '--data-dir', dataDir], { timeoutMs: 60_000 })
    await new Promise((resolve) => setTimeout(resolve, 1500))
    assert.equal(await stopProc(peer.proc, 15_000), 0)
    const done = await gc
    assert.equal(done.code, 0, done.stderr)
    assert.deepEqual(JSON.parse(done.stdout), { deletedBlocks: 0 })
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
