/**
 * The node's side of the OpenAI-compatible gateway: one long-lived job
 * client on the node's own libp2p, links and adverts (LocalFirstClient:
 * this node first when it fits best, else the swarm), the `/v1` routes on
 * it with their own access rule, and `/readyz`.
 *
 * Access to `/v1` (decided here, why):
 * - Not the store API's token: that one is the data dir's, for its owner's
 *   CLI; `/v1` is for programs the operator points at the node.
 * - With an API key (`--api-key`, `apiKey`, IPFS_ACCELERATE_API_KEY):
 *   bearer key, any source, any Host (clients call the node by whatever name
 *   reaches it; a DNS-rebound page cannot know the key).
 * - Without one: any source (the operator chose the --http address), but
 *   the Host must be the bound address or a loopback name: with no secret,
 *   the Host check is what stops a DNS-rebound web page from using a node on
 *   127.0.0.1. A start beyond loopback without a key warns once.
 * - Always: an Origin, if sent, must be this same origin (OpenAI clients
 *   send none; a browser on another site does), and POST bodies must be
 *   JSON, which no page elsewhere can send without a CORS preflight, which
 *   this gateway never answers.
 */
import type { NodeConfig } from '../config/schema.ts'
import { imageLimits } from '../config/schema.ts'
import type { SkillsetName } from '../interfaces/index.ts'
import type { Logger } from '../logger.ts'
import type { Adverts } from '../p2p/adverts.ts'
import { JobClient } from '../p2p/job-client.ts'
import type { JobLinks } from '../p2p/job-link.ts'
import type { JobHandler } from '../p2p/job-worker.ts'
import type { Libp2p } from '@libp2p/interface'
import type { NodeServices } from '../p2p/libp2p.ts'
import { isLoopbackAddress, requestGuard } from '../gateway/guard.ts'
import { sendJson, splitHostPort } from '../gateway/http.ts'
import type { Route } from '../gateway/http.ts'
import { openAiRoutes } from '../gateway/openai/routes.ts'
import { bearerSecretAuth } from '../gateway/token.ts'
import { frameLimits } from './frame-limits.ts'
import { LocalFirstClient } from './local-client.ts'

export interface OpenAiGatewayParts {
  config: Readonly<NodeConfig>
  libp2p: Libp2p<NodeServices>
  links: JobLinks
  adverts: Adverts
  handler: Pick<JobHandler, 'bid' | 'run'>
  ownModels: () => Array<{ id: string, skillset: SkillsetName, loaded: boolean }>
  /** Whether the node takes work now: undefined when it does, else why not. */
  notReady: () => string | undefined
  log: Logger
}

export interface OpenAiGateway {
  routes: Route[]
  client: LocalFirstClient
  stop(): void
}

const LOOPBACK_HOSTS = new Set(['localhost', '::1'])

export function createOpenAiGateway (parts: OpenAiGatewayParts): OpenAiGateway {
  const { config, log } = parts
  const jobs = new JobClient({ libp2p: parts.libp2p, links: parts.links, adverts: parts.adverts, limits: frameLimits, log: log.child('jobs') })
  jobs.start()
  const client = new LocalFirstClient({ self: parts.libp2p.peerId.toString(), handler: parts.handler, jobs, adverts: parts.adverts, ownModels: parts.ownModels, limits: frameLimits, log })
  const host = config.http === false ? '127.0.0.1' : splitHostPort(config.http).host
  if (config.apiKey === undefined && !isLoopbackAddress(host) && !LOOPBACK_HOSTS.has(host.toLowerCase())) {
    log.warn(`the OpenAI-compatible API on ${host} answers anyone who can reach it, with no key: set one with --api-key KEY (or apiKey in the config, or IPFS_ACCELERATE_API_KEY), or serve --http on 127.0.0.1`)
  }
  const guard = requestGuard({
    authorize: config.apiKey === undefined ? () => true : bearerSecretAuth(config.apiKey),
    hostNames: [host],
    loopbackOnly: false,
    checkHost: config.apiKey === undefined,
    unauthorized: 'missing or wrong API key: send `Authorization: Bearer KEY` with the key the node was started with (--api-key, apiKey in its config, or IPFS_ACCELERATE_API_KEY)'
  })
  const readyz: Route = {
    method: 'GET',
    path: '/readyz',
    open: true, // like /healthz: for load balancers and probes, reveals nothing private
    handler: (_req, res) => {
      const why = parts.notReady()
      const models = parts.ownModels().map((m) => ({ id: m.id, skillset: m.skillset, loaded: m.loaded }))
      sendJson(res, why === undefined ? 200 : 503, why === undefined ? { ready: true, models } : { ready: false, reason: why, models })
    }
  }
  return {
    routes: [readyz, ...openAiRoutes({ backend: client, guard, maxImageBytes: imageLimits(config).maxBytes })],
    client,
    stop: () => { jobs.stop() }
  }
}
