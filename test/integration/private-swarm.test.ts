/**
 * Private swarms and allow lists with real worker processes on 127.0.0.1:
 * workers that share a swarm key serve each other and a client holding the
 * key; a client without the key, or with another, gets ERR_NO_WORKER
 * within its bounds, and a node with another key cannot connect at all. A
 * worker with --allow-peer serves that peer and refuses any other with
 * ERR_FORBIDDEN. Bad key files and peer ids stop `start` with ERR_CONFIG.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { ClientNode } from '../../src/node/client-node.ts'
import { libp2pOptions } from '../../src/p2p/swarm/libp2p.ts'
import { newSwarmKey, writeSwarmKey } from '../../src/p2p/trust/swarm-key.ts'
import { CLI, health, runProc, startWorker, stopProc, tempDir } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'

const STAND_IN = 'demo/stand-in'
const job = { skillset: 'stand-in' as const, model: STAND_IN, input: { items: 1, tag: 'private' }, cost: 1, timeoutMs: 20_000 }
const key1 = newSwarmKey()
const key2 = newSwarmKey()
let keyDir: string
let a: WorkerProc
let b: WorkerProc
const procs: WorkerProc[] = []

before(async () => {
  keyDir = await tempDir('ia-keys-')
  await writeSwarmKey(join(keyDir, 'one.key'), key1)
  await writeSwarmKey(join(keyDir, 'two.key'), key2)
  a = await startWorker({ models: STAND_IN, config: { swarmKey: join(keyDir, 'one.key'), adverts: { intervalMs: 1000 } } })
  procs.push(a)
  // B takes the key from the environment, and joins through A.
  b = await startWorker({ models: STAND_IN, config: { adverts: { intervalMs: 1000 } }, env: { IPFS_ACCELERATE_SWARM_KEY: join(keyDir, 'one.key') }, bootstrap: [a.multiaddrs[0]!] })
  procs.push(b)
})
after(async () => {
  // stop them all first: an assert inside the loop would leave the rest running
  const codes = await Promise.all(procs.map(async (p) => await stopProc(p.proc)))
  procs.forEach((p, i) => { assert.equal(codes[i], 0, p.stderr()) })
})

test('two workers with the same key join each other; a client with the key gets its job answered', async () => {
  assert.match(a.stderr(), /private swarm: only peers with the same swarm key can connect .*fingerprint=[0-9a-f]{16}/)
  assert.doesNotMatch(a.stderr() + b.stderr(), /[0-9a-f]{64}/, 'the key itself is never logged')
  let peersOfA = 0
  for (let i = 0; i < 100 && peersOfA < 1; i++) {
    peersOfA = ((await health(a.httpUrl)) as unknown as { peers: number } | null)?.peers ?? 0
    if (peersOfA < 1) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  assert.ok(peersOfA >= 1, 'B is connected to A')
  const client = new ClientNode({ bootstrap: [a.multiaddrs[0]!], mdns: false, swarmKey: key1 })
  try {
    await client.start()
    const res = await client.submit(job)
    assert.ok([a.peerId, b.peerId].includes(res.worker))
    assert.equal(res.model, STAND_IN)
    // the client joined through A and learned B through the private swarm
    for (let i = 0; i < 100 && !client.serving('stand-in', STAND_IN).some((s) => s.peerId === b.peerId); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    assert.ok(client.serving('stand-in', STAND_IN).some((s) => s.peerId === b.peerId), 'B is known through A')
  } finally {
    await client.stop()
  }
})

test('a client without the key, or with another, cannot connect: ERR_NO_WORKER within its bounds', async () => {
  for (const [name, swarmKey] of [['no key', undefined], ['another key', key2]] as const) {
    const client = new ClientNode({ bootstrap: [a.multiaddrs[0]!], mdns: false, joinMs: 2000, ...(swarmKey === undefined ? {} : { swarmKey }) })
    const t0 = performance.now()
    try {
      await client.start()
      await assert.rejects(client.submit(job), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_NO_WORKER', `${name}: ${err.message}`)
        assert.match(err.message, /no peer found.*--swarm-key/)
        return true
      })
    } finally {
      await client.stop()
    }
    const ms = performance.now() - t0
    assert.ok(ms < 15_000, `${name}: gave up within its bounds (${Math.round(ms)} ms)`)
  }
})

test('a node with another key cannot connect to the swarm; with the key, the same node and address can', async () => {
  const other = await createLibp2p(libp2pOptions({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, swarmKey: key2 }))
  const member = await createLibp2p(libp2pOptions({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, swarmKey: key1 }))
  try {
    // The handshake fails: the worker reads what another key encrypted as noise and resets, or waits for a
    // frame length that noise made up until the dial's deadline. Not refused (nothing listens) nor any other dial error.
    const inHandshake = (err: Error): boolean => {
      assert.ok(['EncryptionFailedError', 'TimeoutError'].includes(err.name), `${err.name}: ${err.message}`)
      return true
    }
    for (const w of [a, b]) {
      await assert.rejects(other.dial(multiaddr(w.multiaddrs[0]!), { signal: AbortSignal.timeout(3000) }), inHandshake)
      // the key was the only difference
      const conn = await member.dial(multiaddr(w.multiaddrs[0]!), { signal: AbortSignal.timeout(5000) })
      assert.equal(conn.remotePeer.toString(), w.peerId)
    }
    assert.equal(other.getPeers().length, 0)
  } finally {
    await Promise.all([other.stop(), member.stop()])
  }
})

test('a worker with --allow-peer serves that peer and refuses any other with ERR_FORBIDDEN', async () => {
  const friendKey = await generateKeyPair('Ed25519')
  const friend = peerIdFromPrivateKey(friendKey).toString()
  const w = await startWorker({ models: STAND_IN, config: { allowPeers: [friend] } })
  procs.push(w)
  const ok = new ClientNode({ bootstrap: [w.multiaddrs[0]!], mdns: false, privateKey: friendKey })
  const stranger = new ClientNode({ bootstrap: [w.multiaddrs[0]!], mdns: false })
  try {
    await ok.start()
    assert.equal(ok.peerId, friend)
    const res = await ok.submit(job)
    assert.equal(res.worker, w.peerId)
    await stranger.start()
    const t0 = performance.now()
    await assert.rejects(stranger.submit(job), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_FORBIDDEN', err.message)
      assert.match(err.message, new RegExp(`refused this client ${stranger.peerId ?? '?'}`))
      assert.match(err.message, /--allow-peer/)
      return true
    })
    assert.ok(performance.now() - t0 < 5000, 'refused at once, not at the deadline')
    const jobs = ((await health(w.httpUrl))?.jobs ?? {})
    assert.ok((jobs.forbidden ?? 0) >= 1, `counted on /healthz: ${JSON.stringify(jobs)}`)
    assert.equal(jobs.executions, 1, 'only the allowed job ran')
  } finally {
    await ok.stop()
    await stranger.stop()
  }
})

test('start refuses a malformed swarm key file and a bad peer id with ERR_CONFIG', async () => {
  const dir = await tempDir('ia-badkey-')
  const bad = join(dir, 'swarm.key')
  await writeFile(bad, '/key/swarm/psk/1.0.0/\n/base16/\nnot-hex\n', { mode: 0o600 })
  const base = [CLI, 'start', '--data-dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--http', 'off', '--models', STAND_IN]
  const r1 = await runProc([...base, '--swarm-key', bad], { timeoutMs: 30_000 })
  assert.equal(r1.code, 1)
  assert.match(r1.stderr, /error ERR_CONFIG: the swarm key .*swarm\.key is not a swarm key: its third line .*swarm-key generate/)
  const r2 = await runProc([...base, '--allow-peer', 'nobody'], { timeoutMs: 30_000 })
  assert.equal(r2.code, 1)
  assert.match(r2.stderr, /error ERR_CONFIG: invalid configuration: allowPeers\.0: "nobody" is not a peer id/)
})

test('swarm-key generate: a key in <data-dir>/swarm.key, mode 0600, never overwritten without --force', async () => {
  const { readSwarmKey } = await import('../../src/p2p/trust/swarm-key.ts')
  const { stat } = await import('node:fs/promises')
  const dir = await tempDir('ia-gen-')
  const r1 = await runProc([CLI, 'swarm-key', 'generate', '--data-dir', dir, '--json'], { timeoutMs: 30_000 })
  assert.equal(r1.code, 0, r1.stderr)
  const { path } = JSON.parse(r1.stdout) as { path: string }
  assert.equal(path, join(dir, 'swarm.key'))
  assert.equal((await stat(path)).mode & 0o777, 0o600)
  const first = await readSwarmKey(path)
  const r2 = await runProc([CLI, 'swarm-key', 'generate', '--data-dir', dir], { timeoutMs: 30_000 })
  assert.equal(r2.code, 1)
  assert.match(r2.stderr, /^error ERR_EXISTS: .*swarm\.key exists already: nothing was overwritten; pass --force/)
  assert.deepEqual((await readSwarmKey(path)).key, first.key, 'untouched')
  const out = join(dir, 'other', 'k')
  const r3 = await runProc([CLI, 'swarm-key', 'generate', '--out', out, '--force'], { timeoutMs: 30_000 })
  assert.equal(r3.code, 0, r3.stderr)
  assert.match(r3.stdout, new RegExp(`wrote a new swarm key to ${out} \\(mode 0600, fingerprint [0-9a-f]{16}\\)`))
  assert.notDeepEqual((await readSwarmKey(out)).key, first.key)
})
