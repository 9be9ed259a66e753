import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseModelRecord, parseRecordsFile, RecordStore } from '../../src/store/models/records.ts'
import type { ModelRecord } from '../../src/store/models/records.ts'
import { tempDir } from '../helpers/store-fixtures.ts'

const record = (id: string, cid = 'bafybeib3xidfv2qwfaonuyan7rndg2gl7bscecu6gunc5xwy6ygtw455wq'): ModelRecord => ({
  id,
  skillset: 'embed',
  cid,
  files: [{ path: 'onnx/model.onnx', size: 3, sha256: 'a'.repeat(64), cid: 'bafkreigkhuldxkyfkoaye4rgcqcwr45667vkygd45plwq6hawy7j4rbdky' }],
  size: 3,
  pinned: true,
  source: 'import',
  createdAt: new Date(0).toISOString()
})

test('records round-trip through the file, sorted, with a version', async () => {
  const dir = await tempDir()
  const file = join(dir, 'records.json')
  const a = new RecordStore(file)
  await a.put(record('z/model'))
  await a.put(record('a/model'))
  await a.update('z/model', { pinned: false })
  const b = new RecordStore(file)
  assert.deepEqual((await b.list()).map((r) => [r.id, r.pinned]), [['a/model', true], ['z/model', false]])
  assert.equal((await b.byCid(record('x').cid)).length, 2)
  assert.equal(await b.delete('a/model'), true)
  assert.equal(await b.get('a/model'), undefined)
  const raw = JSON.parse(await readFile(file, 'utf8')) as { version: number }
  assert.equal(raw.version, 2)
})

test('version 1 files are read (no pending entries); pending entries survive a reload', async () => {
  const dir = await tempDir()
  const file = join(dir, 'records.json')
  await writeFile(file, JSON.stringify({ version: 1, models: [record('old/model')] }))
  const a = new RecordStore(file)
  assert.deepEqual((await a.list()).map((r) => r.id), ['old/model'])
  assert.deepEqual(await a.pending(), [])
  await a.begin({ cid: record('x').cid, op: 'pull', id: 'new/model' })
  const b = new RecordStore(file)
  const [p] = await b.pending()
  assert.deepEqual([p?.cid, p?.op, p?.id, p?.pid, p?.interrupted], [record('x').cid, 'pull', 'new/model', process.pid, false])
  await b.markInterrupted(record('x').cid)
  assert.equal((await new RecordStore(file).pending())[0]?.interrupted, true)
  await b.end(record('x').cid)
  assert.deepEqual(await new RecordStore(file).pending(), [])
})

test('an unknown records version is refused, not guessed', () => {
  assert.throws(() => parseRecordsFile(JSON.stringify({ version: 3, models: [] }), 'f'), (err: Error & { code?: string }) => err.code === 'ERR_STORE' && /version 3.*versions 1 and 2/.test(err.message))
  assert.throws(() => parseRecordsFile('{nope', 'f'), /not valid JSON/)
})

test('malformed records are refused with every problem named', () => {
  const bad = { ...record('ok/model'), files: [{ path: '../etc/passwd', size: -1, sha256: 'XYZ', cid: 'bafkreigkhuldxkyfkoaye4rgcqcwr45667vkygd45plwq6hawy7j4rbdky' }] }
  assert.throws(() => parseModelRecord(bad, 'peer'), (err: Error) => /files\.0\.path/.test(err.message) && /files\.0\.size/.test(err.message) && /files\.0\.sha256/.test(err.message))
  assert.throws(() => parseModelRecord({ ...record('ok/model'), extra: 1 }, 'peer'), /extra|Unrecognized/)
  assert.throws(() => parseRecordsFile(JSON.stringify({ version: 1, models: [record('a/b'), record('a/b')] }), 'f'), /appears twice/)
})

test('a corrupted records file stops the store with a clear error', async () => {
  const dir = await tempDir()
  const file = join(dir, 'records.json')
  await writeFile(file, JSON.stringify({ version: 1, models: [{ id: 'x' }] }))
  await assert.rejects(new RecordStore(file).list(), (err: Error & { code?: string }) => err.code === 'ERR_STORE' && /records\.json is invalid/.test(err.message))
})
