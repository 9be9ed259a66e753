/**
 * Yamux window updates (src/p2p/swarm/yamux-window.ts): two real nodes on
 * 127.0.0.1; 200 small messages on one stream, and a transfer of several
 * windows, which must still arrive whole (the sender is never starved).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { counts } from '../../src/p2p/swarm/yamux-window.ts'
import { connect, startNode, stopAll } from '../helpers/p2p-nodes.ts'

const PROTOCOL = '/ipfs-accelerate-test/sink/1.0.0'

test('small messages get no window update each; a transfer of several windows still arrives whole', async () => {
  const a = await startNode()
  const b = await startNode()
  try {
    let received = 0
    let done: () => void = () => undefined
    let want = 0
    await b.handle(PROTOCOL, (stream) => {
      stream.addEventListener('message', (evt) => {
        received += evt.data.byteLength
        if (received >= want) done()
      })
    })
    await connect(a, b)
    const stream = await a.dialProtocol(b.peerId, PROTOCOL)
    const before = { ...counts }
    want = 200 * 100
    let arrived = new Promise<void>((resolve) => { done = resolve })
    for (let i = 0; i < 200; i++) {
      stream.send(new Uint8Array(100).fill(i))
      await new Promise((resolve) => setImmediate(resolve))
    }
    await arrived
    const passed = counts.passed - before.passed
    const skipped = counts.skipped - before.skipped
    assert.ok(skipped >= 190, `window updates skipped for small frames: ${skipped} (passed to yamux: ${passed})`)
    assert.ok(passed <= 10, `window updates sent for 20 kB in 200 frames: ${passed}`)
    // 4 MiB: 16 of yamux's initial 256 KiB windows; it only arrives if updates still go out at half a window.
    want = received + 4 * 1024 * 1024
    arrived = new Promise<void>((resolve) => { done = resolve })
    const chunk = new Uint8Array(64 * 1024)
    for (let i = 0; i < 64; i++) {
      if (!stream.send(chunk)) await new Promise((resolve) => stream.addEventListener('drain', resolve, { once: true }))
    }
    let timer: NodeJS.Timeout | undefined
    await Promise.race([arrived, new Promise((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`4 MiB did not arrive within 10 s: ${received - (want - 4 * 1024 * 1024)} bytes did`)) }, 10_000) })])
    clearTimeout(timer)
    assert.ok(counts.passed - before.passed - passed >= 8, 'updates went out as the big transfer used the window')
    await stream.close()
  } finally {
    await stopAll(a, b)
  }
})
