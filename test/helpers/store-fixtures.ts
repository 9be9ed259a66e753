/** Fixtures for the content-store tests: generated model folders, temp stores. */
import { createHash, randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { setLogLevel } from '../../src/logger.ts'
import { libp2pOptions } from '../../src/p2p/swarm/libp2p.ts'
import { createContentStore } from '../../src/store/content-store.ts'
import type { ContentStore, ContentStoreInit } from '../../src/store/content-store.ts'
import { NextToLast } from 'blockstore-fs/sharding'
import type { CID } from 'multiformats/cid'

// store logs (imports, pulls) only when asked for
if (process.env.IPFS_ACCELERATE_LOG_LEVEL === undefined) setLogLevel('warn')

const made: string[] = []
process.once('exit', () => { for (const d of made) rmSync(d, { recursive: true, force: true }) })

/** A temp dir, removed when the test process exits. */
export async function tempDir (prefix = 'ia-store-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  made.push(dir)
  return dir
}

/** A Hugging Face-shaped folder of random files (sizes in bytes); returns path → bytes. */
export async function writeModelDir (dir: string, files: Record<string, number | Uint8Array>): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>()
  for (const [path, spec] of Object.entries(files)) {
    const bytes = typeof spec === 'number' ? randomBytes(spec) : spec
    const file = join(dir, ...path.split('/'))
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, bytes)
    out.set(path, bytes)
  }
  return out
}

/** The default small model: nested folder, an empty file, a multi-chunk file, a duplicate. */
export function smallModelFiles (): Record<string, number | Uint8Array> {
  const shared = randomBytes(200_000)
  return {
    'config.json': new TextEncoder().encode('{"model_type":"bert"}'),
    'tokenizer.json': shared,
    'tokenizer_config.json': new Uint8Array(0),
    'onnx/model.onnx': 2_500_000,
    'onnx/copy-of-tokenizer.json': shared
  }
}

export function sha256 (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

export async function readTree (dir: string, paths: Iterable<string>): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>()
  for (const p of paths) out.set(p, await readFile(join(dir, ...p.split('/'))))
  return out
}

/** A started content store; networked on 127.0.0.1 (mDNS off) when `network` is set. */
export async function startStore (dataDir: string, init: { network?: boolean } & Partial<ContentStoreInit> = {}): Promise<ContentStore> {
  const { network, ...rest } = init
  const store = await createContentStore({
    dataDir,
    ...(network === true ? { libp2p: libp2pOptions({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false }) } : {}),
    ...rest
  })
  await store.start()
  return store
}

export function addrOf (store: ContentStore): string {
  const a = store.libp2p?.getMultiaddrs()[0]
  if (a === undefined) throw new Error('store has no listen address')
  return a.toString()
}

/** The file blockstore-fs keeps a block in. */
export function blockFile (blocksDir: string, cid: CID): string {
  const { dir, file } = new NextToLast().encode(cid)
  return join(blocksDir, dir, file)
}
