/**
 * The node's HTTP gateway. `createGateway()` builds the request handler
 * (testable without a socket); `listen()` binds it.
 */
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { errorCode, errorMessage } from '../errors.ts'
import type { Logger } from '../logger.ts'

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void
export interface Route { method: 'GET' | 'POST' | 'DELETE', path: string, handler: RouteHandler }

export function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

export function createGateway (routes: Route[], log: Logger): RouteHandler {
  return async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    const route = routes.find((r) => r.path === path && r.method === req.method)
    if (route === undefined) {
      const known = routes.some((r) => r.path === path)
      sendJson(res, known ? 405 : 404, { error: { code: known ? 'ERR_METHOD' : 'ERR_NOT_FOUND', message: known ? `${req.method ?? ''} is not allowed on ${path}` : `no route ${path}` } })
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

export async function listen (handler: RouteHandler, hostPort: string): Promise<ListeningGateway> {
  const i = hostPort.lastIndexOf(':')
  const host = hostPort.slice(0, i).replace(/^\[|\]$/g, '')
  const port = Number(hostPort.slice(i + 1))
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
