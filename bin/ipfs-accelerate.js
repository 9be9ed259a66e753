#!/usr/bin/env node
// Entry point of the `ipfs-accelerate` command. The sources are TypeScript
// run directly by Node.js (>= 22.19 strips types natively); npm scripts and
// npx put the Node.js of the `node` dependency first on PATH.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`ipfs-accelerate needs Node.js >= 22.19 (this is ${process.version}): run it through npm (npm start, npx ipfs-accelerate), which uses the Node.js installed by npm install\n`)
  process.exit(1)
}
// Test-only: shift this process's wall clock (Date.now, new Date()), as on a
// host whose clock is off, so tests can show that no wall-clock time crosses
// hosts. Integer milliseconds, at most a day either way.
const offset = process.env.IPFS_ACCELERATE_TEST_CLOCK_OFFSET_MS
if (offset !== undefined && offset !== '') {
  const ms = Number(offset)
  if (!Number.isInteger(ms) || Math.abs(ms) > 86_400_000) {
    process.stderr.write(`IPFS_ACCELERATE_TEST_CLOCK_OFFSET_MS=${offset}: expected whole milliseconds within a day\n`)
    process.exit(2)
  }
  const RealDate = Date
  const now = () => RealDate.now() + ms
  globalThis.Date = class extends RealDate {
    constructor (...args) { if (args.length === 0) super(now()); else super(...args) }
    static now () { return now() }
  }
}
await useCompileCache()
const { main } = await import('../src/cli/main.ts')
const code = await main(process.argv.slice(2))
await exitWhenFlushed(code)

/**
 * Keep V8's compiled code of this program's ~1,500 modules on disk, so each
 * later run (a node's start, every `submit`, its inference threads and
 * probes) skips most of the ~1 s it spends compiling them. The cache is the
 * user's own (`$XDG_CACHE_HOME` or ~/.cache, mode 0700), never a folder
 * other users of the host could write. NODE_COMPILE_CACHE names another
 * folder; NODE_DISABLE_COMPILE_CACHE=1 turns it off.
 */
async function useCompileCache () {
  if (process.env.NODE_DISABLE_COMPILE_CACHE !== undefined) return
  const { mkdir } = await import('node:fs/promises')
  const { homedir } = await import('node:os')
  const { join } = await import('node:path')
  const { enableCompileCache, constants } = await import('node:module')
  const dir = process.env.NODE_COMPILE_CACHE ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ipfs-accelerate', 'compile-cache')
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 })
  } catch (err) {
    process.stderr.write(`warning: no compile cache (${err.message}): every start compiles the code again; set NODE_COMPILE_CACHE to a writable folder, or NODE_DISABLE_COMPILE_CACHE=1 to silence this\n`)
    return
  }
  const r = enableCompileCache(dir)
  if (r.status === constants.compileCacheStatus.FAILED) {
    process.stderr.write(`warning: no compile cache in ${dir} (${r.message}): set NODE_COMPILE_CACHE to a writable folder, or NODE_DISABLE_COMPILE_CACHE=1 to silence this\n`)
    return
  }
  // Worker threads and child processes read it from the environment at their start.
  process.env.NODE_COMPILE_CACHE = dir
}

/**
 * Exit once the command is done and its output is written. Everything the
 * command started is stopped by then; what can remain are other libraries'
 * idle timers (libp2p's address manager debounces for 1 s after its
 * transports close), which would hold the process up for nothing.
 */
async function exitWhenFlushed (code) {
  const { once } = await import('node:events')
  for (const s of [process.stdout, process.stderr]) {
    if (s.writableNeedDrain) await once(s, 'drain')
  }
  if (process.env.IPFS_ACCELERATE_LOG_LEVEL === 'debug') {
    process.stderr.write(`debug: exiting with ${code}; still open: ${JSON.stringify(process.getActiveResourcesInfo())}\n`)
  }
  process.exit(code)
}
