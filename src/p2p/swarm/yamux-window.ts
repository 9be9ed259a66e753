/**
 * Yamux window updates at half the window, not after every frame.
 *
 * @chainsafe/libp2p-yamux 8 answers every data frame it receives with a
 * window-update frame (YamuxStream.handleData -> sendWindowUpdate), so each
 * small message — an offer, a bid, a gossip RPC — costs a second frame back:
 * its own yamux header, Noise encryption and socket write on one side, a
 * decryption and a frame parse on the other. In a profile of idle nodes the
 * updates were an eighth of their CPU, and they double the frames of every
 * job. go-yamux and rust-yamux send the update once half the receive window
 * is used; this does the same: while a stream is established and more than
 * half of its window is still free, no update goes out. Everything else
 * (the ACK flag on a new inbound stream, a paused stream, the window's
 * growth) stays the library's own code, which runs once the threshold is
 * crossed. The sender never stalls: it still has half a window (128 KiB at
 * least) when the update is sent.
 *
 * Applied once, when this module loads (src/p2p/swarm/libp2p.ts imports it).
 * The dependency is pinned; a version whose stream lacks what this relies on
 * fails at start, not silently.
 */
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'

interface WindowFields { state: StreamState, recvWindow: number, recvWindowCapacity: number }

/** How many window-update decisions were skipped by the half-window rule, and how many went to the library (for tests). */
export const counts = { skipped: 0, passed: 0 }

const proto = YamuxStream.prototype as unknown as { sendWindowUpdate?: () => void, __halfWindowUpdates?: true }
const original = proto.sendWindowUpdate
if (typeof original !== 'function' || StreamState.Established === undefined) {
  throw new Error('@chainsafe/libp2p-yamux changed: YamuxStream.sendWindowUpdate or StreamState.Established is gone; update src/p2p/swarm/yamux-window.ts')
}
if (proto.__halfWindowUpdates !== true) {
  proto.__halfWindowUpdates = true
  proto.sendWindowUpdate = function (this: WindowFields) {
    const quiet = this.state === StreamState.Established || this.state === StreamState.SYNSent
    if (quiet && this.recvWindowCapacity > this.recvWindow / 2) { counts.skipped++; return }
    counts.passed++
    original.call(this)
  }
}
