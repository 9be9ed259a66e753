/**
 * A stand-in model hub on 127.0.0.1 for tests: serves one folder as a repo at
 * one commit, in the hub's URL layout (`/api/models/REPO/revision/REV` with
 * sizes and hashes; `/REPO/resolve/COMMIT/FILE`), and records every request.
 * `.onnx` files are listed as LFS files (sha256), the rest as git blobs
 * (sha1). `tamper` makes it serve other bytes for a file than it lists.
 */
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join, relative } from 'node:path'

export interface FakeHub {
  url: string
  commit: string
  requests: string[]
  /** Serve these bytes for a file instead of its own (its listing is unchanged). */
  tamper: Map<string, Uint8Array>
  close: () => Promise<void>
}

async function listFiles (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)).split('\\').join('/'))
  }
  return out.sort()
}

export async function startFakeHub (repo: string, folder: string): Promise<FakeHub> {
  const commit = createHash('sha1').update(`${repo}@${folder}`).digest('hex')
  const files = new Map<string, Buffer>()
  for (const f of await listFiles(folder)) files.set(f, await readFile(join(folder, f)))
  const siblings = [...files].map(([path, bytes]) => path.endsWith('.onnx')
    ? { rfilename: path, size: bytes.length, lfs: { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, pointerSize: 134 } }
    : { rfilename: path, size: bytes.length, blobId: createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex') })
  const requests: string[] = []
  const tamper = new Map<string, Uint8Array>()
  const server = createServer((req, res) => {
    const url = req.url ?? ''
    requests.push(url)
    const info = new RegExp(`^/api/models/${repo}/revision/([^/?]+)\\?blobs=true$`).exec(url)
    if (info !== null) {
      const rev = decodeURIComponent(info[1]!)
      if (rev !== 'main' && rev !== commit) { res.writeHead(404).end(); return }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: repo, sha: commit, siblings }))
      return
    }
    const m = new RegExp(`^/${repo}/resolve/${commit}/(.+)$`).exec(url)
    const bytes = m === null ? undefined : tamper.get(m[1]!) ?? files.get(m[1]!)
    if (bytes === undefined) { res.writeHead(404).end(); return }
    res.writeHead(200, { 'content-length': bytes.length }).end(bytes)
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    commit,
    requests,
    tamper,
    close: async () => { await new Promise((resolve) => { server.close(resolve) }) }
  }
}
