/**
 * Models shared between separate processes on 127.0.0.1 (mDNS off): node A
 * imports a model (CLI) and serves its store; B, started empty, pulls it by
 * CID from A alone (CLI, --bootstrap A), exports byte-identical files; B run
 * again fetches nothing.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CLI, ROOT, runProc, stopProc } from '../helpers/procs.ts'
import { smallModelFiles, tempDir, writeModelDir } from '../helpers/store-fixtures.ts'

async function startPeer (dataDir: string): Promise<{ proc: ReturnType<typeof spawn>, addr: string }> {
  const proc = spawn(process.execPath, [join(ROOT, 'test', 'helpers', 'store-peer.ts'), '--data-dir', dataDir], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
  let err = ''
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const ready = await new Promise<{ addr: string }>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`store peer not ready in 30 s:\n${err}`)) }, 30_000)
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined) { clearTimeout(timer); resolve(JSON.parse(line) as { addr: string }) }
    })
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`store peer exited with ${code}:\n${err}`)) })
  })
  return { proc, addr: ready.addr }
}

test('A imports; B pulls by CID from A alone, exports byte-identical files; B again fetches nothing', async () => {
  const root = await tempDir('ia-store-p2p-')
  const files = await writeModelDir(join(root, 'model'), { ...smallModelFiles(), 'onnx/model_quantized.onnx': 3_200_000 })
  const dirA = join(root, 'a')
  const dirB = join(root, 'b')

  const imp = await runProc([CLI, 'models', 'import', join(root, 'model'), '--id', 'test/p2p', '--skillset', 'embed', '--json', '--data-dir', dirA], { timeoutMs: 60_000 })
  assert.equal(imp.code, 0, imp.stderr)
  const record = JSON.parse(imp.stdout) as { cid: string, files: Array<{ path: string, sha256: string }> }

  const a = await startPeer(dirA)
  try {
    const pull = await runProc([CLI, 'models', 'pull', record.cid, '--bootstrap', a.addr, '--json', '--data-dir', dirB, '--timeout', '60'], { timeoutMs: 90_000 })
    assert.equal(pull.code, 0, pull.stderr)
    const pulled = JSON.parse(pull.stdout) as { record: { id: string, cid: string, files: Array<{ path: string, sha256: string }> }, fetched: { blocks: number, bytes: number, via: string } }
    assert.equal(pulled.record.cid, record.cid)
    assert.equal(pulled.record.id, 'test/p2p', 'the id comes from A\'s record')
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
