/**
 * A longer, configurable fuzz run against a fresh worker process (the same
 * fuzzer as test/integration/fuzz.test.ts):
 *
 *   node bench/fuzz.ts [--count 1000] [--seed 1] [--surface gossip,links,blocks,http] [--json] [--log FILE]
 *
 * `--log` keeps the worker's log (stderr) in FILE.
 *
 * Prints one line per surface (or, with --json, the whole report), and
 * exits 1 when the worker stopped serving after any surface.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { runFuzz, SURFACES } from '../test/helpers/fuzz/run.ts'
import type { Surface } from '../test/helpers/fuzz/run.ts'
import { startWorker, stopProc } from '../test/helpers/procs.ts'

const { values } = parseArgs({ options: { count: { type: 'string', default: '1000' }, seed: { type: 'string', default: '1' }, surface: { type: 'string' }, json: { type: 'boolean', default: false }, log: { type: 'string' } } })
const count = Number(values.count)
const seed = Number(values.seed)
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(seed)) throw new Error('usage: bench/fuzz.ts [--count N] [--seed N] [--surface gossip,links,blocks,http] [--json]')
const surfaces = (values.surface?.split(',') ?? SURFACES) as Surface[]
for (const s of surfaces) if (!SURFACES.includes(s)) throw new Error(`unknown surface ${s}: one of ${SURFACES.join(', ')}`)

const sandbox = await mkdtemp(join(tmpdir(), 'ia-fuzz-'))
await mkdir(join(sandbox, 'data'))
const w = await startWorker({ models: 'demo/stand-in', config: { standIn: { msPerItem: 1 } }, dataDir: join(sandbox, 'data') })
let failed = false
try {
  const report = await runFuzz({ pid: w.proc.pid!, httpUrl: w.httpUrl, addr: w.multiaddrs[0]!, peerId: w.peerId, dataDir: w.dataDir, sandbox }, { count, seed, surfaces, ...(values.json ? {} : { log: (l) => { process.stdout.write(l + '\n') } }) })
  for (const s of surfaces) {
    const a = report[s]?.after
    if (a === undefined || !a.alive || !a.jobOk || a.blocks === 0 || a.apiStatus !== 200) failed = true
  }
  if (values.json) process.stdout.write(JSON.stringify(report) + '\n')
  else process.stdout.write(`rss: ${report.rssBeforeMB} MB before, ${surfaces.map((s) => `${report[s]?.after.rssMB ?? '?'} MB after ${s}`).join(', ')}\n`)
} finally {
  const code = await stopProc(w.proc)
  if (values.log !== undefined) await writeFile(values.log, w.stderr())
  if (code !== 0) { failed = true; process.stderr.write(`the worker exited with ${code}:\n${w.stderr().slice(-4000)}\n`) }
  await rm(sandbox, { recursive: true, force: true }).catch((err: unknown) => { process.stderr.write(`could not remove ${sandbox}: ${String(err)}\n`) })
}
process.exitCode = failed ? 1 : 0
