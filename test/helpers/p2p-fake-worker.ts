/**
 * A fake worker for the job client's tests: a real libp2p node on
 * 127.0.0.1 that advertises models through Adverts (gossip and directory)
 * and speaks the job protocol by hand through JobLinks and a LinkHandler,
 * so a test can script a liar, a wrong bidder or a late answer. Also the
 * client the tests drive: JobLinks + Adverts + JobClient on one node that
 * listens nowhere, as a ClientNode.
 */
import { frameLimits } from '../../src/node/frame-limits.ts'
import { Adverts } from '../../src/p2p/swarm/adverts.ts'
import { JobClient } from '../../src/p2p/jobs/client.ts'
import type { JobClientInit } from '../../src/p2p/jobs/client.ts'
import { JobLinks } from '../../src/p2p/jobs/link.ts'
import type { JobLink } from '../../src/p2p/jobs/link.ts'
import type { BidTerms } from '../../src/p2p/jobs/worker.ts'
import type { AdvertModel, Assign, LinkFrame, Offer } from '../../src/p2p/wire/messages.ts'
import { jobsTopic, PROTOCOL_VERSION } from '../../src/p2p/wire/protocol.ts'
import { advertBody, connect, FrameLog, keyOf, silentLog, sleep, standInModel, startNode, stopAll, waitFor } from './p2p-nodes.ts'
import { hashInput, hashOutput, signResult } from '../../src/p2p/trust/provenance.ts'
import type { Node } from './p2p-nodes.ts'

export interface FakeWorkerInit {
  /** What it advertises (default: one loaded stand-in model `test/model`). */
  models?: AdvertModel[]
  /** Its bid on an offer; undefined: answer `busy`. Default: the advertised model, queuedCost 0. */
  bid?: (offer: Offer) => Partial<BidTerms> | undefined
  /** Delay before bidding (ms). */
  bidDelayMs?: number
  /** What it does with a lease; default: answer with `{ echo: input.x, by: name }`. */
  onAssign?: (w: FakeWorker, link: JobLink, a: Assign) => void | Promise<void>
  /** Subscribe to the stand-in jobs topic, as a real worker does (default false). */
  subscribe?: boolean
  name?: string
  /** Job protocols its links speak (default both; ['/ipfs-accelerate/job/1.0.0'] makes an old peer). */
  protocols?: string[]
}

export class FakeWorker {
  readonly node: Node
  readonly links: JobLinks
  readonly adverts: Adverts
  readonly log = new FrameLog()
  readonly init: FakeWorkerInit
  readonly name: string

  private constructor (node: Node, init: FakeWorkerInit) {
    this.node = node
    this.init = init
    this.name = init.name ?? 'fake'
    this.links = new JobLinks({ libp2p: node, log: silentLog, ...(init.protocols === undefined ? {} : { protocols: init.protocols }) })
    const models = init.models ?? [standInModel('test/model')]
    this.adverts = new Adverts({ libp2p: node, log: silentLog, intervalMs: 1000, build: () => advertBody(node, models) })
  }

  static async start (init: FakeWorkerInit = {}): Promise<FakeWorker> {
    const w = new FakeWorker(await startNode(), init)
    try {
      w.log.limit = () => 64 * 1024
      w.log.onFrame = (link, f) => { w.onFrame(link, f) }
      w.links.setHandler('worker', w.log)
      await w.links.start()
      await w.adverts.start()
      if (init.subscribe === true) w.node.services.pubsub.subscribe(jobsTopic('stand-in'))
    } catch (err) {
      await w.stop()
      throw err
    }
    return w
  }

  get id (): string { return this.node.peerId.toString() }
  get assigns (): Assign[] { return this.log.of('assign') }

  private onFrame (link: JobLink, f: LinkFrame): void {
    if (f.t === 'offer') {
      void (async () => {
        if (this.init.bidDelayMs !== undefined) await sleep(this.init.bidDelayMs)
        const model = this.init.models?.[0] ?? standInModel('test/model')
        const terms = this.init.bid === undefined ? {} : this.init.bid(f)
        if (terms === undefined) { await this.send(link, { v: PROTOCOL_VERSION, t: 'busy', jobId: f.jobId, reason: 'not for me' }); return }
        await this.send(link, { v: PROTOCOL_VERSION, t: 'bid', jobId: f.jobId, model: model.id, provider: model.provider, dtype: model.dtype, device: model.device, queuedCost: 0, ...terms })
      })()
    } else if (f.t === 'assign') {
      const run = this.init.onAssign ?? ((w, l, a) => { void w.answer(l, a) })
      void Promise.resolve(run(this, link, f))
    }
  }

  /** Send a frame, swallowing a closed link (the test asserts on what arrives). */
  async send (link: JobLink, f: LinkFrame): Promise<void> {
    await link.send(f, 64 * 1024).catch(() => undefined)
  }

  /** Answer with a result signed as a real worker signs it; `tamper` changes the output after signing. */
  async answer (link: JobLink, a: Assign, output: Record<string, unknown> = { echo: a.input.x, by: this.name }, tamper?: (o: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
    const model = a.model ?? 'test/model'
    const claim = { modelCid: 'bafy-test', provider: 'cpu', dtype: 'fp32' }
    const inputHash = hashInput(a.input, a.params)
    const signature = await signResult(keyOf(this.node), { jobId: a.jobId, client: link.peer, worker: this.node.peerId.toString(), model, ...claim, inputHash, outputHash: hashOutput(output) })
    await this.send(link, { v: PROTOCOL_VERSION, t: 'result', jobId: a.jobId, model, output: tamper === undefined ? output : tamper(output), timings: { queueMs: 0, runMs: 1, batchSize: 1 }, provenance: { ...claim, inputHash, signature } })
  }

  async fail (link: JobLink, a: Assign, code: string, message: string): Promise<void> {
    await this.send(link, { v: PROTOCOL_VERSION, t: 'error', jobId: a.jobId, code, message })
  }

  async stop (): Promise<void> {
    await stopAll(this.adverts, this.links)
    await stopAll(this.node)
  }
}

export interface TestClient { node: Node, links: JobLinks, adverts: Adverts, client: JobClient, stop: () => Promise<void> }

/** JobLinks + Adverts + JobClient on a node that listens nowhere, joined to `workers` (directory fetched from each, as ClientNode does). */
export async function startClient (workers: Array<{ node: Node }>, tuning: Partial<Omit<JobClientInit, 'libp2p' | 'links' | 'adverts' | 'limits' | 'log'>> = {}, protocols?: string[]): Promise<TestClient> {
  const node = await startNode({ listen: false })
  const adverts = new Adverts({ libp2p: node, log: silentLog })
  const links = new JobLinks({ libp2p: node, log: silentLog, ...(protocols === undefined ? {} : { protocols }) })
  // The auction's tests script bids: the one-round-trip path is off unless a test turns it on (job-fast-path.test.ts).
  const client = new JobClient({ libp2p: node, links, adverts, limits: frameLimits, log: silentLog, fastPath: false, ...tuning })
  const stop = async (): Promise<void> => {
    client.stop()
    await stopAll(links, adverts)
    await stopAll(node)
  }
  try {
    await adverts.start()
    await links.start()
    client.start()
    for (const w of workers) {
      await connect(node, w.node)
      await adverts.fetchDirectory(w.node.peerId, AbortSignal.timeout(5000))
    }
  } catch (err) {
    await stop()
    throw err
  }
  return { node, links, adverts, client, stop }
}

/** Wait until the client knows each worker as serving `model`. */
export async function knows (c: TestClient, workers: FakeWorker[], model = 'test/model'): Promise<void> {
  await waitFor(`the client to know ${workers.length} worker(s) serving ${model}`, () => {
    const ids = new Set(c.adverts.serving('stand-in', model).map((s) => s.peerId))
    return workers.every((w) => ids.has(w.id))
  })
}
