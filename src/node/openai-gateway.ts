/**
 * The node's side of the OpenAI-compatible gateway: one long-lived job
 * client on the node's own libp2p, links and adverts (LocalFirstClient:
 * this node first when it fits best, else the swarm), the `/v1` routes on
 * it with their own access rule, and `/readyz`.
 *
 * Who may use `/v1`, and why: src/gateway/openai/access.ts.
 */
import type { NodeConfig } from '../config/schema.ts'
import { imageLimits } from '../config/schema.ts'
import type { SkillsetName } from '../interfaces/index.ts'
import type { Logger } from '../logger.ts'
import type { Adverts } from '../p2p/swarm/adverts.ts'
import { JobClient } from '../p2p/jobs/client.ts'
import type { JobLinks } from '../p2p/jobs/link.ts'
import type { JobHandler } from '../p2p/jobs/worker.ts'
import type { Libp2p } from '@libp2p/interface'
import type { NodeServices } from '../p2p/swarm/libp2p.ts'
import { openAccessWarning, openAiGuard } from '../gateway/openai/access.ts'
import { sendJson, splitHostPort } from '../gateway/http.ts'
import type { Route } from '../gateway/http.ts'
import { openAiRoutes } from '../gateway/openai/routes.ts'
import { frameLimits } from './frame-limits.ts'
import { LocalFirstClient } from './local-client.ts'
import type { ServedModel } from './served-models.ts'

export interface OpenAiGatewayParts {
  config: Readonly<NodeConfig>
  libp2p: Libp2p<NodeServices>
  links: JobLinks
  adverts: Adverts
  handler: Pick<JobHandler, 'bid' | 'run'>
  /** The node's served models (read at each request). */
  served: ReadonlyMap<string, Pick<ServedModel, 'entry' | 'queue'>>
  state: () => { started: boolean, stopping: boolean }
  log: Logger
}

export interface OpenAiGateway {
  routes: Route[]
  client: LocalFirstClient
  stop(): void
}

/** Why a node cannot take work now (/readyz 503), or undefined when it can: started, not stopping, a model with its inference thread up. */
export function notReadyReason (state: { started: boolean, stopping: boolean }, models: ReadonlyArray<{ loaded: boolean }>): string | undefined {
  if (state.stopping) return 'the node is stopping'
  if (!state.started) return 'the node is starting'
  if (!models.some((m) => m.loaded)) return 'no model has an inference thread up (loading or restarting): see /healthz'
  return undefined
}

export function createOpenAiGateway (parts: OpenAiGatewayParts): OpenAiGateway {
  const { config, log } = parts
  const ownModels = (): Array<{ id: string, skillset: SkillsetName, loaded: boolean }> =>
    [...parts.served.values()].map((m) => ({ id: m.entry.id, skillset: m.entry.skillset, loaded: m.queue.ready }))
  const notReady = (): string | undefined => notReadyReason(parts.state(), ownModels())
  const jobs = new JobClient({ libp2p: parts.libp2p, links: parts.links, adverts: parts.adverts, limits: frameLimits, log: log.child('jobs') })
  jobs.start()
  const client = new LocalFirstClient({ self: parts.libp2p.peerId.toString(), handler: parts.handler, jobs, adverts: parts.adverts, ownModels, limits: frameLimits, log })
  const host = config.http === false ? '127.0.0.1' : splitHostPort(config.http).host
  const access = { host, ...(config.apiKey === undefined ? {} : { apiKey: config.apiKey }) }
  const warning = openAccessWarning(access)
  if (warning !== undefined) log.warn(warning)
  const guard = openAiGuard(access)
  const readyz: Route = {
    method: 'GET',
    path: '/readyz',
    open: true, // like /healthz: for load balancers and probes, reveals nothing private
    handler: (_req, res) => {
      const why = notReady()
      const models = ownModels()
      sendJson(res, why === undefined ? 200 : 503, why === undefined ? { ready: true, models } : { ready: false, reason: why, models })
    }
  }
  return {
    routes: [readyz, ...openAiRoutes({ backend: client, guard, maxImageBytes: imageLimits(config).maxBytes })],
    client,
    stop: () => { client.stop(); jobs.stop() }
  }
}
