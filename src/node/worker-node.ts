/**
 * WorkerNode composes everything a worker is: configuration, hardware plan,
 * served models (inference threads + batching queues), Helia with libp2p,
 * the job bus, adverts and the HTTP gateway. It owns start and stop.
 *
 * Shutdown order: stop taking jobs → drain running jobs → HTTP → inference
 * threads → Helia (and its libp2p).
 */
import { mkdir } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'
import { batchDependenceReason, detectHardware, placement, planAll, summarizeHardware } from '../../hardware/index.ts'
import type { Placement } from '../../hardware/index.ts'
import type { HardwareProfile } from '../../hardware/index.ts'
import type { NodeConfig } from '../config/schema.ts'
import { ConfigError, errorMessage, InvalidInputError, ModelNotFoundError, ProtocolError } from '../errors.ts'
import { isStreamingSkillset } from '../interfaces/index.ts'
import type { HardwareSummary, ModelEntry, SkillsetName, StreamingSkillset } from '../interfaces/index.ts'
import { StreamingQueue } from '../scheduler/streaming-queue.ts'
import { forComponent } from '../logger.ts'
import { loadCatalog } from '../models/catalog.ts'
import { Adverts } from '../p2p/swarm/adverts.ts'
import type { AdvertBody } from '../p2p/swarm/adverts.ts'
import { autoDial } from '../p2p/swarm/dialer.ts'
import type { AutoDialer } from '../p2p/swarm/dialer.ts'
import { loadOrCreateIdentity } from '../p2p/trust/identity.ts'
import { libp2pOptions } from '../p2p/swarm/libp2p.ts'
import { readSwarmKey } from '../p2p/trust/swarm-key.ts'
import { JobLinks } from '../p2p/jobs/link.ts'
import { JobWorker } from '../p2p/jobs/worker.ts'
import type { BidTerms, JobHandler, JobHead } from '../p2p/jobs/worker.ts'
import type { Assign } from '../p2p/wire/messages.ts'
import { frameLimits } from './frame-limits.ts'
import { createContentStore } from '../store/content-store.ts'
import type { ContentStore } from '../store/content-store.ts'
import { storeRoutes } from '../store/api/http-api.ts'
import { EmbedCache } from './embed-cache.ts'
import type { EmbedInput, EmbedOutput } from '../../skillsets/embed/index.ts'
import { createGateway, listen, sendJson, splitHostPort } from '../gateway/http.ts'
import { requestGuard } from '../gateway/guard.ts'
import { bearerAuth, loadOrCreateApiToken } from '../gateway/token.ts'
import type { ListeningGateway } from '../gateway/http.ts'
import { readLiveNodeFile, removeNodeFile, writeNodeFile } from './node-file.ts'
import type { NodeFile } from './node-file.ts'
import { ensureModel, requirePlannedWeights, startServedModel } from './served-models.ts'
import { chooseModels, ensureChoice } from './default-models.ts'
import { calibrate } from './calibrate.ts'
import type { Calibration } from './calibrate.ts'
import type { StoredModelLocation } from '../store/models/model-store.ts'
import type { ServedModel } from './served-models.ts'
import { resolveImages } from './image-inputs.ts'
import { imageLimits } from '../config/schema.ts'
import { createOpenAiGateway } from './openai-gateway.ts'
import type { OpenAiGateway } from './openai-gateway.ts'
import { NodeObserver } from './observe.ts'
import type { NodeParts } from './node-parts.ts'

const log = forComponent('ipfs-accelerate:node')
/**
 * A worker dials the peers that adverts name until it has this many connections. At 32, each refresh advert
 * from a peer not yet connected made a node dial it (a Noise handshake and a directory exchange each side), and
 * 64 idle nodes kept meshing towards 32 to 63 connections each, every connection adding pings, flood-published
 * copies and heartbeat work; at 8 (and as many inbound) gossip still reaches a node by several paths.
 */
const WORKER_AUTO_DIAL_CONNECTIONS = 8

export interface WorkerNodeInfo {
  peerId: string
  multiaddrs: string[]
  httpUrl: string | null
  models: NodeFile['models']
}

export class WorkerNode implements JobHandler {
  readonly config: Readonly<NodeConfig>
  private store: ContentStore | undefined
  private held: Array<{ id: string, cid: string }> = []
  private embedCache: EmbedCache | undefined
  private jobWorker: JobWorker | undefined
  private links: JobLinks | undefined
  private adverts: Adverts | undefined
  private dialer: AutoDialer | undefined
  private gateway: ListeningGateway | undefined
  private openai: OpenAiGateway | undefined
  private hardware: HardwareProfile | undefined
  private summary: HardwareSummary | undefined
  private readonly served = new Map<string, ServedModel>()
  private readonly defaults = new Map<SkillsetName, string>()
  private started = false
  private stopping: Promise<void> | undefined
  /** /metrics, /status.json and the status page (observe.ts). */
  private readonly observer = new NodeObserver(() => this.parts())

  constructor (config: Readonly<NodeConfig>) {
    this.config = config
  }

  get libp2p (): NonNullable<ContentStore['libp2p']> {
    const libp2p = this.store?.libp2p
    if (libp2p === undefined) throw new ConfigError('the node is not started')
    return libp2p
  }

  async start (): Promise<WorkerNodeInfo> {
    if (this.started) return this.info()
    const cfg = this.config
    await mkdir(cfg.dataDir, { recursive: true })
    const live = await readLiveNodeFile(cfg.dataDir)
    if (live !== undefined && live.pid !== process.pid) {
      throw new ConfigError(`a node already runs from ${cfg.dataDir} (pid ${live.pid}): stop it, or start this one with another --data-dir`)
    }
    try {
      await this.startParts()
    } catch (err) {
      await this.stop()
      throw err
    }
    this.started = true
    const info = this.info()
    await writeNodeFile(cfg.dataDir, { version: 1, pid: process.pid, startedAt: new Date().toISOString(), skillsets: [...new Set(info.models.map((m) => m.skillset))], ...info })
    return info
  }

  private async startParts (): Promise<void> {
    const cfg = this.config
    const catalog = await loadCatalog(cfg.catalog)
    const swarm = cfg.swarmKey === undefined ? undefined : await readSwarmKey(cfg.swarmKey)
    const privateKey = await loadOrCreateIdentity(cfg.dataDir)
    if (swarm !== undefined) log.info('private swarm: only peers with the same swarm key can connect', { keyFile: swarm.path, fingerprint: swarm.fingerprint })
    const store = await createContentStore({ dataDir: cfg.dataDir, libp2p: libp2pOptions({ privateKey, listen: cfg.listen, bootstrap: cfg.bootstrap, mdns: cfg.mdns, ...(swarm === undefined ? {} : { swarmKey: swarm.key }) }), catalog, cacheBudgetMB: cfg.store.cacheBudgetMB, maxPullMB: cfg.store.maxPullMB, trustedPeers: cfg.trustedPeers, lock: { purpose: 'node' } })
    this.store = store
    try {
      await store.start()
    } catch (err) {
      throw listenError(err, cfg.listen)
    }
    const libp2p = store.libp2p!
    // Dial advertised peers (content providers, workers) only while this node has few connections: enough for
    // gossip to reach it by several paths. Jobs and model blocks dial the peer they need; other nodes dial this one.
    this.dialer = autoDial(libp2p, log, { maxConnections: WORKER_AUTO_DIAL_CONNECTIONS })
    // Adverts start before the models load: peers learn which weights we hold at once.
    this.held = await store.models.heldRoots()
    this.adverts = new Adverts({
      libp2p,
      log: log.child('adverts'),
      build: () => this.advertBody(),
      intervalMs: cfg.adverts.intervalMs,
      refreshMs: cfg.adverts.refreshMs,
      onAdvert: (p) => {
        const addrs = p.advert.addrs.map((a) => multiaddr(a))
        this.dialer?.dial(addrs)
        const cids = [...p.advert.models.map((m) => m.cid), ...p.advert.held.map((h) => h.cid)].filter((c): c is string => c !== undefined)
        store.providers.setFromAdvert(p.peerId, [...new Set(cids)], { multiaddrs: addrs, ttlMs: p.advert.ttlMs })
      },
      onLeave: (peerId) => { store.providers.removePeer(peerId) }
    })
    await this.adverts.start()
    // Each connection this node opens (bootstrap, advertised peers) asks for the peer's directory and names this node in it.
    libp2p.addEventListener('connection:open', (evt) => { if (evt.detail.direction === 'outbound') void this.adverts?.learnFrom(evt.detail.remotePeer) })

    const chosen = await chooseModels(cfg, catalog, store.models, log)
    const entries = chosen.map((c) => c.entry)
    this.hardware = await detectHost()
    this.summary = summarizeHardware(this.hardware)
    const planOptions = { device: cfg.device, dtype: cfg.dtype, concurrentSessions: entries.length * cfg.scheduler.threadsPerModel }
    // Every model's default plan first: a forced device or dtype that cannot be used fails before any download; each fallback is logged once.
    planAll(entries, this.hardware, { ...planOptions, logger: log.child('plan') })
    // Then model by model: its candidates (GPU memory the models before took), weights, measuring, serving.
    const place = placement(this.hardware, planOptions)
    for (const choice of chosen) {
      const { entry, location } = await ensureChoice(choice, async (e) => await ensureModel(e, { models: store.models, dataDir: cfg.dataDir, peers: cfg.bootstrap, dtype: place.candidates(e)[0]!.dtype, log }), log)
      const candidates = place.candidates(entry)
      requirePlannedWeights(entry, location, candidates.map((c) => c.dtype))
      this.held = await store.models.heldRoots()
      const measured = await calibrate(entry, candidates, location, cfg, log.child('calibrate'), { runnerLog: log })
      // The measured runner is this start's to stop until the served model owns it.
      const model = await this.serve(entry, location, measured, place).catch(async (err: unknown) => { await measured.runner?.stop(); throw err })
      this.served.set(entry.id, model)
      if (!this.defaults.has(entry.skillset)) this.defaults.set(entry.skillset, entry.id)
      if (model.randomWeights) log.warn(`${entry.id} has RANDOM weights (generated offline, no model hub here): its outputs exercise the swarm but mean nothing`)
      log.info(`${entry.id} loaded from the store`, { cid: model.cid, ms: Math.round(model.loadMs) })
    }

    this.embedCache = cfg.store.embeddingCache ? new EmbedCache(store.cache, log.child('embed-cache')) : undefined
    this.links = new JobLinks({ libp2p, log: log.child('links') })
    await this.links.start()
    const allowed = new Set(cfg.allowPeers)
    // Jobs leased by peers and the gateway's local jobs alike are recorded (/metrics, /status.json).
    const handler = this.observer.jobs(this, (h) => this.modelFor(h)?.entry.id)
    this.jobWorker = new JobWorker({ libp2p, privateKey, links: this.links, handler, skillsets: [...this.defaults.keys()], limits: frameLimits, log: log.child('jobs'), ...(allowed.size === 0 ? {} : { allow: (peer: string) => allowed.has(peer) }) })
    this.jobWorker.start()
    this.adverts.publishSoon()
    if (cfg.http !== false) {
      const http = cfg.http
      // The store API answers only its owner: loopback, this node's own Host, no web page, the data dir's token (src/gateway/guard.ts).
      const guard = requestGuard({ authorize: bearerAuth(await loadOrCreateApiToken(cfg.dataDir, log)), hostNames: [splitHostPort(http).host] })
      // /v1 (OpenAI-compatible) and /readyz on one job client for the node's life: this node first when it fits (openai-gateway.ts).
      this.openai = createOpenAiGateway({ config: cfg, libp2p, links: this.links, adverts: this.adverts, handler, served: this.served, state: () => ({ started: this.started, stopping: this.stopping !== undefined }), log: log.child('openai') })
      this.gateway = await listen(createGateway([...this.routes(), ...this.openai.routes, ...storeRoutes(store.models)], log.child('http'), { guard }), http).catch((err: unknown) => {
        throw new ConfigError(`cannot serve HTTP on ${http}: ${errorMessage(err)}: pass --http with another HOST:PORT, or --http off`, { cause: err })
      })
    }
  }

  private async serve (entry: ModelEntry, location: StoredModelLocation, { plan, itemsPerSecond, runner }: Calibration, place: Placement): Promise<ServedModel> {
    place.place(entry, plan)
    log.info(`${plan.modelId}: runs on ${plan.device} (${plan.provider}, ${plan.dtype}, ${plan.intraOpThreads} threads)`, { why: plan.reasons.join('; ') })
    // Only a forced --dtype (or a model with no batch-independent dtype) gets here: say once what it costs.
    if (plan.reproducible === false) log.warn(`${plan.modelId}: results are not reproducible: ${batchDependenceReason(entry, plan.dtype)}`, { dtype: plan.dtype })
    return await startServedModel(entry, plan, location, this.config, log, { onReadyChange: () => { this.adverts?.publishSoon() }, ...(itemsPerSecond === undefined ? {} : { initialThroughput: itemsPerSecond }), ...(runner === undefined ? {} : { started: runner }) })
  }

  private routes (): Parameters<typeof createGateway>[0] {
    return [
      {
        method: 'GET',
        path: '/healthz',
        open: true, // read-only, what adverts publish anyway; probes send their own Host names
        handler: (_req, res) => {
          sendJson(res, this.started ? 200 : 503, {
            status: this.started ? 'ok' : 'starting',
            peerId: this.store?.libp2p?.peerId.toString(),
            peers: this.store?.libp2p?.getPeers().length ?? 0,
            queueDepth: this.queueDepth(),
            models: this.info().models,
            jobs: this.jobWorker?.stats,
            queues: Object.fromEntries([...this.served.values()].map((m) => [m.entry.id, { ready: m.queue.ready, depth: m.queue.depth, queuedCost: m.queue.queuedCost, throughput: m.queue.throughput, streaming: m.queue instanceof StreamingQueue, ...m.queue.stats }])),
            links: this.links?.stats,
            adverts: this.adverts?.stats,
            gateway: this.openai?.client.stats
          })
        }
      },
      ...this.observer.routes()
    ]
  }

  private parts (): NodeParts {
    const state = this.stopping !== undefined ? 'stopping' : this.started ? 'ok' : 'starting'
    return { state, libp2p: this.store?.libp2p, hardware: this.summary, requested: { device: this.config.device, dtype: this.config.dtype }, served: [...this.served.values()], adverts: this.adverts, jobs: this.jobWorker?.stats, links: this.links?.stats, exchange: this.store?.exchange?.stats }
  }

  private queueDepth (): number {
    let n = 0
    for (const m of this.served.values()) n += m.queue.depth
    return n
  }

  private advertBody (): AdvertBody {
    return {
      hardware: this.summary!,
      models: [...this.served.values()].map((m) => ({
        id: m.entry.id,
        skillset: m.entry.skillset,
        cid: m.cid,
        provider: m.plan.provider,
        dtype: m.plan.dtype,
        device: m.plan.device,
        loaded: m.queue.ready && this.stopping === undefined,
        queuedCost: m.queue.queuedCost,
        ...(m.queue.throughput === undefined ? {} : { throughput: round(m.queue.throughput) })
      })),
      held: this.held.slice(0, 256),
      queueDepth: this.queueDepth(),
      addrs: this.libp2p.getMultiaddrs().slice(0, 16).map(String),
      ...(this.gateway === undefined ? {} : { httpUrl: this.gateway.url })
    }
  }

  info (): WorkerNodeInfo {
    return {
      peerId: this.store?.libp2p?.peerId.toString() ?? '',
      multiaddrs: this.store?.libp2p?.getMultiaddrs().map(String) ?? [],
      httpUrl: this.gateway?.url ?? null,
      models: [...this.served.values()].map((m) => ({ id: m.entry.id, skillset: m.entry.skillset, provider: m.plan.provider, dtype: m.plan.dtype, device: m.plan.device, randomWeights: m.randomWeights }))
    }
  }

  private modelFor (head: Pick<JobHead, 'skillset' | 'model'>): ServedModel | undefined {
    const id = head.model ?? this.defaults.get(head.skillset)
    const m = id === undefined ? undefined : this.served.get(id)
    return m !== undefined && m.entry.skillset === head.skillset ? m : undefined
  }

  /** Bid only for what this node can start now: the model is loaded and its queue admits the job's cost. */
  bid (head: JobHead): BidTerms | { busy: string } | undefined {
    const m = this.modelFor(head)
    if (m === undefined) return undefined
    if (this.stopping !== undefined) return { busy: 'the worker is stopping' }
    if (!m.queue.ready) return { busy: `${m.entry.id} has no inference thread up (restarting)` }
    if (!m.queue.admits(head.cost)) return { busy: `the queue of ${m.entry.id} holds ${m.queue.queuedCost} cost units` }
    const eta = m.queue.estimateMs(head.cost)
    const tput = m.queue.throughput
    return {
      model: m.entry.id,
      provider: m.plan.provider,
      dtype: m.plan.dtype,
      device: m.plan.device,
      queuedCost: m.queue.queuedCost,
      // A rate of 0 would give an infinite estimate: a bid carries only finite, positive figures.
      ...(tput === undefined || !(tput > 0) ? {} : { throughput: round(tput) }),
      ...(eta === undefined || !Number.isFinite(eta) ? {} : { etaMs: Math.round(eta) })
    }
  }

  /** Whether a skillset's jobs stream (the job worker bids for them only over 1.1.0 links). */
  streams (skillset: SkillsetName): boolean {
    const id = this.defaults.get(skillset)
    const m = id === undefined ? undefined : this.served.get(id)
    return m !== undefined && isStreamingSkillset(m.skillset)
  }

  async run (head: JobHead, assign: Assign, signal: AbortSignal, emit?: (partial: Record<string, unknown>) => Promise<void>, client?: string): ReturnType<JobHandler['run']> {
    const m = this.modelFor(head)
    if (m === undefined) throw new ModelNotFoundError(`this node does not serve ${head.model ?? head.skillset}`)
    const parsed = m.skillset.parseInput(assign.input)
    if (m.skillset.cost(parsed) !== head.cost) throw new InvalidInputError(`the offer announced ${head.cost} cost units, the input has ${m.skillset.cost(parsed)}`)
    const input = m.skillset.images === undefined ? parsed : await resolveImages(m.skillset.images, parsed, { libp2p: this.store?.libp2p, client, limits: imageLimits(this.config), signal })
    // The lease is a duration from now: no wall clock crosses hosts.
    const opts = { deadline: performance.now() + assign.leaseMs, signal }
    // What the worker signs: the weights (root CID) and the provider and dtype they really ran on.
    const claim = { modelCid: m.cid, provider: m.plan.provider, dtype: m.plan.dtype }
    if (m.queue instanceof StreamingQueue) {
      const sk = m.skillset as StreamingSkillset
      if (emit === undefined) throw new ProtocolError(`${m.entry.id} streams: its jobs need job protocol 1.1.0`)
      const o = await m.queue.submit(input, { ...opts, emit: async (p) => { await emit(sk.encodePartial(p)) } })
      return { model: m.entry.id, output: sk.encodeOutput(o.output), timings: { queueMs: o.queueMs, runMs: o.runMs, batchSize: 1 }, claim }
    }
    const queue = m.queue
    if (this.embedCache !== undefined && m.embedDims !== undefined) {
      const res = await this.embedCache.run({ modelCid: m.cid, dtype: m.plan.dtype, provider: m.plan.provider, dims: m.embedDims }, input as EmbedInput, async (misses) => {
        const o = await queue.submit(misses, opts)
        return { output: o.output as EmbedOutput, queueMs: o.queueMs, runMs: o.runMs, batchSize: o.batchSize }
      })
      const t = res.computed ?? { queueMs: 0, runMs: 0, batchSize: 1 }
      return { model: m.entry.id, output: m.skillset.encodeOutput(res.output), timings: { ...t, cacheHit: res.cachedItems === (input as EmbedInput).texts.length, cachedItems: res.cachedItems }, claim }
    }
    const outcome = await queue.submit(input, opts)
    return {
      model: m.entry.id,
      output: m.skillset.encodeOutput(outcome.output),
      timings: { queueMs: outcome.queueMs, runMs: outcome.runMs, batchSize: outcome.batchSize },
      claim
    }
  }

  /** Stop: no new bids → leaving advert → drain jobs → HTTP → threads → Helia/libp2p. Idempotent. */
  async stop (graceMs = 30_000): Promise<void> {
    this.stopping ??= this.doStop(graceMs)
    await this.stopping
  }

  private async doStop (graceMs: number): Promise<void> {
    this.jobWorker?.stopBidding()
    await this.adverts?.stop()
    const inHand = [...this.served.values()].reduce((n, m) => n + m.queue.depth, 0)
    if (inHand > 0) log.info(`draining: ${inHand} job${inHand === 1 ? '' : 's'} in hand, waiting up to ${Math.round(graceMs / 1000)} s for them to finish`)
    await Promise.all([...this.served.values()].map(async (m) => { await m.queue.drain(graceMs) }))
    await this.jobWorker?.stop(5000)
    this.openai?.stop()
    await this.links?.stop()
    await this.gateway?.close()
    await Promise.all([...this.served.values()].flatMap((m) => m.threads.map(async (t) => { await t.stop() })))
    this.served.clear()
    this.dialer?.stop()
    await this.store?.stop()
    if (this.started) await removeNodeFile(this.config.dataDir)
    this.started = false
    log.info('stopped')
  }
}

/**
 * One detection per process: every node in it runs on the same host (a
 * benchmark can host dozens), and each detection spawns probe processes.
 * GPU free memory in the profile is as it was at the first node's start.
 */
let hostProfile: Promise<HardwareProfile> | undefined
async function detectHost (): Promise<HardwareProfile> {
  const detecting = hostProfile ?? detectHardware()
  hostProfile = detecting
  try {
    return await detecting
  } catch (err) {
    if (hostProfile === detecting) hostProfile = undefined // a failed detection is not the host's answer
    throw err
  }
}

/** A listen failure as a one-line ConfigError that says what to do. */
function listenError (err: unknown, listen: readonly string[]): unknown {
  const msg = errorMessage(err)
  const inUse = /EADDRINUSE[^\n]*?(\d+\.\d+\.\d+\.\d+:\d+|\[[^\]]+\]:\d+)/.exec(msg)
  if (inUse !== null) return new ConfigError(`cannot listen on ${inUse[1] ?? 'the configured address'}: the port is in use (another node?): stop that process, or pass --listen with another port, e.g. /ip4/0.0.0.0/tcp/0`, { cause: err })
  if (/EADDRNOTAVAIL|EACCES/.test(msg)) return new ConfigError(`cannot listen on ${listen.join(', ')}: ${msg.split('\n').find((l) => /EADDRNOTAVAIL|EACCES/.test(l))?.trim() ?? msg}: pass --listen with an address of this host`, { cause: err })
  return err
}

function round (x: number): number {
  return Math.round(x * 100) / 100
}
