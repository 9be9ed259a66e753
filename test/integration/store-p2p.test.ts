/**
 * Models shared between separate processes on 127.0.0.1 (mDNS off): node A
 * imports a model (CLI) and serves its store; B, started empty, pulls it by
 * CID from A alone (CLI, --bootstrap A), exports byte-identical files; B run
 * again fetches nothing. Repair: a block corrupted on B's disk is named by
 * `models verify` and fetched again from A by `models pull`.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CLI, runProc, startStorePeer, stopProc } from '../helpers/procs.ts'
import { CID } from 'multiformats/cid'
import { FastFsBlockstore } from '../../src/store/blocks/fs-blockstore.ts'
import { readBlock } from '../../src/store/blocks/cid.ts'
import { dagPbLinks } from '../../src/store/blocks/dag.ts'
import { storePaths } from '../../src/store/helia.ts'
import { blockFile, smallModelFiles, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'

test('A imports; B pulls by CID from A alone, exports byte-identical files; B again fetches nothing', async () => {
  const root = await tempDir('ia-store-p2p-')
  const files = await writeModelDir(join(root, 'model'), { ...smallModelFiles(), 'onnx/model_quantized.onnx': 3_200_000 })
  const dirA = join(root, 'a')
  const dirB = join(root, 'b')

  const imp = await runProc([CLI, 'models', 'import', join(root, 'model'), '--id', 'test/p2p', '--skillset', 'embed', '--json', '--data-dir', dirA], { timeoutMs: 60_000 })
  assert.equal(imp.code, 0, imp.stderr)
  const record = JSON.parse(imp.stdout) as { cid: string, files: Array<{ path: string, sha256: string }> }

  const a = await startStorePeer(dirA)
  try {
    const pull = await runProc([CLI, 'models', 'pull', record.cid, '--bootstrap', a.addr, '--trusted-peer', a.addr.split('/p2p/')[1]!, '--json', '--data-dir', dirB, '--timeout', '60'], { timeoutMs: 90_000 })
    assert.equal(pull.code, 0, pull.stderr)
    const pulled = JSON.parse(pull.stdout) as { record: { id: string, cid: string, files: Array<{ path: string, sha256: string }> }, fetched: { blocks: number, bytes: number, via: string } }
    assert.equal(pulled.record.cid, record.cid)
    assert.equal(pulled.record.id, 'test/p2p', 'the id comes from A\'s record: B trusts A to name it')
    assert.equal(pulled.fetched.via, 'exchange')
    assert.ok(pulled.fetched.blocks > 5)
    assert.deepEqual(pulled.record.files.map((f) => [f.path, f.sha256]), record.files.map((f) => [f.path, f.sha256]))

    const exp = await runProc([CLI, 'models', 'export', record.cid, join(root, 'out'), '--json', '--data-dir', dirB], { timeoutMs: 60_000 })
    assert.equal(exp.code, 0, exp.stderr)
    for (const [p, bytes] of files) assert.ok((await readFile(join(root, 'out', p))).equals(bytes), `${p} differs`)
  } finally {
    assert.equal(await stopProc(a.proc as never, 15_000), 0)
  }

  // A is gone: B, run again, has everything and fetches nothing
  const again = await runProc([CLI, 'models', 'pull', record.cid, '--bootstrap', a.addr, '--json', '--data-dir', dirB], { timeoutMs: 60_000 })
  assert.equal(again.code, 0, again.stderr)
  const second = JSON.parse(again.stdout) as { fetched: { blocks: number, bytes: number, via: string } }
  assert.deepEqual([second.fetched.blocks, second.fetched.bytes, second.fetched.via], [0, 0, 'none'])
  const verify = await runProc([CLI, 'models', 'verify', 'test/p2p', '--data-dir', dirB], { timeoutMs: 60_000 })
  assert.equal(verify.code, 0, verify.stderr)
})

test('repair: a block corrupted on B\'s disk is named by verify and fetched again from A by pull; verify is then clean', async () => {
  const root = await tempDir('ia-store-repair-')
  await writeModelDir(join(root, 'model'), smallModelFiles())
  const dirA = join(root, 'a')
  const dirB = join(root, 'b')
  const imp = await runProc([CLI, 'models', 'import', join(root, 'model'), '--id', 'test/repair', '--json', '--data-dir', dirA], { timeoutMs: 60_000 })
  assert.equal(imp.code, 0, imp.stderr)
  const record = JSON.parse(imp.stdout) as { cid: string, files: Array<{ path: string, cid: string }> }
  const a = await startStorePeer(dirA)
  try {
    const pull = await runProc([CLI, 'models', 'pull', record.cid, '--bootstrap', a.addr, '--trusted-peer', a.addr.split('/p2p/')[1]!, '--json', '--data-dir', dirB, '--timeout', '60'], { timeoutMs: 90_000 })
    assert.equal(pull.code, 0, pull.stderr)

    // corrupt one leaf of onnx/model.onnx in B's blocks directory
    const onnx = record.files.find((f) => f.path === 'onnx/model.onnx')
    assert.ok(onnx !== undefined)
    const blocks = storePaths(dirB).blocks
    const leaf = dagPbLinks(await readBlock(new FastFsBlockstore(blocks), CID.parse(onnx.cid)))[0]?.cid
    assert.ok(leaf !== undefined)
    const bytes = await readFile(blockFile(blocks, leaf))
    bytes[100] = (bytes[100] ?? 0) ^ 0xff
    await writeFile(blockFile(blocks, leaf), bytes)

    const bad = await runProc([CLI, 'models', 'verify', 'test/repair', '--data-dir', dirB], { timeoutMs: 60_000 })
    assert.notEqual(bad.code, 0)
    assert.match(bad.stderr, /ERR_MODEL_INTEGRITY/)
    assert.ok(bad.stderr.includes(leaf.toString()), `verify names the block: ${bad.stderr}`)
    assert.match(bad.stderr, /onnx\/model\.onnx/, 'and its file')

    const repair = await runProc([CLI, 'models', 'pull', 'test/repair', '--bootstrap', a.addr, '--json', '--data-dir', dirB, '--timeout', '60'], { timeoutMs: 90_000 })
    assert.equal(repair.code, 0, repair.stderr)
    const fetched = (JSON.parse(repair.stdout) as { fetched: { blocks: number, via: string, byPeer: Record<string, number> } }).fetched
    assert.deepEqual([fetched.blocks, fetched.via, Object.keys(fetched.byPeer)], [1, 'exchange', [a.peerId]])
  } finally {
    assert.equal(await stopProc(a.proc as never, 15_000), 0)
  }
  const clean = await runProc([CLI, 'models', 'verify', 'test/repair', '--json', '--data-dir', dirB], { timeoutMs: 60_000 })
  assert.equal(clean.code, 0, clean.stderr)
  assert.equal((JSON.parse(clean.stdout) as { ok: boolean }).ok, true)
})
