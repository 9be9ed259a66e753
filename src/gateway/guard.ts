/**
 * The checks a local HTTP API makes before any private route runs, in one
 * place so every gateway (the store API now, an OpenAI-style one later, with
 * its own `authorize`) refuses the same requests the same way:
 *
 * 1. Source: loopback only, when `loopbackOnly` (403).
 * 2. Host: the address the server was bound as, or a loopback name
 *    (localhost, 127.0.0.1, [::1]), with the port the request came in on.
 *    Defeats DNS rebinding, where a page's own name points at 127.0.0.1
 *    (403).
 * 3. Origin: absent (the CLI, curl) or this same origin. A page elsewhere
 *    sends its own Origin, and browsers send POSTs with a "simple" content
 *    type without any preflight (403).
 * 4. Credentials: `authorize(req)`, e.g. a bearer token (401).
 * 5. Body type: POST, PUT, PATCH and any request that carries a body must
 *    say `application/json` (charset utf-8 or none), which no page can send
 *    cross-site without a preflight (415).
 *
 * No CORS headers are ever sent, and OPTIONS gets no CORS answer.
 */
import type { IncomingMessage } from 'node:http'
import { ForbiddenError, UnauthorizedError, UnsupportedMediaTypeError } from '../errors.ts'
import type { AccelerateError } from '../errors.ts'

export interface GuardInit {
  /** Accepts or refuses the request's credentials. */
  authorize: (req: IncomingMessage) => boolean
  /** Host names the server was bound as (e.g. the HOST of `--http HOST:PORT`), beside the loopback names. */
  hostNames?: readonly string[]
  /** Refuse clients that do not connect from a loopback address (default true). */
  loopbackOnly?: boolean
  /**
   * Check the Host header (default true). Off only where a secret the page
   * cannot know guards the API (the `/v1` routes with an API key): then a
   * DNS-rebound page still lacks the key, and clients may use any name.
   */
  checkHost?: boolean
  /** What a 401 says to do (default: the data dir's token). */
  unauthorized?: string
}

export interface Refusal {
  status: 401 | 403 | 415
  error: AccelerateError
  headers?: Record<string, string>
}

/** Undefined when the request may go on; otherwise why not, as an HTTP answer. */
export type RequestGuard = (req: IncomingMessage) => Refusal | undefined

const LOOPBACK_NAMES = Object.freeze(['localhost', '127.0.0.1', '[::1]'])
const JSON_TYPE = /^application\/json[ \t]*(;[ \t]*charset[ \t]*=[ \t]*"?utf-8"?[ \t]*)?$/i
const HOST_RE = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/i

export function isLoopbackAddress (a: string | undefined): boolean {
  if (a === undefined) return false
  return a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.')
}

function bracketed (host: string): string {
  const h = host.toLowerCase()
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h
}

/** `host:port` with the port made explicit (80 when absent), or undefined when it is not a host. */
function normalHost (value: string): string | undefined {
  const m = HOST_RE.exec(value)
  if (m === null) return undefined
  return `${m[1]!.toLowerCase()}:${m[2] === undefined ? 80 : Number(m[2])}`
}

function allowedHosts (req: IncomingMessage, hostNames: readonly string[]): Set<string> {
  const port = req.socket.localPort
  const names = [...LOOPBACK_NAMES, ...hostNames.map(bracketed)]
  if (req.socket.localAddress !== undefined) names.push(bracketed(req.socket.localAddress))
  return new Set(names.map((n) => `${n}:${port ?? 80}`))
}

/** POST, PUT and PATCH always (a page's form POST may be empty); any other method when it carries a body. */
function hasBody (req: IncomingMessage): boolean {
  if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') return true
  const len = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0')
}

export function requestGuard (init: GuardInit): RequestGuard {
  const hostNames = Object.freeze([...(init.hostNames ?? [])])
  const loopbackOnly = init.loopbackOnly ?? true
  const checkHost = init.checkHost ?? true
  return (req) => {
    if (loopbackOnly && !isLoopbackAddress(req.socket.remoteAddress)) {
      return { status: 403, error: new ForbiddenError('this API answers clients on the node\'s own host only: run the command there') }
    }
    const allowed = allowedHosts(req, hostNames)
    const rawHost = req.headers.host ?? ''
    const host = normalHost(rawHost)
    const self = `http://127.0.0.1:${req.socket.localPort ?? 80}`
    if (host === undefined || (checkHost && !allowed.has(host))) {
      return { status: 403, error: new ForbiddenError(`Host ${JSON.stringify(rawHost)} is not this node's address: call it as ${self} (the address in <data-dir>/node.json); requests through other names are refused`) }
    }
    const origin = req.headers.origin
    if (origin !== undefined) {
      const m = /^http:\/\/([^/]+)$/i.exec(origin)
      const originHost = m === null ? undefined : normalHost(m[1]!)
      if (originHost === undefined || (checkHost ? !allowed.has(originHost) : originHost !== host)) {
        return { status: 403, error: new ForbiddenError(`requests from web pages (Origin ${JSON.stringify(origin.slice(0, 200))}) are refused: this API answers only its owner; use the ipfs-accelerate CLI`) }
      }
    }
    if (!init.authorize(req)) {
      return { status: 401, error: new UnauthorizedError(init.unauthorized), headers: { 'www-authenticate': 'Bearer' } }
    }
    if (hasBody(req) && !JSON_TYPE.test(req.headers['content-type'] ?? '')) {
      return { status: 415, error: new UnsupportedMediaTypeError(`Content-Type ${JSON.stringify(req.headers['content-type'] ?? '(none)')} is not accepted: send the body as JSON with \`Content-Type: application/json\``) }
    }
    return undefined
  }
}
