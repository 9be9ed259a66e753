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
const { main } = await import('../src/cli/main.ts')
process.exitCode = await main(process.argv.slice(2))
