/**
 * A model no peer holds is downloaded from the hub once, imported, and then
 * served to peers: a stand-in hub on 127.0.0.1 (test/helpers/fake-hub.ts)
 * serves a generated model in the hub's URL layout and counts what it is asked.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadCatalog } from '../../src/models/catalog.ts'
import { ensureGeneratedModel } from '../../src/models/generate/index.ts'
import { startWorker, stopProc, tempDir } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'
import { startFakeHub } from '../helpers/fake-hub.ts'

const procs: WorkerProc[] = []
const folder = await ensureGeneratedModel((await loadCatalog()).get('demo/tiny-random'), await tempDir('ia-hubsrc-'))
const hub = await startFakeHub('acme/tiny', folder)
const requests = hub.requests
const hubUrl = hub.url
after(async () => {
  await Promise.all(procs.map(async (p) => await stopProc(p.proc)))
  await hub.close()
})

test('downloaded from the hub once, then served to a peer that never asks the hub', async () => {
  const catalogFile = join(await tempDir('ia-cat-'), 'models.json')
  await writeFile(catalogFile, JSON.stringify({ version: 1, models: [{ id: 'acme/tiny', skillset: 'embed', source: { kind: 'hub', repo: 'acme/tiny' }, dtypes: ['fp32', 'q8'], sizeMB: 1 }] }))
  const env = { IPFS_ACCELERATE_HUB_URL: hubUrl, IPFS_ACCELERATE_CATALOG: catalogFile }
  const aDir = await tempDir('ia-a-')
  const a = await startWorker({ dataDir: aDir, models: 'acme/tiny', dtype: 'fp32', env })
  procs.push(a)
  assert.match(a.stderr(), /acme\/tiny downloaded from the hub and imported/)
  assert.match(a.stderr(), new RegExp(`pin it with "revision": "${hub.commit}"`), 'main was resolved to its commit, and the log says how to pin it')
  const onnx = requests.filter((r) => r.endsWith('.onnx'))
  assert.deepEqual(onnx, [`/acme/tiny/resolve/${hub.commit}/onnx/model.onnx`], 'only the planned dtype is downloaded, from the commit')
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(requests.includes(`/acme/tiny/resolve/${hub.commit}/${f}`), f)
  const seen = requests.length

  // B has no copy and the same hub, but A holds the model: B, which trusts A for manifests, pulls it from A.
  const b = await startWorker({ models: 'acme/tiny', dtype: 'fp32', env, bootstrap: [a.multiaddrs[0]!], config: { trustedPeers: [a.peerId] } })
  procs.push(b)
  assert.match(b.stderr(), /acme\/tiny fetched from peers/)
  assert.equal(requests.length, seen, 'B did not ask the hub')

  // A restarted loads from its store.
  assert.equal(await stopProc(a.proc), 0)
  const a2 = await startWorker({ dataDir: aDir, models: 'acme/tiny', dtype: 'fp32', env })
  procs.push(a2)
  assert.equal(requests.length, seen, 'A restarted did not ask the hub again')
})

test('an unreachable hub and no peer: start fails with one line that says what to do', async () => {
  const catalogFile = join(await tempDir('ia-cat-'), 'models.json')
  await writeFile(catalogFile, JSON.stringify({ version: 1, models: [{ id: 'acme/absent', skillset: 'embed', source: { kind: 'hub', repo: 'acme/absent' }, dtypes: ['fp32'], sizeMB: 1 }] }))
  await assert.rejects(startWorker({ models: 'acme/absent', dtype: 'fp32', env: { IPFS_ACCELERATE_HUB_URL: 'http://127.0.0.1:9', IPFS_ACCELERATE_CATALOG: catalogFile } }), /ERR_MODEL_NOT_FOUND: model acme\/absent is not in this node's store.*cannot reach the model hub.*models import DIR/)
})

test('a plain start serves the real model where the hub answers, and the demo model within seconds where nothing does', async () => {
  const catalogFile = join(await tempDir('ia-cat-'), 'models.json')
  const demo = (await loadCatalog()).get('demo/tiny-random')
  await writeFile(catalogFile, JSON.stringify({
    version: 1,
    models: [
      { id: 'acme/tiny', skillset: 'embed', source: { kind: 'hub', repo: 'acme/tiny' }, dtypes: ['fp32', 'q8'], sizeMB: 1, onlineDefault: true },
      { ...demo, offlineDefault: true }
    ]
  }))
  const online = await startWorker({ models: null, dtype: 'fp32', env: { IPFS_ACCELERATE_HUB_URL: hubUrl, IPFS_ACCELERATE_CATALOG: catalogFile } })
  procs.push(online)
  assert.match(online.stderr(), /the model hub answers for acme\/tiny/)
  const served = (await (await fetch(`${online.httpUrl}/healthz`)).json()) as { models: Array<{ id: string }> }
  assert.deepEqual(served.models.map((m) => m.id), ['acme/tiny'])

  // No hub (a closed port) and no peer: the demo model, after a probe that fails at once.
  const t0 = performance.now()
  const offline = await startWorker({ models: null, dtype: 'fp32', env: { IPFS_ACCELERATE_HUB_URL: 'http://127.0.0.1:9', IPFS_ACCELERATE_CATALOG: catalogFile } })
  procs.push(offline)
  const startMs = performance.now() - t0
  assert.match(offline.stderr(), /no model hub reachable and no peer holds the real models: serving the generated demo models demo\/tiny-random/)
  const servedOffline = (await (await fetch(`${offline.httpUrl}/healthz`)).json()) as { models: Array<{ id: string }> }
  assert.deepEqual(servedOffline.models.map((m) => m.id), ['demo/tiny-random'])
  assert.ok(startMs < 30_000, `start took ${Math.round(startMs)} ms`)
})
