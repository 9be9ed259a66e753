// The test command: type-check, then every test file with node's test runner.
// Run through npm (npm test) so that the Node.js of the `node` dependency is used.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

function files (dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name)
    if (e.isDirectory()) return e.name === 'fixtures' ? [] : files(p)
    return e.name.endsWith('.test.ts') ? [p] : []
  }).sort()
}

const only = process.argv.slice(2)
const step = (cmd, args) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
}
if (only.length === 0) step(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'])
const unit = only.length > 0 ? only : files('test/unit')
const integration = only.length > 0 ? [] : files('test/integration')
// Unit tests run two at a time; integration tests (several processes each) one at a time.
step(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=120000', ...unit])
if (integration.length > 0) step(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=300000', ...integration])
