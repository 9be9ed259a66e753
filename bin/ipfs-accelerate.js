#!/usr/bin/env node
// Entry point of the `ipfs-accelerate` command. The sources are TypeScript
// run directly by Node.js (>= 22.19 strips types natively); npm scripts and
// npx put the Node.js of the `node` dependency first on PATH.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`ipfs-accelerate needs Node.js >= 22.19 (this is ${process.version}): run it through npm (npm start, npx ipfs-accelerate), which uses the Node.js installed by npm install\n`)
  process.exit(1)
}
const { main } = await import('../src/cli/main.ts')
process.exitCode = await main(process.argv.slice(2))
