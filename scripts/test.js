// The test command (npm test; see docs/testing.md). Run through npm so that
// the Node.js of the `node` dependency is used.
//
//   npm test                          type-check beside the unit tests, then integration tests
//   npm run test:unit                 unit tests only (test:integration likewise)
//   npm test -- FILE...               those files only, no type-check
//   npm test -- --name REGEX [FILE...] tests whose name matches (all files, or those)
//
// Each phase runs in its own process group. When it ends, anything still in
// that group (a worker a test started and never stopped) is listed, killed,
// and fails the run: a leak must not hang CI or outlive the suite.
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const USAGE = `usage: node scripts/test.js [unit|integration] [--name REGEX] [FILE...]
  unit, integration  run only that part (default: type-check, then both)
  --name REGEX       only tests whose name matches (node's --test-name-pattern)
  FILE...            only these test files (no type-check)
`

function files (dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name)
    if (e.isDirectory()) return e.name === 'fixtures' ? [] : files(p)
    return e.name.endsWith('.test.ts') ? [p] : []
  }).sort()
}

function parseArgs (argv) {
  const out = { part: undefined, names: [], files: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--help' || a === '-h') { process.stdout.write(USAGE); process.exit(0) }
    if (a === '--name') {
      const v = argv[++i]
      if (v === undefined) { process.stderr.write(`--name needs a pattern\n${USAGE}`); process.exit(2) }
      out.names.push(v)
    } else if (a === 'unit' || a === 'integration') {
      out.part = a
    } else if (a.startsWith('-')) {
      process.stderr.write(`unknown option ${a}\n${USAGE}`)
      process.exit(2)
    } else {
      out.files.push(a)
    }
  }
  return out
}

/** Pids whose process group is `pgid`, with their command lines (Linux /proc). */
function groupMembers (pgid) {
  const found = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let stat
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8')
    } catch (err) {
      if (err.code === 'ENOENT' || err.code === 'ESRCH') continue // it exited while we looked
      throw err
    }
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so read after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[2]) !== pgid) continue
    let cmd = ''
    try {
      cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ').trim()
    } catch (err) {
      if (err.code !== 'ENOENT' && err.code !== 'ESRCH') throw err
    }
    found.push(`${name} ${cmd.slice(0, 200)}`)
  }
  return found
}

const running = new Set()
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const pgid of running) process.kill(-pgid, sig)
    process.exitCode = 130
  })
}

/** Run one phase in its own process group; resolves with its exit status (1 for leaked processes). */
async function phase (label, args) {
  const t0 = performance.now()
  const child = spawn(process.execPath, args, { stdio: 'inherit', detached: true })
  running.add(child.pid)
  const status = await new Promise((resolve) => { child.once('exit', (code, signal) => { resolve(code ?? (signal === null ? 1 : 128)) }) })
  running.delete(child.pid)
  const left = groupMembers(child.pid)
  if (left.length > 0) {
    process.stderr.write(`\n${label}: ${left.length} process(es) outlived their tests, killed now:\n  ${left.join('\n  ')}\n`)
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch (err) {
      if (err.code !== 'ESRCH') throw err // all gone already
    }
  }
  process.stderr.write(`${label}: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
  return status !== 0 ? status : left.length > 0 ? 1 : 0
}

const opts = parseArgs(process.argv.slice(2))
const names = opts.names.map((n) => `--test-name-pattern=${n}`)
// Unit tests and integration tests (several processes each) both run two files at a time on a 2-core host.
const runner = (timeoutMs) => ['--test', '--test-force-exit', '--test-concurrency=2', `--test-timeout=${timeoutMs}`, ...names]
const UNIT_TIMEOUT_MS = 120_000
const INTEGRATION_TIMEOUT_MS = 300_000

let unit = []
let integration = []
if (opts.files.length > 0) {
  unit = opts.files.filter((f) => !f.includes('integration'))
  integration = opts.files.filter((f) => f.includes('integration'))
} else {
  if (opts.part !== 'integration') unit = files('test/unit')
  if (opts.part !== 'unit') integration = files('test/integration')
}

// The type-check (one core, ~8 s) runs beside the unit tests, which leave a core idle part of the time.
const typecheck = opts.files.length === 0 && opts.part === undefined && opts.names.length === 0
const first = await Promise.all([
  typecheck ? phase('type-check', ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json']) : 0,
  unit.length > 0 ? phase('unit', [...runner(UNIT_TIMEOUT_MS), ...unit]) : 0
])
let status = first.find((s) => s !== 0) ?? 0
if (status === 0 && integration.length > 0) status = await phase('integration', [...runner(INTEGRATION_TIMEOUT_MS), ...integration])
process.exitCode = process.exitCode ?? status
