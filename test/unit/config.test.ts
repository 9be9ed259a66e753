import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { configFromEnv, loadConfig, mergeConfig, validateConfig } from '../../src/config/load.ts'

test('defaults are complete and frozen', () => {
  const c = validateConfig({})
  assert.equal(c.mdns, true)
  assert.equal(c.http, '127.0.0.1:8080')
  assert.deepEqual(c.listen, ['/ip4/0.0.0.0/tcp/4101'])
  assert.equal(c.scheduler.maxBatchCost, 64)
  assert.ok(Object.isFrozen(c))
})

test('file < env < flags', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ia-config-'))
  const file = join(dir, 'config.yaml')
  await writeFile(file, 'http: 127.0.0.1:9000\nmdns: false\ndevice: cpu\nscheduler:\n  maxBatchCost: 8\n')
  const env = { IPFS_ACCELERATE_HTTP: '127.0.0.1:9001', IPFS_ACCELERATE_DEVICE: 'auto' }
  const c = await loadConfig({ file, env, flags: { device: 'cpu', dataDir: dir } })
  assert.equal(c.http, '127.0.0.1:9001', 'env beats file')
  assert.equal(c.device, 'cpu', 'flags beat env')
  assert.equal(c.mdns, false, 'file beats defaults')
  assert.equal(c.scheduler.maxBatchCost, 8)
  assert.equal(c.scheduler.maxQueuedJobs, 1024, 'nested defaults survive a partial section')
})

test('JSON config files work too', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ia-config-'))
  const file = join(dir, 'c.json')
  await writeFile(file, JSON.stringify({ bootstrap: ['/ip4/127.0.0.1/tcp/4101'] }))
  const c = await loadConfig({ file, env: {} })
  assert.deepEqual(c.bootstrap, ['/ip4/127.0.0.1/tcp/4101'])
})

test('every invalid value is named, all at once', () => {
  assert.throws(() => validateConfig({ http: 'nope', device: 'tpu', listen: ['not-an-addr'], bogus: 1 }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_CONFIG')
    assert.match(err.message, /http:/)
    assert.match(err.message, /device:/)
    assert.match(err.message, /listen\.0:/)
    assert.match(err.message, /bogus/)
    return true
  })
})

test('bad files and env values say what is wrong', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ia-config-'))
  const file = join(dir, 'c.yaml')
  await writeFile(file, 'http: [unclosed\n')
  await assert.rejects(loadConfig({ file, env: {} }), { code: 'ERR_CONFIG', message: /not valid YAML/ })
  await assert.rejects(loadConfig({ file: join(dir, 'missing.yaml'), env: {} }), { code: 'ERR_CONFIG', message: /cannot read/ })
  assert.throws(() => configFromEnv({ IPFS_ACCELERATE_MDNS: 'maybe' }), { code: 'ERR_CONFIG', message: /IPFS_ACCELERATE_MDNS/ })
  assert.deepEqual(configFromEnv({ IPFS_ACCELERATE_BOOTSTRAP: '/ip4/127.0.0.1/tcp/1, /ip4/127.0.0.1/tcp/2' }).bootstrap, ['/ip4/127.0.0.1/tcp/1', '/ip4/127.0.0.1/tcp/2'])
})

test('merge replaces arrays and merges objects', () => {
  assert.deepEqual(mergeConfig({ a: [1, 2], s: { x: 1, y: 2 } }, { a: [3], s: { y: 5 } }), { a: [3], s: { x: 1, y: 5 } })
})

test('trust settings: peer ids are checked and kept canonical; the swarm key path is made absolute', async () => {
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
  const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  const c = validateConfig({ allowPeers: [id.toString(), ` ${id.toString()}`], trustedPeers: [id.toCID().toString()], swarmKey: 'rel/swarm.key' })
  assert.deepEqual(c.allowPeers, [id.toString()], 'trimmed and de-duplicated')
  assert.deepEqual(c.trustedPeers, [id.toString()], 'the CID form becomes the usual form')
  assert.equal(c.swarmKey, join(process.cwd(), 'rel/swarm.key'))
  const d = validateConfig({})
  assert.deepEqual([d.allowPeers, d.trustedPeers, d.swarmKey], [[], [], undefined], 'open by default: any peer\'s jobs, no peer trusted, no swarm key')
  assert.throws(() => validateConfig({ allowPeers: ['12D3KooWnot-a-peer'], trustedPeers: [id.toString(), 'Qm'] }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_CONFIG')
    assert.match(err.message, /allowPeers\.0: "12D3KooWnot-a-peer" is not a peer id/)
    assert.match(err.message, /trustedPeers\.1: "Qm" is not a peer id/)
    assert.match(err.message, /12D3KooW\.\.\./, 'says what a peer id looks like')
    return true
  })
  const env = configFromEnv({ IPFS_ACCELERATE_SWARM_KEY: '/k/swarm.key', IPFS_ACCELERATE_ALLOW_PEERS: `${id.toString()}, ${id.toString()}`, IPFS_ACCELERATE_TRUSTED_PEERS: id.toString() })
  assert.deepEqual(env, { swarmKey: '/k/swarm.key', allowPeers: [id.toString(), id.toString()], trustedPeers: [id.toString()] })
})

test('apiKey (the /v1 key): file < IPFS_ACCELERATE_API_KEY < --api-key; a short or spaced key is refused by name, its value never echoed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ia-cfg-key-'))
  const file = join(dir, 'c.json')
  await writeFile(file, JSON.stringify({ apiKey: 'from-the-file-0123456789' }))
  assert.equal((await loadConfig({ file, env: {} })).apiKey, 'from-the-file-0123456789')
  assert.equal((await loadConfig({ file, env: { IPFS_ACCELERATE_API_KEY: 'from-the-env-0123456789' } })).apiKey, 'from-the-env-0123456789')
  assert.equal((await loadConfig({ file, env: { IPFS_ACCELERATE_API_KEY: 'from-the-env-0123456789' }, flags: { apiKey: 'from-the-flag-0123456789' } })).apiKey, 'from-the-flag-0123456789')
  assert.equal((await loadConfig({ env: {} })).apiKey, undefined)
  for (const bad of ['short-secret', 'has a space in it 0123']) {
    assert.throws(() => validateConfig({ apiKey: bad }), (err: Error) => /apiKey: /.test(err.message) && !err.message.includes(bad))
  }
})
