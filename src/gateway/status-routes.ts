/**
 * The read-only routes a person and a monitoring system use: `/` (the
 * status page), `/status.json` (what the page, `ipfs-accelerate status` and
 * scripts read) and `/metrics` (Prometheus text format). All `open`: a
 * Prometheus scraper sends no token and a browser has none; the node hands
 * in sources that reveal nothing private (src/node/status-schema.ts).
 */
import type { ServerResponse } from 'node:http'
import { sendJson } from './http.ts'
import type { Route } from './http.ts'
import { statusPage } from './status-page.ts'

export interface StatusSources {
  /** The status document. */
  status: () => unknown
  /** The metrics exposition and its content type. */
  metrics: () => Promise<{ contentType: string, text: string }>
}

const NO_STORE = Object.freeze({ 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' })

function sendText (res: ServerResponse, contentType: string, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(200, { ...NO_STORE, ...headers, 'content-type': contentType, 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

export function statusRoutes (sources: StatusSources): Route[] {
  const page = statusPage()
  return [
    {
      method: 'GET',
      path: '/',
      open: true,
      handler: (_req, res) => { sendText(res, 'text/html; charset=utf-8', page.html, { 'content-security-policy': page.csp, 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY' }) }
    },
    {
      method: 'GET',
      path: '/status.json',
      open: true,
      handler: (_req, res) => { sendJson(res, 200, sources.status(), NO_STORE) }
    },
    {
      method: 'GET',
      path: '/metrics',
      open: true,
      handler: async (_req, res) => {
        const { contentType, text } = await sources.metrics()
        sendText(res, contentType, text)
      }
    }
  ]
}
