/**
 * A client that speaks only job protocol 1.0.0 (as a node from before
 * streaming does), run as its own process by test/integration/streaming:
 * `node old-client.ts MULTIADDR TEXT` embeds TEXT through the swarm and
 * prints {"worker","dims","protocol"} as JSON.
 */
import { ClientNode } from '../../src/node/client-node.ts'
import { JOB_PROTOCOL } from '../../src/p2p/wire/protocol.ts'

const [addr, text] = process.argv.slice(2)
if (addr === undefined || text === undefined) throw new Error('usage: old-client.ts MULTIADDR TEXT')
const client = new ClientNode({ bootstrap: [addr], mdns: false, jobProtocols: [JOB_PROTOCOL] })
try {
  await client.start()
  const res = await client.submit({ skillset: 'embed', input: { texts: [text] }, cost: 1, timeoutMs: 30_000 })
  const links = (client as unknown as { links: { find: (p: string) => { stream: { protocol: string } } | undefined } }).links
  process.stdout.write(JSON.stringify({ worker: res.worker, dims: res.output.dims, protocol: links.find(res.worker)?.stream.protocol }) + '\n')
} finally {
  await client.stop()
}
