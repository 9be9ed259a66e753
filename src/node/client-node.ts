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
import { Adverts } from '../p2p/swarm/adverts.ts'
import type { Serving } from '../p2p/swarm/adverts.ts'
import { JobClient } from '../p2p/jobs/client.ts'
import type { JobClientInit, JobRequest, JobResponse } from '../p2p/jobs/client.ts'
import { autoDial } from '../p2p/swarm/dialer.ts'
import type { AutoDialer } from '../p2p/swarm/dialer.ts'
import { JobLinks } from '../p2p/jobs/link.ts'
import { libp2pOptions } from '../p2p/swarm/libp2p.ts'
import type { SkillsetName } from '../interfaces/index.ts'
import type { NodeServices } from '../p2p/swarm/libp2p.ts'
import { frameLimits } from './frame-limits.ts'
import { AttachmentServer } from '../store/attachments.ts'

const log = forComponent('ipfs-accelerate:client')

export interface ClientNodeInit {
  bootstrap: string[]
  mdns: boolean
  /** How long to keep trying the bootstrap addresses (default 10 s). */
  joinMs?: number
  /** The client's libp2p identity (default: a new one each start); workers' allow lists name it. */
  privateKey?: PrivateKey
  /** A private swarm's pre-shared key (32 bytes, src/p2p/trust/swarm-key.ts); without it only open swarms can be joined. */
  swarmKey?: Uint8Array
  /** Job client tuning (tests and benchmarks). */
  jobs?: Omit<JobClientInit, 'libp2p' | 'links' | 'adverts' | 'limits' | 'log'>
  /** Job protocols to speak (default both, newest first); tests pass only 1.0.0 to play an old client. */
  jobProtocols?: string[]
}

/** One partial of a streaming job, as `submitStream` yields it (wire form; the skillset's decodePartial reads it). */
export interface StreamedPartial { seq: number, partial: Record<string, unknown> }

/** A streaming job in flight: its partials as they come, and its result once every partial was read. */
export interface StreamingSubmission {
  partials: AsyncIterableIterator<StreamedPartial>
  result: Promise<JobResponse>
}

export class ClientNode {
  private readonly init: ClientNodeInit
  private libp2p: Libp2p<NodeServices> | undefined
  private client: JobClient | undefined
  private adverts: Adverts | undefined
  private links: JobLinks | undefined
  private dialer: AutoDialer | undefined
  private attachments: AttachmentServer | undefined

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
      this.links = new JobLinks({ libp2p, log, ...(this.init.jobProtocols === undefined ? {} : { protocols: this.init.jobProtocols }) })
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

  /** Submit a job; a streaming one hands each partial to `req.stream.onPartial` (awaited: a slow callback pauses the job). */
  async submit (req: JobRequest): Promise<JobResponse> {
    if (this.client === undefined) await this.start()
    return await this.client!.submit(req)
  }

  /**
   * Submit a streaming job and read its partials as an async iterator. The
   * job waits for the reader (one partial is handed over at a time, so a
   * slow reader pauses it on the worker); leaving the loop early cancels
   * it. The iterator ends when the job does (or throws its error);
   * `result` resolves after the last partial was read.
   */
  submitStream (req: Omit<JobRequest, 'stream'> & { window?: number }): StreamingSubmission {
    const cancel = new AbortController()
    let waiting: ((v: IteratorResult<StreamedPartial>) => void) | undefined
    let failWaiting: ((e: Error) => void) | undefined
    let handOver: { item: StreamedPartial, taken: () => void } | undefined
    let ended: { error?: Error } | undefined
    const onPartial = async (partial: Record<string, unknown>, seq: number): Promise<void> => {
      await new Promise<void>((resolve) => {
        const item = { seq, partial }
        if (waiting !== undefined) { const w = waiting; waiting = undefined; failWaiting = undefined; w({ value: item, done: false }); resolve(); return }
        handOver = { item, taken: resolve }
      })
    }
    const { window, ...rest } = req
    const signal = req.signal === undefined ? cancel.signal : AbortSignal.any([req.signal, cancel.signal])
    const result = this.submit({ ...rest, signal, stream: { onPartial, ...(window === undefined ? {} : { window }) } })
    const finish = (error?: Error): void => {
      ended = error === undefined ? {} : { error }
      if (waiting !== undefined) {
        if (error === undefined) waiting({ value: undefined, done: true })
        else failWaiting?.(error)
        waiting = undefined
        failWaiting = undefined
      }
    }
    result.then(() => { finish() }, (err: unknown) => { finish(err instanceof Error ? err : new Error(errorMessage(err))) })
    const partials: AsyncIterableIterator<StreamedPartial> = {
      [Symbol.asyncIterator] () { return this },
      next: async () => {
        if (handOver !== undefined) { const h = handOver; handOver = undefined; h.taken(); return { value: h.item, done: false } }
        if (ended !== undefined) {
          if (ended.error !== undefined) throw ended.error
          return { value: undefined, done: true }
        }
        return await new Promise<IteratorResult<StreamedPartial>>((resolve, reject) => { waiting = resolve; failWaiting = reject })
      },
      return: async () => {
        if (ended === undefined) cancel.abort(new Error('the reader stopped reading the stream'))
        return { value: undefined, done: true }
      }
    }
    // The caller may read only `result`: its rejection is theirs to handle; the iterator's copy is not unhandled.
    result.catch(() => undefined)
    return { partials, result }
  }

  /**
   * Attach a file too large to travel inside a job (an image over the
   * inline limit): this client serves it to the worker that runs the job,
   * which fetches it by the returned `{ cid, size }` (src/store/attachments.ts).
   * `detach` once the job is over.
   */
  async attach (bytes: Uint8Array): Promise<{ cid: string, size: number }> {
    if (this.libp2p === undefined) await this.start()
    this.attachments ??= new AttachmentServer(this.libp2p!)
    return await this.attachments.add(bytes)
  }

  async detach (cid: string): Promise<void> {
    await this.attachments?.remove(cid)
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
    await this.attachments?.stop()
    this.attachments = undefined
    this.client?.stop()
    await this.links?.stop()
    await this.adverts?.stop()
    await this.libp2p?.stop()
    this.libp2p = undefined
    this.client = undefined
  }
}
