/**
 * The hub downloader against a stand-in hub on 127.0.0.1: a revision is
 * resolved to one commit before anything is fetched, every file comes from
 * that commit, and a file whose size or hash differs from what the hub
 * states never takes its final name.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { downloadFromHub } from '../../src/models/hub.ts'
import { startFakeHub } from '../helpers/fake-hub.ts'
import { tempDir } from '../helpers/store-fixtures.ts'

const src = await tempDir('ia-hub-src-')
await mkdir(join(src, 'onnx'), { recursive: true })
for (const [f, text] of Object.entries({ 'config.json': '{"hidden_size":4}', 'tokenizer.json': '{}', 'tokenizer_config.json': '{}', 'special_tokens_map.json': '{}', 'onnx/model.onnx': 'weights'.repeat(1000) })) {
  await writeFile(join(src, f), text)
}
const hub = await startFakeHub('acme/m', src)
after(async () => { await hub.close() })

test('main resolves to a commit; every file comes from it and matches what the hub states', async () => {
  const dest = await tempDir('ia-hub-dst-')
  const got = await downloadFromHub({ repo: 'acme/m', dtype: 'fp32', dest, baseUrl: hub.url })
  assert.equal(got.revision, hub.commit)
  assert.deepEqual(got.files.map((f) => f.path).sort(), ['config.json', 'onnx/model.onnx', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'])
  const fetched = hub.requests.filter((r) => r.includes('/resolve/'))
  assert.ok(fetched.every((r) => r.startsWith(`/acme/m/resolve/${hub.commit}/`)), 'no file by branch name')
  assert.ok(!hub.requests.some((r) => r.endsWith('generation_config.json')), 'optional files the hub does not list are not asked for')
  // a commit given in models.json is fetched as is
  const again = await downloadFromHub({ repo: 'acme/m', revision: hub.commit, dtype: 'fp32', dest: await tempDir('ia-hub-dst-'), baseUrl: hub.url })
  assert.equal(again.revision, hub.commit)
})

test('a file whose bytes differ from the stated hash or size is refused and leaves nothing behind', async () => {
  for (const [file, bytes, why] of [
    ['onnx/model.onnx', new TextEncoder().encode('WEIGHTS'.repeat(1000)), /does not match the sha256/],
    ['config.json', new TextEncoder().encode('{"hidden_size":5}'), /does not match the git blob id/],
    ['tokenizer.json', new TextEncoder().encode('{ }'), /passed the 2 bytes the hub states/]
  ] as const) {
    hub.tamper.clear()
    hub.tamper.set(file, bytes)
    const dest = await tempDir('ia-hub-bad-')
    await assert.rejects(downloadFromHub({ repo: 'acme/m', dtype: 'fp32', dest, baseUrl: hub.url }), (err: Error & { code?: string }) => {
      assert.match(err.message, why)
      return true
    })
    const left = await readdir(dest, { recursive: true })
    assert.ok(!left.includes(file) && !left.some((f) => f.endsWith('.part')), `${file}: no file and no partial left (${left.join(', ')})`)
  }
  hub.tamper.clear()
})

test('a dtype the repo does not offer, or an unknown revision, fails before any download', async () => {
  const before = hub.requests.length
  await assert.rejects(downloadFromHub({ repo: 'acme/m', dtype: 'q4', dest: await tempDir('ia-hub-dst-'), baseUrl: hub.url }), /has no onnx\/model_q4\.onnx: check the model id and the dtype \(q4\)/)
  await assert.rejects(downloadFromHub({ repo: 'acme/m', revision: 'nope', dtype: 'fp32', dest: await tempDir('ia-hub-dst-'), baseUrl: hub.url }), /the hub has no acme\/m at revision nope/)
  assert.ok(hub.requests.slice(before).every((r) => r.startsWith('/api/')), 'only the file lists were asked for')
})
