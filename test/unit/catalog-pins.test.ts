/**
 * models.json pins the root CID of every generated model: this build must
 * generate exactly those bytes (a node refuses to serve a generated model
 * whose CID differs), and folderCid, which computes the pin without
 * writing, must agree with a real import into the store.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { loadCatalog } from '../../src/models/catalog.ts'
import { ensureGeneratedModel } from '../../src/models/generate/index.ts'
import { folderCid } from '../../src/store/models/files.ts'
import { startStore, tempDir } from '../helpers/store-fixtures.ts'

const catalog = await loadCatalog()

test('every generated model in models.json pins a CID', () => {
  const generated = catalog.models.filter((m) => m.source.kind === 'generated')
  assert.ok(generated.length >= 3)
  for (const m of generated) assert.match(m.cid ?? '', /^bafy/, `${m.id} pins no CID`)
})

// demo/lm-bench-random (75 M parameters, 288 MiB: about 11 s to generate and hash here) is left out to keep
// this test fast; `ipfs-accelerate models generate --id demo/lm-bench-random` checks its pin by hand.
for (const id of ['demo/tiny-random', 'demo/stand-in', 'demo/stand-in-stream', 'demo/minilm-random', 'demo/lm-tiny-random', 'demo/lm-random', 'demo/detr-random', 'demo/detr-bench-random', 'demo/llava-next-random']) {
  test(`${id}: this build generates the pinned CID`, async () => {
    const entry = catalog.get(id)
    const dir = await ensureGeneratedModel(entry, await tempDir('ia-pins-'))
    const cid = (await folderCid(dir)).toString()
    assert.equal(cid, entry.cid, `the generator changed: pin ${cid} in models.json (ipfs-accelerate models generate --json prints it)`)
    if (id !== 'demo/tiny-random') return
    const store = await startStore(join(await tempDir(), 'store'))
    try {
      assert.equal((await store.models.importDir(dir, { id })).cid, cid, 'folderCid agrees with a real import')
    } finally {
      await store.stop()
    }
  })
}
