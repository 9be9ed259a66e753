/**
 * A content store serving its data dir to peers, as its own process, for
 * tests: libp2p on 127.0.0.1 (mDNS off), the block exchange and bitswap.
 * Prints one JSON line { peerId, addr } when ready; stops on SIGTERM or
 * when stdin closes. (The worker node does this too; this helper needs no
 * models to load.)
 */
import { parseArgs } from 'node:util'
import { libp2pOptions } from '../../src/p2p/swarm/libp2p.ts'
import { createContentStore } from '../../src/store/content-store.ts'

const { values } = parseArgs({ options: { 'data-dir': { type: 'string' } } })
const dataDir = values['data-dir']
if (dataDir === undefined) throw new Error('usage: store-peer.ts --data-dir DIR')
const store = await createContentStore({ dataDir, libp2p: libp2pOptions({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false }) })
await store.start()
const libp2p = store.libp2p
if (libp2p === undefined) throw new Error('no libp2p')
process.stdout.write(JSON.stringify({ peerId: libp2p.peerId.toString(), addr: libp2p.getMultiaddrs()[0]?.toString() }) + '\n')
let stopping = false
const stop = async (): Promise<void> => {
  if (stopping) return
  stopping = true
  await store.stop()
  process.exit(0)
}
process.on('SIGTERM', () => { void stop() })
process.stdin.on('end', () => { void stop() })
process.stdin.resume()
