/**
 * Benchmark: what fsync costs an import. Imports the generated
 * demo/minilm-random model (86 MiB fp32 + 22 MiB q8; generated first when
 * missing) into a fresh offline store, with block fsync on and off, in
 * interleaved rounds (this machine's timings swing; compare medians).
 * records.json is fsynced either way (a few writes per import).
 *
 *   node bench/store-fsync.ts [--rounds 5] [--models-dir DIR]
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { setLogLevel } from '../src/logger.ts'
import { createContentStore } from '../src/store/content-store.ts'
import { median, printTable } from './lib.ts'

const { values: opts } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, 'models-dir': { type: 'string' } } })
const rounds = Number(opts.rounds)
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error('--rounds: 1..50')
setLogLevel('warn')
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const modelsDir = opts['models-dir'] ?? join(tmpdir(), 'ia-bench-models')
const modelDir = join(modelsDir, 'demo', 'minilm-random')
if (!existsSync(join(modelDir, 'onnx', 'model.onnx'))) {
  execFileSync(process.execPath, [join(ROOT, 'bin', 'ipfs-accelerate.js'), 'models', 'generate', '--id', 'demo/minilm-random', '--models-dir', modelsDir, '--json'], { stdio: ['ignore', 'ignore', 'inherit'] })
}

async function importOnce (fsync: boolean): Promise<{ ms: number, bytes: number }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ia-fsync-'))
  try {
    const store = await createContentStore({ dataDir, fsync })
    await store.start()
    try {
      const t = performance.now()
      const r = await store.models.importDir(modelDir, { id: 'demo/minilm-random' })
      return { ms: performance.now() - t, bytes: r.size }
    } finally {
      await store.stop()
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
}

const times: Record<'on' | 'off', number[]> = { on: [], off: [] }
let bytes = 0
await importOnce(false) // warm the page cache and the imports
for (let i = 0; i < rounds; i++) {
  for (const mode of (i % 2 === 0 ? ['off', 'on'] : ['on', 'off']) as Array<'on' | 'off'>) {
    const r = await importOnce(mode === 'on')
    times[mode].push(r.ms)
    bytes = r.bytes
  }
}
const mb = bytes / (1024 * 1024)
printTable((['off', 'on'] as const).map((m) => ({
  fsync: m,
  'median ms': median(times[m]).toFixed(0),
  'MiB/s': (mb / (median(times[m]) / 1000)).toFixed(0),
  runs: times[m].map((x) => x.toFixed(0)).join(' ')
})))
process.stdout.write(`model ${mb.toFixed(1)} MiB; fsync on costs ${(median(times.on) - median(times.off)).toFixed(0)} ms (${((median(times.on) / median(times.off) - 1) * 100).toFixed(0)} %)\n`)
