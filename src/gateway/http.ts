/**
 * The node's HTTP gateway. `createGateway()` builds the request handler
 * (testable without a socket); `listen()` binds it. Every route goes
 * through the gateway's guard (guard.ts: source, Host, Origin, credentials,
 * body type) before it runs, unless it is marked `open` (read-only, no
 * secrets, such as `/healthz`).
 */
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { AccelerateError, ConfigError, errorCode, errorMessage } from '../errors.ts'
import type { Logger } from '../logger.ts'
import type { Refusal, RequestGuard } from './guard.ts'

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void
export interface Route {
  method: 'GET' | 'POST' | 'DELETE'
  path: string
  handler: RouteHandler
  /** Skip the guard: only for read-only routes that reveal nothing private. */
  open?: boolean
  /**
   * This route's own guard instead of the gateway's (the OpenAI-style `/v1`
   * routes: an API key instead of the data dir's token), and how its
   * errors are written (refusals, and 404/405 under its `scope`). Every
   * method of a path has the same guard.
   */
  guard?: RequestGuard
  refusal?: (res: ServerResponse, refusal: Pick<Refusal, 'error' | 'headers'>) => void
  /** A path prefix (e.g. `/v1/`) whose unknown paths get this route's guard and error shape too. */
  scope?: string
}

export interface GatewayOptions {
  /** Runs before every route that is not `open`; a refusal is answered and nothing else happens. */
  guard: RequestGuard
}

export function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/**
 * The path of a request target. A target that starts with `//` is a path,
 * not a host: `new URL('//api/v1/models', base)` would read `api` as a host
 * and route the request to `/v1/models`.
 */
export function requestPath (target: string | undefined): string {
  return new URL(`http://localhost${(target ?? '/').startsWith('/') ? '' : '/'}${target ?? '/'}`).pathname
}

export function createGateway (routes: Route[], log: Logger, options: GatewayOptions): RouteHandler {
  const openPaths = new Set(routes.filter((r) => r.open === true).map((r) => r.path))
  if (routes.some((r) => r.open === true && routes.some((o) => o.path === r.path && o.open !== true))) throw new ConfigError('a gateway path is either open or guarded, for every method')
  if (routes.some((r) => routes.some((o) => o.path === r.path && (o.guard !== r.guard || o.refusal !== r.refusal)))) throw new ConfigError('a gateway path has one guard, for every method')
  const own = new Map(routes.filter((r) => r.guard !== undefined).map((r) => [r.path, r]))
  const scoped = routes.filter((r) => r.guard !== undefined && r.scope !== undefined)
  const ownFor = (path: string): Route | undefined => own.get(path) ?? scoped.find((r) => path.startsWith(r.scope!))
  return async (req, res) => {
    const path = requestPath(req.url)
    const owner = ownFor(path)
    if (!openPaths.has(path)) {
      const route = owner
      const refusal = (route?.guard ?? options.guard)(req)
      if (refusal !== undefined) {
        log.warn('request refused', { path, method: req.method, status: refusal.status, code: refusal.error.code })
        if (route?.refusal !== undefined) route.refusal(res, { ...refusal, headers: { ...refusal.headers, connection: 'close' } })
        else sendJson(res, refusal.status, { error: { code: refusal.error.code, message: refusal.error.message } }, { ...refusal.headers, connection: 'close' })
        return
      }
    }
    const route = routes.find((r) => r.path === path && r.method === req.method)
    if (route === undefined) {
      const known = routes.some((r) => r.path === path)
      const error = known ? new AccelerateError('ERR_METHOD', `${req.method ?? ''} is not allowed on ${path}`) : new AccelerateError('ERR_NOT_FOUND', `no route ${path}`)
      if (owner?.refusal !== undefined) owner.refusal(res, { error })
      else sendJson(res, known ? 405 : 404, { error: { code: error.code, message: error.message } })
      return
    }
    try {
      await route.handler(req, res)
    } catch (err) {
      log.warn('request failed', { path, error: errorMessage(err) })
      if (!res.headersSent) sendJson(res, 500, { error: { code: errorCode(err), message: errorMessage(err) } })
      else res.destroy()
    }
  }
}

export interface ListeningGateway { url: string, close(): Promise<void> }

/** `HOST:PORT` (IPv6 in brackets) as host (no brackets) and port. */
export function splitHostPort (hostPort: string): { host: string, port: number } {
  const i = hostPort.lastIndexOf(':')
  return { host: hostPort.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(i + 1)) }
}

export async function listen (handler: RouteHandler, hostPort: string): Promise<ListeningGateway> {
  const { host, port } = splitHostPort(hostPort)
  const server: Server = createServer((req, res) => { void handler(req, res) })
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  const addr = server.address()
  const bound = typeof addr === 'object' && addr !== null ? addr.port : port
  const urlHost = host.includes(':') ? `[${host}]` : host
  return {
    url: `http://${urlHost}:${bound}`,
    close: async () => {
      server.closeIdleConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
