/**
 * A real worker for the streaming tests, in-process: a libp2p node on
 * 127.0.0.1 with JobLinks, Adverts and a JobWorker whose handler runs
 * `stand-in-stream` jobs on a StreamingQueue (LocalStreamRunner) and
 * `stand-in` jobs on a ModelQueue (LocalRunner), as WorkerNode wires them.
 * `protocols: [JOB_PROTOCOL]` makes a worker that speaks only 1.0.0.
 */
import { frameLimits } from '../../src/node/frame-limits.ts'
import { Adverts } from '../../src/p2p/swarm/adverts.ts'
import { JobLinks } from '../../src/p2p/jobs/link.ts'
import { JobWorker } from '../../src/p2p/jobs/worker.ts'
import type { JobHandler, JobWorkerInit } from '../../src/p2p/jobs/worker.ts'
import type { ExecutionPlan } from '../../src/interfaces/index.ts'
import { LocalRunner } from '../../src/scheduler/local-runner.ts'
import { LocalStreamRunner } from '../../src/scheduler/local-stream-runner.ts'
import { ModelQueue } from '../../src/scheduler/model-queue.ts'
import { StreamingQueue } from '../../src/scheduler/streaming-queue.ts'
import { standInStreamSkillset } from '../../skillsets/stand-in-stream/index.ts'
import type { StandInStreamRunner } from '../../skillsets/stand-in-stream/index.ts'
import { createStandInSkillset } from '../../skillsets/stand-in/index.ts'
import { advertBody, keyOf, silentLog, standInModel, startNode, stopAll } from './p2p-nodes.ts'
import type { Node } from './p2p-nodes.ts'

export const STREAM_MODEL = 'demo/stand-in-stream'
export const BATCH_MODEL = 'demo/stand-in'

const plan = (modelId: string): ExecutionPlan => ({ modelId, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] })

export interface StreamWorker {
  node: Node
  links: JobLinks
  jobs: JobWorker
  queue: StreamingQueue
  runner: LocalStreamRunner
  /** The stand-in-stream runner's step counter (all jobs). */
  steps: () => number
  /** Jobs the stand-in-stream runner is running now (0: it let every job go, no step can follow). */
  running: () => number
  id: string
  stop: () => Promise<void>
}

export async function startStreamWorker (opts: { protocols?: string[], resumeGraceMs?: number, stallMs?: number, limits?: JobWorkerInit['limits'] } = {}): Promise<StreamWorker> {
  const node = await startNode()
  const links = new JobLinks({ libp2p: node, log: silentLog, ...(opts.protocols === undefined ? {} : { protocols: opts.protocols }) })
  const model = { id: STREAM_MODEL, localModelPath: '/nonexistent' }
  const runner = new LocalStreamRunner({ skillset: standInStreamSkillset, model, plan: plan(STREAM_MODEL), log: silentLog })
  await runner.start()
  const queue = new StreamingQueue({ modelId: STREAM_MODEL, skillset: standInStreamSkillset, runners: [runner], budget: 1_000_000, maxQueuedJobs: 100, maxQueuedCost: 1_000_000, stallMs: opts.stallMs ?? 30_000, log: silentLog })
  const standIn = createStandInSkillset()
  const batchRunner = new LocalRunner({ skillset: standIn, model: { id: BATCH_MODEL, localModelPath: '/nonexistent' }, plan: plan(BATCH_MODEL), loadOptions: { nodeConfig: { standIn: { msPerItem: 1 } } }, log: silentLog })
  await batchRunner.start()
  const batch = new ModelQueue({ modelId: BATCH_MODEL, skillset: standIn, runners: [batchRunner], maxBatchCost: 64, maxQueuedJobs: 100, log: silentLog })
  const claim = { modelCid: 'bafy-test', provider: 'cpu', dtype: 'fp32' }
  const handler: JobHandler = {
    bid: (head) => ({ model: head.skillset === 'stand-in-stream' ? STREAM_MODEL : BATCH_MODEL, provider: 'cpu', dtype: 'fp32', device: 'cpu', queuedCost: 0 }),
    streams: (s) => s === 'stand-in-stream',
    run: async (head, a, signal, emit) => {
      const opts = { deadline: performance.now() + a.leaseMs, signal }
      if (head.skillset === 'stand-in-stream') {
        const input = standInStreamSkillset.parseInput(a.input)
        const o = await queue.submit(input, { ...opts, emit: async (p) => { await emit!(standInStreamSkillset.encodePartial(p as { text: string })) } })
        return { model: STREAM_MODEL, output: standInStreamSkillset.encodeOutput(o.output as { text: string, steps: number }), timings: { queueMs: o.queueMs, runMs: o.runMs, batchSize: 1 }, claim }
      }
      const o = await batch.submit(standIn.parseInput(a.input), opts)
      return { model: BATCH_MODEL, output: standIn.encodeOutput(o.output as { digest: Uint8Array }), timings: { queueMs: o.queueMs, runMs: o.runMs, batchSize: o.batchSize }, claim }
    }
  }
  const init: JobWorkerInit = { libp2p: node, privateKey: keyOf(node), links, handler, skillsets: ['stand-in-stream', 'stand-in'], limits: opts.limits ?? frameLimits, log: silentLog, ...(opts.resumeGraceMs === undefined ? {} : { resumeGraceMs: opts.resumeGraceMs }) }
  const jobs = new JobWorker(init)
  const adverts = new Adverts({ libp2p: node, log: silentLog, intervalMs: 1000, build: () => advertBody(node, [standInModel(STREAM_MODEL, { skillset: 'stand-in-stream' }), standInModel(BATCH_MODEL)]) })
  await links.start()
  await adverts.start()
  jobs.start()
  return {
    node,
    links,
    jobs,
    queue,
    runner,
    steps: () => (runner.current as StandInStreamRunner | undefined)?.steps ?? 0,
    running: () => (runner.current as StandInStreamRunner | undefined)?.running ?? 0,
    id: node.peerId.toString(),
    stop: async () => {
      await jobs.stop(0)
      await queue.drain(0)
      await batch.drain(0)
      await stopAll(adverts, links, runner, batchRunner)
      await stopAll(node)
    }
  }
}
