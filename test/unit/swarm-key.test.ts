/**
 * Private swarms (src/p2p/trust/swarm-key.ts): the swarm.key file format read
 * strictly, keys written with mode 0600 and never overwritten unasked, and
 * libp2p nodes that connect only when they hold the same key.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createLibp2p } from 'libp2p'
import { setLogSink } from '../../src/logger.ts'
import { libp2pOptions } from '../../src/p2p/swarm/libp2p.ts'
import { formatSwarmKey, newSwarmKey, parseSwarmKey, readSwarmKey, SWARM_KEY_HEADER, swarmKeyFingerprint, writeSwarmKey } from '../../src/p2p/trust/swarm-key.ts'
import { tempDir } from '../helpers/store-fixtures.ts'

const HEX = 'dffb7e3135399a8b1612b2aaca1c36a3a8ac2cd0cca51ceeb2ced87d308cac6d'
const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

test('parses the IPFS swarm.key format: LF or CRLF, one final newline or none', () => {
  const want = Buffer.from(HEX, 'hex')
  for (const text of [
    `/key/swarm/psk/1.0.0/\n/base16/\n${HEX}`,
    `/key/swarm/psk/1.0.0/\n/base16/\n${HEX}\n`,
    `/key/swarm/psk/1.0.0/\r\n/base16/\r\n${HEX.toUpperCase()}\r\n`
  ]) assert.deepEqual(Buffer.from(parseSwarmKey(enc(text))), want, JSON.stringify(text))
  assert.equal(formatSwarmKey(want), `/key/swarm/psk/1.0.0/\n/base16/\n${HEX}\n`)
  assert.deepEqual(Buffer.from(parseSwarmKey(enc(formatSwarmKey(want)))), want, 'round trip')
})

test('anything else is an ERR_CONFIG that says what is wrong and how to make a key', () => {
  const cases: Array<[string | Uint8Array, RegExp]> = [
    ['', /1 line/],
    [`/key/swarm/psk/1.0.0/\n/base16/\n${HEX}\n\n`, /5 line/],
    [`/key/swarm/psk/2.0.0/\n/base16/\n${HEX}`, /first line/],
    [`/key/swarm/psk/1.0.0/\n/base64/\n${HEX}`, /second line .*only \/base16\//],
    [`/key/swarm/psk/1.0.0/\n/base16/\n${HEX.slice(2)}`, /third line is 62 characters/],
    [`/key/swarm/psk/1.0.0/\n/base16/\n${HEX.slice(1)}z`, /not 64 hex digits/],
    [` /key/swarm/psk/1.0.0/\n/base16/\n${HEX}`, /first line/],
    [`/key/swarm/psk/1.0.0/\n/base16/\n${HEX} `, /third line/],
    [`/key/swarm/psk/1.0.0/\n/base16/\n${HEX}\nextra`, /4 line/],
    [Uint8Array.of(0xff, 0xfe, 0x0a), /not text/],
    ['x'.repeat(300), /over 256/]
  ]
  for (const [input, why] of cases) {
    assert.throws(() => parseSwarmKey(typeof input === 'string' ? enc(input) : input, 'k'), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_CONFIG')
      assert.match(err.message, why)
      assert.match(err.message, /swarm-key generate/, 'says how to make one')
      return true
    }, JSON.stringify(typeof input === 'string' ? input.slice(0, 40) : 'bytes'))
  }
})

test('generate: 32 random bytes, mode 0600, never overwritten without force; read back with its fingerprint', async () => {
  const dir = await tempDir('ia-swarm-')
  const file = join(dir, 'nested', 'swarm.key')
  const a = newSwarmKey()
  assert.equal(a.byteLength, 32)
  assert.notDeepEqual(Buffer.from(newSwarmKey()), Buffer.from(a), 'random')
  assert.equal(await writeSwarmKey(file, a), file)
  assert.equal((await stat(file)).mode & 0o777, 0o600)
  const text = await readFile(file, 'utf8')
  assert.ok(text.startsWith(`${SWARM_KEY_HEADER}\n/base16/\n`))
  await assert.rejects(writeSwarmKey(file, newSwarmKey()), { code: 'ERR_EXISTS', message: /--force/ })
  assert.equal(await readFile(file, 'utf8'), text, 'untouched')
  const read = await readSwarmKey(file)
  assert.deepEqual(Buffer.from(read.key), Buffer.from(a))
  assert.equal(read.fingerprint, swarmKeyFingerprint(a))
  assert.match(read.fingerprint, /^[0-9a-f]{16}$/)
  const b = newSwarmKey()
  await chmod(file, 0o644)
  await writeSwarmKey(file, b, { force: true })
  assert.equal((await stat(file)).mode & 0o777, 0o600, 'a replaced key is 0600 too')
  assert.deepEqual(Buffer.from((await readSwarmKey(file)).key), Buffer.from(b))
  await mkdir(join(dir, 'adir'))
  await assert.rejects(writeSwarmKey(join(dir, 'adir'), b, { force: true }), { code: 'ERR_EXISTS' })
})

test('reading: a missing, oversized or non-file key is ERR_CONFIG; a key others can read is used with a warning', async () => {
  const dir = await tempDir('ia-swarm-')
  await assert.rejects(readSwarmKey(join(dir, 'none.key')), { code: 'ERR_CONFIG', message: /cannot read the swarm key .*none\.key/ })
  await assert.rejects(readSwarmKey(dir), { code: 'ERR_CONFIG', message: /not a regular file/ })
  await writeFile(join(dir, 'big.key'), 'x'.repeat(10_000))
  await assert.rejects(readSwarmKey(join(dir, 'big.key')), { code: 'ERR_CONFIG', message: /over 256/ })
  const loose = join(dir, 'loose.key')
  await writeFile(loose, formatSwarmKey(newSwarmKey()), { mode: 0o644 })
  await chmod(loose, 0o644)
  const lines: string[] = []
  setLogSink((l) => { lines.push(l) })
  try {
    await readSwarmKey(loose)
  } finally {
    setLogSink((l) => { process.stderr.write(l + '\n') })
  }
  const warning = lines.find((l) => / warn /.test(l))
  assert.ok(warning !== undefined, lines.join('\n'))
  assert.match(warning, /readable by its group and others/)
  assert.match(warning, /chmod 600/)
  assert.doesNotMatch(lines.join('\n'), /[0-9a-f]{64}/, 'the key itself is never logged')
})

test('libp2p nodes connect only with the same key: same key yes; no key, or another key, no', async () => {
  const k1 = newSwarmKey()
  const k2 = newSwarmKey()
  const node = async (swarmKey?: Uint8Array): ReturnType<typeof createLibp2p> => await createLibp2p(libp2pOptions({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, ...(swarmKey === undefined ? {} : { swarmKey }) }))
  const a = await node(k1)
  const b = await node(k1)
  const open = await node()
  const other = await node(k2)
  try {
    const addr = a.getMultiaddrs()[0]!
    const conn = await b.dial(addr, { signal: AbortSignal.timeout(5000) })
    assert.equal(conn.remotePeer.toString(), a.peerId.toString())
    // The three dials that must fail run at once: another key garbles the handshake rather than
    // refusing it, so such a dial may run to its time limit (2.5 s: the
    // same-key dial above, which must succeed, keeps 5 s for a loaded host).
    const refused = async (name: string, from: typeof a, to: typeof a): Promise<void> => {
      const t0 = performance.now()
      await assert.rejects(from.dial(to.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(2500) }), Error, `${name}: dial fails`)
      assert.ok(performance.now() - t0 < 10_000, `${name}: fails, not hangs past its 2.5 s signal`)
    }
    await Promise.all([refused('no key', open, a), refused('another key', other, a), refused('a keyed node to an open one', b, open)])
    assert.equal(open.getPeers().length, 0, 'no key: no connection')
    assert.equal(other.getPeers().length, 0, 'another key: no connection')
    assert.deepEqual(b.getPeers().map(String), [a.peerId.toString()], 'b is connected to a alone')
  } finally {
    await Promise.allSettled([a, b, open, other].map(async (n) => { await n.stop() }))
  }
})
