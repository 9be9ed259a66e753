/**
 * Where an idle node's CPU goes: N real nodes (stand-in skillset) in this
 * process, meshed through the first, then S seconds measured without and S seconds with a CPU profile, with no
 * jobs; prints the functions with the most self time and writes the
 * .cpuprofile (open it in Chrome DevTools).
 *
 *   node bench/idle-profile.ts [--nodes 16] [--seconds 20] [--out FILE]
 */
import { readdirSync, readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { configSchema } from '../src/config/schema.ts'
import { WorkerNode } from '../src/node/worker-node.ts'
import { tempDir } from '../test/helpers/procs.ts'

const { values: opts } = parseArgs({ options: { nodes: { type: 'string', default: '16' }, seconds: { type: 'string', default: '20' }, out: { type: 'string' }, 'no-profile': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } })
if (opts.help === true) { process.stdout.write('Usage: node bench/idle-profile.ts [--nodes N] [--seconds S] [--out FILE]\n'); process.exit(0) }
const n = Number(opts.nodes)
const seconds = Number(opts.seconds)
const dir = await tempDir('ia-idle-prof-')
const nodes: WorkerNode[] = []
let seed: string | undefined
for (let i = 0; i < n; i++) {
  const node = new WorkerNode(configSchema.parse({ dataDir: join(dir, `n${i}`), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: seed === undefined ? [] : [seed], mdns: false, http: false, models: ['demo/stand-in'], logLevel: 'warn' }))
  const info = await node.start()
  seed ??= info.multiaddrs[0]
  nodes.push(node)
}
process.stderr.write(`${n} nodes up; settling 10 s, then profiling ${seconds} s\n`)
await new Promise((resolve) => setTimeout(resolve, 10_000))
const session = new Session()
session.connect()
await session.post('Profiler.enable')
await session.post('Profiler.setSamplingInterval', { interval: 200 })
/** CPU ms per thread of this process (by thread name), from /proc. */
function threads (): Map<string, number> {
  const out = new Map<string, number>()
  for (const t of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${t}/stat`, 'utf8')
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) * 10)
  }
  return out
}
// What went out while idle: adverts by reason, summed over the nodes (the counters are the adverts' own).
const sent = (): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const x of nodes) for (const [k, v] of Object.entries((x as unknown as { adverts: { sent: Record<string, number> } }).adverts.sent)) out[k] = (out[k] ?? 0) + v
  return out
}
const sent0 = sent()
// First a window without the profiler (its sampling costs CPU too), then one with it.
const threads0 = threads()
const cpu0 = process.cpuUsage()
await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
const cpu = process.cpuUsage(cpu0)
const threads1 = threads()
const sent1 = sent()
process.stdout.write(`adverts sent by ${n} nodes in the ${seconds} s window: ${JSON.stringify(Object.fromEntries(Object.entries(sent1).map(([k, v]) => [k, v - (sent0[k] ?? 0)])))}\n`)
if (opts['no-profile'] === true) {
  process.stdout.write(`${n} idle nodes in one process: ${((cpu.user + cpu.system) / 1000 / seconds / n).toFixed(2)} ms of CPU a second per node\n`)
  await Promise.all(nodes.map(async (x) => { await x.stop(1000) }))
  process.exit(0)
}
await session.post('Profiler.start')
await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
const { profile } = await session.post('Profiler.stop')
const cpuMs = (cpu.user + cpu.system) / 1000
process.stdout.write(`${n} idle nodes in one process: ${(cpuMs / seconds / n).toFixed(2)} ms of CPU a second per node (user ${(cpu.user / 1000 / seconds / n).toFixed(2)}, system ${(cpu.system / 1000 / seconds / n).toFixed(2)}); by thread: ${[...threads1].map(([k, v]) => `${k} ${((v - (threads0.get(k) ?? 0)) / seconds / n).toFixed(2)}`).join(', ')}\n`)
// Self time by function (and file), top 40.
const byId = new Map(profile.nodes.map((x) => [x.id, x]))
const self = new Map<number, number>()
for (const s of profile.samples ?? []) self.set(s, (self.get(s) ?? 0) + 1)
const total = profile.samples?.length ?? 1
const agg = new Map<string, number>()
for (const [id, count] of self) {
  const f = byId.get(id)!.callFrame
  const key = `${f.functionName || '(anon)'} ${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/work\/[^/]+\//, '')}:${f.lineNumber + 1}`
  agg.set(key, (agg.get(key) ?? 0) + count)
}
for (const [k, c] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 40)) process.stdout.write(`${(100 * c / total).toFixed(1).padStart(5)}%  ${k}\n`)
// Inclusive time by package.
const parent = new Map<number, number>()
for (const x of profile.nodes) for (const c of x.children ?? []) parent.set(c, x.id)
const pkg = new Map<string, number>()
for (const [id, count] of self) {
  const seen = new Set<string>()
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const url = byId.get(cur)!.callFrame.url
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url) ?? /\/work\/[^/]+\/(src\/[^/]+\/[^/]+|[^/]+)/.exec(url)
    if (m !== null) seen.add(m[1]!)
  }
  for (const p of seen) pkg.set(p, (pkg.get(p) ?? 0) + count)
}
process.stdout.write('\ninclusive, by package or source file:\n')
for (const [k, c] of [...pkg].sort((a, b) => b[1] - a[1]).slice(0, 25)) process.stdout.write(`${(100 * c / total).toFixed(1).padStart(5)}%  ${k}\n`)
if (opts.out !== undefined) await writeFile(opts.out, JSON.stringify(profile))
await Promise.all(nodes.map(async (x) => { await x.stop(1000) }))
process.exit(0)
