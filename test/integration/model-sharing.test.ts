/**
 * The swarm as its own model hub, on loopback with separate processes:
 * node A imports a model; node B, started empty, pulls it from A alone,
 * exports byte-identical files and serves embed jobs with it; B restarted
 * fetches nothing. A repeated request is answered from the embedding cache.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, readdir } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { loadCatalog } from '../../src/models/catalog.ts'
import { ensureGeneratedModel } from '../../src/models/generate/index.ts'
import { CLI, runProc, startWorker, stopProc, tempDir } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'

const ID = 'team/encoder'
const procs: WorkerProc[] = []
after(async () => { await Promise.all(procs.map(async (p) => await stopProc(p.proc))) })

async function files (dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>()
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out.set(relative(dir, join(e.parentPath, e.name)), await readFile(join(e.parentPath, e.name)))
  }
  return out
}

async function submit (w: WorkerProc, text: string): Promise<{ worker: string, model: string, output: { embeddings: number[][] }, timings: { cacheHit?: boolean, cachedItems?: number } }> {
  const r = await runProc([CLI, 'submit', 'embed', '--text', text, '--model', ID, '--bootstrap', w.multiaddrs[0]!, '--no-mdns', '--json', '--timeout', '30'], { timeoutMs: 60_000 })
  assert.equal(r.code, 0, r.stderr)
  return JSON.parse(r.stdout)
}

test('B pulls a model from A alone, serves it, and never fetches it again', async () => {
  // A model folder of our own, imported into A under an id no catalog knows.
  const src = await tempDir('ia-src-')
  const entry = (await loadCatalog()).get('demo/tiny-random')
  const folder = await ensureGeneratedModel(entry, src)
  const aDir = await tempDir('ia-a-')
  const imp = await runProc([CLI, 'models', 'import', folder, '--id', ID, '--skillset', 'embed', '--data-dir', aDir, '--json', '--quiet'], { timeoutMs: 60_000 })
  assert.equal(imp.code, 0, imp.stderr)
  const cid = (JSON.parse(imp.stdout) as { cid: string }).cid
  assert.match(cid, /^baf/)

  const a = await startWorker({ dataDir: aDir, models: ID, dtype: 'fp32' })
  procs.push(a)
  const bDir = await tempDir('ia-b-')
  // B names the model by id: only a trusted peer's manifest says which CID that is.
  const b = await startWorker({ dataDir: bDir, models: ID, dtype: 'fp32', bootstrap: [a.multiaddrs[0]!], config: { trustedPeers: [a.peerId] } })
  procs.push(b)
  assert.match(b.stderr(), /team\/encoder fetched from peers/)

  // B's copy is byte-identical to the folder A imported.
  const out = await tempDir('ia-out-')
  const exp = await runProc([CLI, 'models', 'export', ID, out, '--data-dir', bDir, '--quiet'], { timeoutMs: 60_000 })
  assert.equal(exp.code, 0, exp.stderr)
  const [want, got] = [await files(folder), await files(out)]
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort())
  for (const [path, bytes] of want) assert.ok(bytes.equals(got.get(path)!), `${path} differs`)

  // A goes away; B serves the model on its own.
  assert.equal(await stopProc(a.proc), 0)
  const fromB = await submit(b, 'weights from a peer')
  assert.equal(fromB.model, ID)
  assert.equal(fromB.worker, b.peerId)
  // A second client asks B the same thing: a cache hit, equal to the first answer.
  const again = await submit(b, 'weights from a peer')
  assert.equal(again.timings.cacheHit, true)
  assert.equal(again.timings.cachedItems, 1)
  assert.deepEqual(again.output.embeddings, fromB.output.embeddings)
  assert.notEqual(fromB.timings.cacheHit, true)

  // B restarted, A gone: it loads from its own store and fetches nothing.
  assert.equal(await stopProc(b.proc), 0)
  const b2 = await startWorker({ dataDir: bDir, models: ID, dtype: 'fp32' })
  procs.push(b2)
  assert.doesNotMatch(b2.stderr(), /fetched from peers|asking peers/)
  assert.match(b2.stderr(), /team\/encoder loaded from the store/)
  const afterRestart = await submit(b2, 'weights from a peer')
  assert.deepEqual(afterRestart.output.embeddings, fromB.output.embeddings)
})
