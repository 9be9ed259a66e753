import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { AttachmentServer, fetchAttachment } from '../../src/store/attachments.ts'
import { resolveImages } from '../../src/node/image-inputs.ts'
import { connect, startNode, stopAll, waitFor } from '../helpers/p2p-nodes.ts'
import type { Node } from '../helpers/p2p-nodes.ts'
import { photo } from '../helpers/images.ts'
import type { ImageInputs, ImageSource } from '../../src/interfaces/index.ts'

/**
 * A worker and a client serving attachments: the client listens nowhere (as
 * a ClientNode does) and dials the worker; the worker fetches back over
 * that connection.
 */
async function pair (t: TestContext): Promise<{ worker: Node, client: Node, server: AttachmentServer }> {
  const worker = await startNode()
  const client = await startNode({ listen: false })
  const server = new AttachmentServer(client)
  t.after(async () => { await server.stop(); await stopAll(client, worker) })
  await connect(client, worker)
  await waitFor('the worker to see the client\'s connection', () => worker.getConnections(client.peerId).length > 0)
  return { worker, client, server }
}

test('a worker fetches a client\'s attachment by CID from that client, and nothing else', async (t) => {
  const { worker, client, server } = await pair(t)

  const big = new Uint8Array(randomBytes(5 * 1024 * 1024 + 123))
  const ref = await server.add(big)
  assert.equal(ref.size, big.byteLength)
  const got = await fetchAttachment(worker, ref, client.peerId, { maxBytes: 64 * 1024 * 1024, signal: AbortSignal.timeout(20_000) })
  assert.deepEqual(Buffer.from(got).equals(Buffer.from(big)), true)

  // A job that declares another size than the file's is refused.
  await assert.rejects(fetchAttachment(worker, { ...ref, size: ref.size - 1 }, client.peerId, { maxBytes: 64 * 1024 * 1024 }), { code: 'ERR_INVALID_INPUT' })
  // Over the worker's limit: refused before anything is fetched.
  await assert.rejects(fetchAttachment(worker, ref, client.peerId, { maxBytes: 1024 }), { code: 'ERR_INPUT_TOO_LARGE' })
  // Once detached, the client serves it no more.
  await server.remove(ref.cid)
  await assert.rejects(fetchAttachment(worker, ref, client.peerId, { maxBytes: 64 * 1024 * 1024, signal: AbortSignal.timeout(20_000) }), (err: Error & { code?: string }) => err.code === 'ERR_INVALID_INPUT' && /did not serve|cannot fetch/.test(err.message))
})

test('resolveImages inlines images sent by CID and checks every image against the limits', async (t) => {
  const { worker, client, server } = await pair(t)
  interface In { images: ImageSource[] }
  const hooks: ImageInputs<In> = { list: (i) => i.images, withBytes: (i, bytes) => ({ ...i, images: bytes.map((b) => ({ bytes: b })) }) }
  const jpeg = photo('chelsea.jpg')
  const webp = photo('rocket.webp')
  const ref = await server.add(jpeg)
  const limits = { maxBytes: 1024 * 1024, maxPixels: 1e7, maxSide: 4096 }
  const deps = { libp2p: worker, client: client.peerId.toString(), limits, signal: AbortSignal.timeout(20_000) }
  const out = await resolveImages(hooks, { images: [{ bytes: webp }, ref] }, deps)
  assert.deepEqual(out.images.map((s) => 'bytes' in s ? s.bytes.byteLength : -1), [webp.byteLength, jpeg.byteLength])
  assert.ok(Buffer.from((out.images[1] as { bytes: Uint8Array }).bytes).equals(Buffer.from(jpeg)))
  // A CID that turns out not to be an image is refused once fetched.
  const notImage = await server.add(new Uint8Array(randomBytes(2000)))
  await assert.rejects(resolveImages(hooks, { images: [notImage] }, deps), { code: 'ERR_INVALID_INPUT' })
  // The node's byte limit applies to inline images too.
  await assert.rejects(resolveImages(hooks, { images: [{ bytes: jpeg }] }, { ...deps, limits: { ...limits, maxBytes: 1000 } }), { code: 'ERR_INPUT_TOO_LARGE' })
  // No client to fetch from: a clear error.
  await assert.rejects(resolveImages(hooks, { images: [ref] }, { ...deps, client: undefined }), /send it inline/)
})
