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
  await assert.rejects(downloadFromHub({ repo: 'acme/m', dtype: 'q4', dest: await tempDir('ia-hub-dst-'), baseUrl: hub.url }), /has no q4 weights \(onnx\/\*_q4\.onnx for each of its sessions model\); it offers fp32: start with --dtype fp32/)
  await assert.rejects(downloadFromHub({ repo: 'acme/m', revision: 'nope', dtype: 'fp32', dest: await tempDir('ia-hub-dst-'), baseUrl: hub.url }), /the hub has no acme\/m at revision nope/)
  assert.ok(hub.requests.slice(before).every((r) => r.startsWith('/api/')), 'only the file lists were asked for')
})

test('several sessions, external data and per-skillset files: only the planned dtype\'s set is fetched', async () => {
  const lmSrc = await tempDir('ia-hub-lm-')
  await mkdir(join(lmSrc, 'onnx'), { recursive: true })
  const files: Record<string, string> = {
    'config.json': '{}', 'tokenizer.json': '{}', 'tokenizer_config.json': '{}', 'generation_config.json': '{}',
    'onnx/model.onnx': 'graph', 'onnx/model.onnx_data': 'w'.repeat(300), 'onnx/model.onnx_data_1': 'x'.repeat(200),
    'onnx/model_q4.onnx': 'graph4', 'onnx/model_q4.onnx_data': 'q'.repeat(100), 'onnx/model_fp16.onnx': 'graph16'
  }
  for (const [f, text] of Object.entries(files)) await writeFile(join(lmSrc, f), text)
  const lmHub = await startFakeHub('acme/lm', lmSrc)
  const detrSrc = await tempDir('ia-hub-detr-')
  await mkdir(join(detrSrc, 'onnx'), { recursive: true })
  for (const [f, text] of Object.entries({ 'config.json': '{}', 'preprocessor_config.json': '{}', 'onnx/model.onnx': 'detr' })) await writeFile(join(detrSrc, f), text)
  const detrHub = await startFakeHub('acme/detr', detrSrc)
  try {
    const q4 = await downloadFromHub({ repo: 'acme/lm', skillset: 'lm', dtype: 'q4', dest: await tempDir('ia-hub-dst-'), baseUrl: lmHub.url })
    assert.deepEqual(q4.files.map((f) => f.path).sort(), ['config.json', 'generation_config.json', 'onnx/model_q4.onnx', 'onnx/model_q4.onnx_data', 'tokenizer.json', 'tokenizer_config.json'])
    const fp32 = await downloadFromHub({ repo: 'acme/lm', skillset: 'lm', dtype: 'fp32', dest: await tempDir('ia-hub-dst-'), baseUrl: lmHub.url })
    assert.deepEqual(fp32.files.map((f) => f.path).filter((p) => p.startsWith('onnx/')), ['onnx/model.onnx', 'onnx/model.onnx_data', 'onnx/model.onnx_data_1'])
    await assert.rejects(downloadFromHub({ repo: 'acme/lm', skillset: 'lm', dtype: 'q8', dest: await tempDir('ia-hub-dst-'), baseUrl: lmHub.url }), /has no q8 weights .*it offers fp32, fp16, q4: start with --dtype fp32/)
    const detr = await downloadFromHub({ repo: 'acme/detr', skillset: 'detr', dtype: 'fp32', dest: await tempDir('ia-hub-dst-'), baseUrl: detrHub.url })
    assert.deepEqual(detr.files.map((f) => f.path).sort(), ['config.json', 'onnx/model.onnx', 'preprocessor_config.json'], 'DETR needs no tokenizer')
    await assert.rejects(downloadFromHub({ repo: 'acme/detr', skillset: 'embed', dtype: 'fp32', dest: await tempDir('ia-hub-dst-'), baseUrl: detrHub.url }), /has no tokenizer\.json, tokenizer_config\.json, which a embed model needs/)
  } finally {
    await lmHub.close()
    await detrHub.close()
  }
})
