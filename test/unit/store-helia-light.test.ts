/**
 * The store loads Helia without its default network stack (helia-light.ts):
 * importing the content store must not load auto-TLS, ACME, WebRTC, UPnP or
 * Helia's HTTP client, which `helia`'s and `@helia/libp2p`'s entry points
 * pull in. A child process records every module it resolves.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'
import { ROOT } from '../helpers/procs.ts'

const UNUSED = ['@ipshipyard/libp2p-auto-tls', 'acme-client', '@libp2p/webrtc', '@libp2p/upnp-nat', '@helia/http', '@helia/delegated-routing-client', '@libp2p/circuit-relay-v2']

test('the content store and the worker node load none of Helia\'s default network stack', async () => {
  const script = `
    import { registerHooks } from 'node:module'
    const seen = []
    registerHooks({ resolve: (spec, ctx, next) => { const r = next(spec, ctx); seen.push(r.url); return r } })
    await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/node/worker-node.ts')).href)})
    process.stdout.write(JSON.stringify(seen))
  `
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, maxBuffer: 64 << 20 })
  const seen = JSON.parse(stdout) as string[]
  assert.ok(seen.some((u) => u.includes('/node_modules/helia/dist/src/helia.js')), 'Helia itself is loaded')
  assert.ok(seen.some((u) => u.includes('/node_modules/libp2p/')), 'libp2p is loaded')
  for (const pkg of UNUSED) assert.deepEqual(seen.filter((u) => u.includes(`/node_modules/${pkg}/`)), [], `${pkg} is not loaded`)
})
