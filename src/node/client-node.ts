/**
 * A client of the swarm: libp2p without Helia, listening nowhere. It joins
 * through its bootstrap addresses (or the local node's node.json, or mDNS),
 * asks each peer it connects to for its directory of live workers, learns
 * them from adverts, and submits jobs through the job client, which dials
 * the few workers it offers each job to (bounded) rather than every worker
 * it hears of.
 */
import { createLibp2p } from 'libp2p'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { errorMessage } from '../errors.ts'
import { forComponent } from '../logger.ts'
import { Adverts } from '../p2p/adverts.ts'
import type { Serving } from '../p2p/adverts.ts'
import { JobClient } from '../p2p/job-client.ts'
import type { JobClientInit, JobRequest, JobResponse } from '../p2p/job-client.ts'
import { autoDial } from '../p2p/dialer.ts'
import type { AutoDialer } from '../p2p/dialer.ts'
import { JobLinks } from '../p2p/job-link.ts'
import { libp2pOptions } from '../p2p/libp2p.ts'
import type { SkillsetName } from '../interfaces/index.ts'
import type { NodeServices } from '../p2p/libp2p.ts'
import { frameLimits } from './frame-limits.ts'

const log = forComponent('ipfs-accelerate:client')

export interface ClientNodeInit {
  bootstrap: string[]
  mdns: boolean
  /** How long to keep trying the bootstrap addresses (default 10 s). */
  joinMs?: number
  /** The client's libp2p identity (default: a new one each start); workers' allow lists name it. */
  privateKey?: PrivateKey
  /** A private swarm's pre-shared key (32 bytes, src/p2p/swarm-key.ts); without it only open swarms can be joined. */
  swarmKey?: Uint8Array
  /** Job client tuning (tests and benchmarks). */
  jobs?: Omit<JobClientInit, 'libp2p' | 'links' | 'adverts' | 'limits' | 'log'>
}

export class ClientNode {
  private readonly init: ClientNodeInit
  private libp2p: Libp2p<NodeServices> | undefined
  private client: JobClient | undefined
  private adverts: Adverts | undefined
  private links: JobLinks | undefined
  private dialer: AutoDialer | undefined

  constructor (init: ClientNodeInit) {
    this.init = init
  }

  async start (): Promise<void> {
    if (this.libp2p !== undefined) return
    const libp2p = await createLibp2p(libp2pOptions({
      listen: [],
      bootstrap: [],
      mdns: this.init.mdns,
      ...(this.init.privateKey === undefined ? {} : { privateKey: this.init.privateKey }),
      ...(this.init.swarmKey === undefined ? {} : { swarmKey: this.init.swarmKey })
    }))
    this.libp2p = libp2p
    try {
      // Adverts only fill the table: the job client dials the few workers it offers a job to.
      this.adverts = new Adverts({ libp2p, log })
      await this.adverts.start()
      this.links = new JobLinks({ libp2p, log })
      await this.links.start()
      this.client = new JobClient({ libp2p, links: this.links, adverts: this.adverts, limits: frameLimits, log, ...this.init.jobs })
      this.client.start()
      libp2p.addEventListener('peer:connect', (evt) => { void this.adverts?.learnFrom(evt.detail) })
      // mDNS finds peers; libp2p 3 does not dial them by itself.
      this.dialer = autoDial(libp2p, log)
      await this.join()
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /**
   * Dial the bootstrap addresses; retry those that fail, with back-off, until
   * one answers or `joinMs` passes (a burst of clients can find a node busy).
   */
  private async join (): Promise<void> {
    const libp2p = this.libp2p!
    const until = performance.now() + (this.init.joinMs ?? 10_000)
    let pending = [...this.init.bootstrap]
    for (let attempt = 0; pending.length > 0; attempt++) {
      const failed: string[] = []
      await Promise.all(pending.map(async (addr) => {
        try {
          const conn = await libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(Math.round(Math.max(500, until - performance.now()))) })
          await this.adverts?.learnFrom(conn.remotePeer)
        } catch (err) {
          failed.push(addr)
          log.debug(`could not reach ${addr} (attempt ${attempt + 1})`, { error: errorMessage(err) })
        }
      }))
      if (libp2p.getPeers().length > 0) {
        for (const addr of failed) log.warn(`could not reach ${addr}`)
        return
      }
      if (performance.now() + 250 * 2 ** attempt >= until) {
        for (const addr of failed) log.warn(`could not reach ${addr} within ${this.init.joinMs ?? 10_000} ms`)
        return
      }
      await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt))
      pending = failed
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

  /** Workers that serve a skillset's model (`model` absent: any), from adverts and directory hints. */
  serving (skillset: SkillsetName, model?: string): Serving[] {
    return this.adverts?.serving(skillset, model) ?? []
  }

  /** This client's peer id (once started). */
  get peerId (): string | undefined {
    return this.libp2p?.peerId.toString()
  }

  /** Counters of the job client (rounds, offers, losses, ...). */
  get stats (): JobClient['stats'] | undefined {
    return this.client?.stats
  }

  async stop (): Promise<void> {
    this.dialer?.stop()
    this.client?.stop()
    await this.links?.stop()
    await this.adverts?.stop()
    await this.libp2p?.stop()
    this.libp2p = undefined
    this.client = undefined
  }
}
