/**
 * Who may use the `/v1` routes, and why:
 * - Not the store API's token: that one is the data dir's, for its owner's
 *   CLI; `/v1` is for programs the operator points at the node.
 * - With an API key: bearer key (constant-time), any source, any Host
 *   (clients call the node by whatever name reaches it; a DNS-rebound page
 *   cannot know the key).
 * - Without one: any source (the operator chose the --http address), but
 *   the Host must be the bound address or a loopback name: with no secret,
 *   the Host check is what stops a DNS-rebound web page from using a node
 *   on 127.0.0.1. A node bound beyond loopback without a key is warned of.
 * - Always: an Origin, if sent, must be this same origin (OpenAI clients
 *   send none; a browser on another site does), and POST bodies must be
 *   JSON, which no page elsewhere can send without a CORS preflight, which
 *   this gateway never answers.
 */
import { isLoopbackAddress, requestGuard } from '../guard.ts'
import type { RequestGuard } from '../guard.ts'
import { bearerSecretAuth } from '../token.ts'

export interface AccessInit {
  /** The host of `--http HOST:PORT`. */
  host: string
  /** The operator's key (`--api-key`, `apiKey`, IPFS_ACCELERATE_API_KEY); absent: none. */
  apiKey?: string
}

const HOW_TO_SET = '--api-key KEY (or apiKey in the config, or IPFS_ACCELERATE_API_KEY)'

export function openAiGuard (init: AccessInit): RequestGuard {
  return requestGuard({
    authorize: init.apiKey === undefined ? () => true : bearerSecretAuth(init.apiKey),
    hostNames: [init.host],
    loopbackOnly: false,
    checkHost: init.apiKey === undefined,
    unauthorized: `missing or wrong API key: send \`Authorization: Bearer KEY\` with the key the node was started with (${HOW_TO_SET})`
  })
}

/** The warning for a node that serves `/v1` beyond loopback with no key, or undefined when there is nothing to warn of. */
export function openAccessWarning (init: AccessInit): string | undefined {
  if (init.apiKey !== undefined) return undefined
  const h = init.host.toLowerCase()
  if (isLoopbackAddress(h) || h === 'localhost') return undefined
  return `the OpenAI-compatible API on ${init.host} answers anyone who can reach it, with no key: set one with ${HOW_TO_SET}, or serve --http on 127.0.0.1`
}
