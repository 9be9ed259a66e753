/**
 * A client of the swarm: libp2p without Helia, listening nowhere, that finds
 * workers (bootstrap addresses, the local node's node.json, mDNS), learns
 * them from adverts, and submits jobs through the job client.
 */
import { createLibp2p } from 'libp2p'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { forComponent } from '../logger.ts'
import { Adverts } from '../p2p/adverts.ts'
import { autoDial } from '../p2p/dialer.ts'
import type { AutoDialer } from '../p2p/dialer.ts'
import { JobClient } from '../p2p/job-client.ts'
import type { JobRequest, JobResponse } from '../p2p/job-client.ts'
import { libp2pOptions } from '../p2p/libp2p.ts'
import { jobsTopic } from '../p2p/protocol.ts'
import type { SkillsetName } from '../interfaces/index.ts'
import type { NodeServices } from '../p2p/libp2p.ts'

const log = forComponent('ipfs-accelerate:client')

export interface ClientNodeInit {
  bootstrap: string[]
  mdns: boolean
  bidWindowMs?: number
}

export class ClientNode {
  private readonly init: ClientNodeInit
  private libp2p: Libp2p<NodeServices> | undefined
  private client: JobClient | undefined
  private adverts: Adverts | undefined
  private dialer: AutoDialer | undefined

  constructor (init: ClientNodeInit) {
    this.init = init
  }

  async start (): Promise<void> {
    if (this.libp2p !== undefined) return
    const libp2p = await createLibp2p(libp2pOptions({ listen: [], bootstrap: [], mdns: this.init.mdns }))
    this.libp2p = libp2p
    try {
      this.dialer = autoDial(libp2p, log)
      this.adverts = new Adverts({ libp2p, log, onAdvert: (p) => { this.dialer?.dial(p.advert.addrs.map((a) => multiaddr(a))) } })
      this.adverts.start()
      this.client = new JobClient({ libp2p, log, adverts: this.adverts, ...(this.init.bidWindowMs === undefined ? {} : { bidWindowMs: this.init.bidWindowMs }) })
      await this.client.start()
      await Promise.all(this.init.bootstrap.map(async (addr) => {
        try {
          await libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(5000) })
        } catch (err) {
          log.warn(`could not reach ${addr}`, { error: (err as Error).message })
        }
      }))
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async submit (req: JobRequest): Promise<JobResponse> {
    if (this.client === undefined) await this.start()
    return await this.client!.submit(req)
  }

  /** Live workers heard in adverts. */
  workers (): ReturnType<Adverts['peers']> {
    return this.adverts?.peers() ?? []
  }

  /**
   * Live workers heard in adverts that this client is connected to (only those
   * can bid to it); with a skillset, only those whose subscription to its job
   * topic this client has seen (offers reach those directly, not through relays).
   */
  connectedWorkers (skillset?: SkillsetName): ReturnType<Adverts['peers']> {
    const peers = new Set((this.libp2p?.getPeers() ?? []).map(String))
    const subscribed = skillset === undefined ? undefined : new Set((this.libp2p?.services.pubsub.getSubscribers(jobsTopic(skillset)) ?? []).map(String))
    return this.workers().filter((w) => peers.has(w.peerId) && (subscribed === undefined || subscribed.has(w.peerId)))
  }

  async stop (): Promise<void> {
    this.dialer?.stop()
    await this.client?.stop()
    await this.adverts?.stop()
    await this.libp2p?.stop()
    this.libp2p = undefined
    this.client = undefined
  }
}
