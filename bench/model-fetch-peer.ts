/**
 * The serving side of bench/model-fetch.ts, run as its own process: a
 * content store on 127.0.0.1 that imports a model folder and serves it over
 * libp2p (block exchange and bitswap), plus a plain HTTP server for the
 * same files. Prints one JSON line ({ addr, cid, http }) when ready; stops
 * on SIGTERM or when stdin closes.
 */
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createServer } from 'node:http'
import { resolve, sep } from 'node:path'
import { parseArgs } from 'node:util'
import { libp2pOptions } from '../src/p2p/swarm/libp2p.ts'
import { createContentStore } from '../src/store/content-store.ts'

const { values } = parseArgs({ options: { 'data-dir': { type: 'string' }, 'model-dir': { type: 'string' }, id: { type: 'string', default: 'bench/model' } } })
const dataDir = values['data-dir']
const modelDir = values['model-dir']
if (dataDir === undefined || modelDir === undefined) throw new Error('usage: model-fetch-peer.ts --data-dir DIR --model-dir DIR')

const store = await createContentStore({ dataDir, libp2p: libp2pOptions({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false }) })
await store.start()
const record = await store.models.importDir(modelDir, { id: values.id, skillset: 'embed' })

const root = resolve(modelDir)
const http = createServer((req, res) => {
  const path = resolve(root, '.' + decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname))
  if (!path.startsWith(root + sep)) { res.writeHead(403).end(); return }
  stat(path).then((s) => {
    res.writeHead(200, { 'content-length': String(s.size), 'content-type': 'application/octet-stream' })
    createReadStream(path).pipe(res)
  }, () => { res.writeHead(404).end() })
})
await new Promise<void>((ok) => { http.listen(0, '127.0.0.1', ok) })
const port = (http.address() as { port: number }).port
const addr = store.libp2p?.getMultiaddrs()[0]?.toString()
process.stdout.write(JSON.stringify({ addr, cid: record.cid, http: `http://127.0.0.1:${port}`, files: record.files.map((f) => ({ path: f.path, size: f.size })) }) + '\n')

const shutdown = async (): Promise<void> => {
  http.close()
  await store.stop()
  process.exit(0)
}
process.on('SIGTERM', () => { void shutdown() })
process.stdin.on('end', () => { void shutdown() })
process.stdin.resume()
