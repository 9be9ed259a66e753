/**
 * Adverts: each worker's heartbeat on the adverts topic (hardware summary,
 * models with provider and dtype, queue depth) with a time-to-live, a fresh
 * one whenever a new peer subscribes, and a final "leaving" advert on stop.
 * Every node, client or worker, keeps the table of live adverts it heard.
 */
import type { Message } from '@libp2p/gossipsub'
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from '../logger.ts'
import { decodeMessage, encodeMessage } from './codec.ts'
import type { NodeServices } from './libp2p.ts'
import { advertSchema } from './messages.ts'
import type { Advert } from './messages.ts'
import { ADVERTS_TOPIC, MAX_GOSSIP_BYTES, PROTOCOL_VERSION } from './protocol.ts'

export type AdvertBody = Omit<Advert, 'v' | 't' | 'seq' | 'ttlMs' | 'leaving'>

export interface PeerAdvert { peerId: string, advert: Advert, expiresAt: number }

export interface AdvertsInit {
  libp2p: Libp2p<NodeServices>
  log: Logger
  /** What to advertise; absent for a client that only listens. */
  build?: () => AdvertBody
  intervalMs?: number
  /** Called for each fresh advert (e.g. to dial the sender). */
  onAdvert?: (peer: PeerAdvert) => void
  /** Called when a peer says it leaves. */
  onLeave?: (peerId: string) => void
}

export class Adverts {
  private readonly init: AdvertsInit
  private readonly table = new Map<string, PeerAdvert>()
  private timer: NodeJS.Timeout | undefined
  private debounce: NodeJS.Timeout | undefined
  private seq = 0
  private started = false
  dropped = 0
  private readonly onMessage = (evt: CustomEvent<Message>): void => { this.receive(evt.detail) }
  private readonly onSubscription = (): void => { this.publishSoon() }

  constructor (init: AdvertsInit) {
    this.init = init
  }

  get intervalMs (): number { return this.init.intervalMs ?? 5000 }

  start (): void {
    if (this.started) return
    this.started = true
    const { pubsub } = this.init.libp2p.services
    pubsub.subscribe(ADVERTS_TOPIC)
    pubsub.addEventListener('message', this.onMessage)
    if (this.init.build !== undefined) {
      pubsub.addEventListener('subscription-change', this.onSubscription)
      this.timer = setInterval(() => { void this.publish(false) }, this.intervalMs)
      this.timer.unref()
      this.publishSoon()
    }
  }

  /** Publish the "leaving" advert, then stop listening. */
  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    clearTimeout(this.debounce)
    const { pubsub } = this.init.libp2p.services
    pubsub.removeEventListener('subscription-change', this.onSubscription)
    if (this.init.build !== undefined) await this.publish(true)
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.unsubscribe(ADVERTS_TOPIC)
  }

  /** Publish soon (debounced), e.g. when a peer joins or what we serve changed. */
  publishSoon (): void {
    if (this.init.build === undefined || this.debounce !== undefined) return
    this.debounce = setTimeout(() => {
      this.debounce = undefined
      void this.publish(false)
    }, 50)
    this.debounce.unref()
  }

  private async publish (leaving: boolean): Promise<void> {
    const build = this.init.build
    if (build === undefined) return
    const advert: Advert = { v: PROTOCOL_VERSION, t: 'advert', seq: this.seq++, ttlMs: this.intervalMs * 3, leaving, ...build() }
    try {
      await this.init.libp2p.services.pubsub.publish(ADVERTS_TOPIC, encodeMessage(advert, MAX_GOSSIP_BYTES))
    } catch (err) {
      this.init.log.warn('could not publish an advert', { error: (err as Error).message })
    }
  }

  private receive (msg: Message): void {
    if (msg.topic !== ADVERTS_TOPIC) return
    if (msg.type !== 'signed') { this.dropped++; return }
    let advert: Advert
    try {
      advert = decodeMessage(msg.data, advertSchema, MAX_GOSSIP_BYTES)
    } catch (err) {
      this.dropped++
      this.init.log.debug('dropped a malformed advert', { from: msg.from.toString(), error: (err as Error).message })
      return
    }
    const peerId = msg.from.toString()
    if (advert.leaving) {
      this.table.delete(peerId)
      this.init.onLeave?.(peerId)
      return
    }
    const prev = this.table.get(peerId)
    if (prev !== undefined && prev.advert.seq > advert.seq) return
    const entry = { peerId, advert, expiresAt: Date.now() + advert.ttlMs }
    this.table.set(peerId, entry)
    this.init.onAdvert?.(entry)
  }

  /** Live adverts, expired ones pruned. */
  peers (): PeerAdvert[] {
    const now = Date.now()
    for (const [id, p] of this.table) if (p.expiresAt <= now) this.table.delete(id)
    return [...this.table.values()]
  }
}
