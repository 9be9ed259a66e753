/**
 * Fuzzing the gossip topics: malformed offers on the stand-in jobs topic and
 * malformed adverts on the adverts topic, published by real libp2p nodes
 * (signed, as every accepted message must be). The worker's topic
 * validators reject them, and gossipsub's scoring graylists a sender after
 * a few (src/p2p/swarm/libp2p.ts): from then on its messages are ignored unread. So the
 * inputs are spread over several identities, a fresh one every
 * `perIdentity` inputs, and the report says how many the worker's
 * validators saw (its `dropped` counters) and how many were ignored.
 */
import { createLibp2p } from 'libp2p'
import { multiaddr } from '@multiformats/multiaddr'
import { decodeMessage } from '../../../src/p2p/wire/codec.ts'
import { libp2pOptions } from '../../../src/p2p/swarm/libp2p.ts'
import { advertSchema, offerSchema } from '../../../src/p2p/wire/messages.ts'
import { ADVERTS_TOPIC, MAX_GOSSIP_BYTES, jobsTopic } from '../../../src/p2p/wire/protocol.ts'
import { Fuzzer, Tally } from './mutate.ts'

const STAND_IN_TOPIC = jobsTopic('stand-in')

export interface GossipTarget {
  addr: string
  /** The worker's dropped counters: offers (job worker) and adverts. */
  dropped: () => Promise<{ offers: number, adverts: number }>
}

export interface GossipReport {
  offers: Tally
  adverts: Tally
  identities: number
  /** Messages the worker's validators rejected (offers + adverts). */
  rejected: number
  /** Publishes our own node refused (e.g. over its size limit), not sent. */
  notSent: number
  ms: number
}

export function validOffer (n: number): Record<string, unknown> {
  return { v: 1, t: 'offer', jobId: `fuzzjob-${n.toString().padStart(6, '0')}`, traceId: 'fuzz', skillset: 'stand-in', model: 'demo/stand-in', cost: 1, inputBytes: 16, ttlMs: 5000, round: 0 }
}

export function validAdvert (addrs: string[]): Record<string, unknown> {
  return {
    v: 1,
    t: 'advert',
    bootId: 'fuzzboot01',
    seq: 0,
    ttlMs: 15_000,
    leaving: false,
    hardware: { cpu: { model: 'fuzz cpu', physicalCores: 1, logicalCores: 1, flags: ['avx2'] }, memoryTotalMB: 1024, gpus: [], providers: ['cpu'] },
    models: [{ id: 'fuzz/none', skillset: 'stand-in', provider: 'cpu', dtype: 'fp32', device: 'cpu', loaded: false, throughput: 1, queuedCost: 0 }],
    held: [],
    queueDepth: 0,
    addrs
  }
}

function isValid (bytes: Uint8Array, schema: typeof offerSchema | typeof advertSchema): boolean {
  try {
    decodeMessage(bytes, schema, MAX_GOSSIP_BYTES)
    return true
  } catch (err) {
    void err // malformed: what we want to send
    return false
  }
}

async function waitUntil (what: string, fn: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs
  while (!(await fn())) {
    if (performance.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Publish `count` malformed offers and `count` malformed adverts at the target. */
export async function fuzzGossip (target: GossipTarget, opts: { count: number, seed: number, perIdentity?: number }): Promise<GossipReport> {
  const t0 = performance.now()
  const f = new Fuzzer(opts.seed)
  const perIdentity = opts.perIdentity ?? 250
  const report: GossipReport = { offers: new Tally(), adverts: new Tally(), identities: 0, rejected: 0, notSent: 0, ms: 0 }
  const before = await target.dropped()
  const workerPeer = multiaddr(target.addr).getComponents().find((c) => c.name === 'p2p')?.value
  let n = 0
  while (report.offers.sent < opts.count || report.adverts.sent < opts.count) {
    const node = await createLibp2p(libp2pOptions({ listen: [], bootstrap: [], mdns: false }))
    report.identities++
    try {
      await node.dial(multiaddr(target.addr), { signal: AbortSignal.timeout(5000) })
      const { pubsub } = node.services
      pubsub.subscribe(STAND_IN_TOPIC)
      pubsub.subscribe(ADVERTS_TOPIC)
      await waitUntil('the worker subscribed on both topics', () => [STAND_IN_TOPIC, ADVERTS_TOPIC].every((t) => pubsub.getSubscribers(t).some((p) => p.toString() === workerPeer)), 5000)
      const ownAddr = `/ip4/127.0.0.1/tcp/1/p2p/${node.peerId.toString()}`
      for (let i = 0; i < perIdentity && (report.offers.sent < opts.count || report.adverts.sent < opts.count); i++) {
        const advert = report.adverts.sent < opts.count && (report.offers.sent >= opts.count || f.chance(0.5))
        const tally = advert ? report.adverts : report.offers
        const input = f.input(advert ? [validAdvert([ownAddr])] : [validOffer(n++), { ...validOffer(n++), skillset: 'embed' }])
        if (isValid(input.bytes, advert ? advertSchema : offerSchema)) { tally.validByChance++; continue }
        try {
          await pubsub.publish(advert ? ADVERTS_TOPIC : STAND_IN_TOPIC, input.bytes)
          tally.count(input.kind)
        } catch (err) {
          void err // our own gossipsub refused it (too large for its outbound limit): not an input the worker saw
          report.notSent++
        }
      }
      // let the last messages reach the worker before this identity disconnects
      await new Promise((resolve) => setTimeout(resolve, 200))
    } finally {
      await node.stop()
    }
  }
  let after = before
  const expect = report.offers.sent + report.adverts.sent
  // settle: the counters stop moving (graylisted messages never arrive)
  for (let last = -1, i = 0; i < 50; i++) {
    after = await target.dropped()
    const seen = after.offers - before.offers + after.adverts - before.adverts
    if (seen >= expect || seen === last) break
    last = seen
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  report.offers.rejected = after.offers - before.offers
  report.adverts.rejected = after.adverts - before.adverts
  report.rejected = report.offers.rejected + report.adverts.rejected
  report.ms = Math.round(performance.now() - t0)
  return report
}
