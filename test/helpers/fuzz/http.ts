/**
 * Fuzzing the local HTTP API (the store routes behind the guard): bodies
 * that are mutations of valid ones (bad JSON, wrong types, unknown keys,
 * huge values), bodies over the limit, bad paths and methods, bad Host,
 * Origin, Content-Type and Authorization headers, path traversal and NUL
 * bytes in import/export folders, and raw bytes that are no HTTP at all;
 * each with the owner's token (70%) or without.
 *
 * Safety: a body that the route's own schema accepts is not sent (so no
 * import, pull or gc runs), except the traversal cases, whose folders all
 * lie inside the fuzzer's sandbox or exist and are not empty (export
 * refuses those).
 */
import { request } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import { storeBodies } from '../../../src/store/api/http-api.ts'
import { BYTE_MUTATIONS, Fuzzer, Tally, text, VALUE_MUTATIONS } from './mutate.ts'
import type { Mutation } from './mutate.ts'
import { pool } from './streams.ts'

export interface HttpTarget { url: string, token: string, sandbox: string, modelRef: string }

export interface HttpReport {
  tally: Tally
  /** Answers by status code. */
  statuses: Record<string, number>
  /** Error codes seen in bodies (JSON errors and NDJSON error lines). */
  codes: Record<string, number>
  /** Answers that are no typed refusal: 5xx, or an error code that is not ERR_*. */
  unclear: Array<{ kind: string, request: string, status: number, body: string }>
  /** Requests the node did not answer within the wait. */
  hung: Array<{ kind: string, request: string }>
  ms: number
}

interface Req { kind: Mutation | 'path' | 'method' | 'header' | 'traversal' | 'raw' | 'body-size', method: string, path: string, headers: Record<string, string>, body?: Uint8Array, raw?: Uint8Array }

const ROUTES = ['import', 'pull', 'pin', 'unpin', 'verify', 'export', 'gc'] as const
type Route = typeof ROUTES[number]
const SCHEMA: Record<Route, keyof typeof storeBodies> = { import: 'import', pull: 'pull', pin: 'ref', unpin: 'ref', verify: 'ref', export: 'export', gc: 'gc' }

function bases (t: HttpTarget): Record<Route, Record<string, unknown>> {
  return {
    import: { dir: join(t.sandbox, 'no-such-model'), id: 'fuzz/none', skillset: 'stand-in' },
    pull: { ref: 'fuzz/none', peers: ['/ip4/127.0.0.1/tcp/1'] },
    pin: { ref: 'fuzz/none' },
    unpin: { ref: 'fuzz/none' },
    verify: { ref: 'fuzz/none' },
    export: { ref: 'fuzz/none', dir: join(t.sandbox, 'out') },
    gc: {}
  }
}

function schemaAccepts (route: Route, body: Uint8Array): boolean {
  let value: unknown
  try {
    const s = new TextDecoder('utf-8', { fatal: true }).decode(body)
    value = s.trim() === '' ? {} : JSON.parse(s)
  } catch (err) {
    void err // not JSON: malformed, as intended
    return false
  }
  return storeBodies[SCHEMA[route]].safeParse(value).success
}

function jsonText (v: unknown): Uint8Array {
  return text(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? 'null')
}

function makeRequest (f: Fuzzer, t: HttpTarget, host: string): Req | undefined {
  const withToken = f.chance(0.7)
  const headers: Record<string, string> = { host, 'content-type': 'application/json', ...(withToken ? { authorization: `Bearer ${t.token}` } : {}) }
  const route = f.pick(ROUTES)
  const path = `/api/v1/models/${route}`
  const r = f.int(100)
  if (r < 55) {
    const base = bases(t)[route]
    const kind = f.chance(0.5) ? f.pick(VALUE_MUTATIONS) : f.pick(BYTE_MUTATIONS.filter((k) => k !== 'depth-bomb' && k !== 'dup-key'))
    const body = VALUE_MUTATIONS.includes(kind) ? jsonText(f.mutateValue(base, kind)) : f.mutateBytes(jsonText(base), kind)
    if (schemaAccepts(route, body)) return undefined
    return { kind, method: 'POST', path, headers, body }
  }
  if (r < 62) return { kind: 'body-size', method: 'POST', path, headers, body: text(`{"ref":"${'a'.repeat(f.pick([70_000, 1_000_000, 2_000_000]))}"}`) }
  if (r < 70) {
    const p = f.pick([
      '/api/v1/models/../../../etc/passwd', '/api/v1/models/%2e%2e/%2e%2e/etc/passwd', '/api/v1/models/import/', '/API/V1/MODELS', '//api/v1/models',
      '/api/v1/models?ref=x', '/api/v1/models#x', '/' + 'a'.repeat(f.size(12_000)), '/api/v1/models/' + encodeURIComponent(String.fromCharCode(f.int(0xd7ff))), '*', 'http://evil.example/api/v1/models'
    ])
    return { kind: 'path', method: f.pick(['GET', 'POST']), path: p, headers, body: text('{}') }
  }
  if (r < 75) return { kind: 'method', method: f.pick(['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'FUZZ']), path: f.chance(0.5) ? path : '/api/v1/models', headers, body: text('{}') }
  if (r < 87) {
    const h = { ...headers }
    const fault = f.int(8)
    if (fault === 0) h.host = f.pick(['evil.example', 'localhost.evil.example:80', `127.0.0.1:${f.int(65536)}`, '', '[::1', 'a'.repeat(300)])
    if (fault === 1) h.origin = f.pick(['http://evil.example', 'null', 'https://127.0.0.1', `http://${host}/x`, 'file://'])
    if (fault === 2) h['content-type'] = f.pick(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', 'application/jsonx', ''])
    if (fault === 3) h.authorization = f.pick([`Bearer ${t.token}x`, `Bearer ${t.token.slice(1)}`, 'Bearer', `Basic ${t.token}`, `bearer  ${t.token} extra`, `Bearer ${'A'.repeat(5000)}`])
    if (fault === 4) { delete h['content-type'] }
    if (fault === 5) h['content-length'] = String(f.pick([0, 1, 2 ** 31]))
    if (fault === 6) h['transfer-encoding'] = 'chunked'
    if (fault === 7) h['x-fuzz'] = 'v'.repeat(f.pick([100, 20_000]))
    return { kind: 'header', method: 'POST', path, headers: h, body: jsonText(bases(t)[route]) }
  }
  if (r < 93) {
    const dir = f.pick([
      `${t.sandbox}/out/../../../..`, `${t.sandbox}/../${'..'.repeat(3)}/etc`, `${t.sandbox}/new/../new-${f.int(1e9)}`, `${t.sandbox}/a\u0000b`, `${t.sandbox}/%2e%2e/%2e%2e`, `${t.sandbox}//./x`, `${t.sandbox}/${'d/'.repeat(1500)}`
    ])
    const body = f.chance(0.7) ? { ref: t.modelRef, dir } : { dir: `${t.sandbox}/${f.pick(['a/../b', 'no\u0000such', '.', '..%2f..'])}`, id: 'fuzz/traversal' }
    return { kind: 'traversal', method: 'POST', path: 'ref' in body ? '/api/v1/models/export' : '/api/v1/models/import', headers, body: jsonText(body) }
  }
  const raw = f.pick<() => Uint8Array>([
    () => f.bytes(f.size(4096)),
    () => text(`POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 100\r\n\r\n{"ref":`),
    () => text(`POST ${path} HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`),
    () => text(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nBad Header Line\r\n\r\n`),
    () => text(`GET /\u0000 HTTP/9.9\r\n\r\n`),
    () => text(`POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}{}{}`)
  ])()
  return { kind: 'raw', method: '', path: '', headers: {}, raw }
}

interface Answer { status: number, body: string, reset: boolean, timedOut: boolean }

async function send (url: URL, req: Req, timeoutMs: number): Promise<Answer> {
  if (req.raw !== undefined) {
    const raw = req.raw
    return await new Promise((resolve) => {
      const s = connect(Number(url.port), url.hostname)
      let out = ''
      const timer = setTimeout(() => { s.destroy(); resolve({ status: 0, body: out, reset: false, timedOut: true }) }, timeoutMs)
      s.on('data', (d: Buffer) => { out += d.toString('latin1') })
      s.on('error', () => { clearTimeout(timer); resolve({ status: 0, body: out, reset: true, timedOut: false }) })
      s.on('close', () => { clearTimeout(timer); resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0), body: out.slice(out.indexOf('\r\n\r\n') + 4), reset: false, timedOut: false }) })
      s.end(raw)
    })
  }
  return await new Promise((resolve) => {
    let settled = false
    const done = (a: Answer): void => { if (!settled) { settled = true; resolve(a) } }
    const r = request({ host: url.hostname, port: url.port, method: req.method, path: req.path, headers: req.headers, setHost: false, agent: false, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { if (body.length < 4096) body += d })
      res.on('end', () => { done({ status: res.statusCode ?? 0, body, reset: false, timedOut: false }) })
      res.on('error', () => { done({ status: res.statusCode ?? 0, body, reset: true, timedOut: false }) })
    })
    r.on('timeout', () => { r.destroy(); done({ status: 0, body: '', reset: false, timedOut: true }) })
    r.on('error', () => { done({ status: 0, body: '', reset: true, timedOut: false }) })
    r.end(req.body)
  })
}

function describe (req: Req): string {
  const bytes = req.raw ?? req.body ?? new Uint8Array(0)
  const head = req.raw === undefined ? `${req.method} ${req.path.slice(0, 100)} ${JSON.stringify(req.headers).slice(0, 300)} ` : ''
  return `${head}${JSON.stringify(Buffer.from(bytes.subarray(0, 200)).toString('latin1'))} (${bytes.byteLength} bytes)`
}

/** Error codes in a JSON error body or NDJSON error lines. */
function codesOf (body: string): string[] {
  const out: string[] = []
  for (const line of body.split('\n')) {
    if (line.trim() === '') continue
    try {
      const o = JSON.parse(line) as { type?: string, code?: string, error?: { code?: string } }
      if (o.error?.code !== undefined) out.push(o.error.code)
      if (o.type === 'error' && o.code !== undefined) out.push(o.code)
    } catch (err) {
      void err // a truncated body (we keep 4 KiB): its codes are in what we kept
    }
  }
  return out
}

export async function fuzzHttp (t: HttpTarget, opts: { count: number, seed: number }): Promise<HttpReport> {
  const t0 = performance.now()
  const f = new Fuzzer(opts.seed)
  const url = new URL(t.url)
  const report: HttpReport = { tally: new Tally(), statuses: {}, codes: {}, unclear: [], hung: [], ms: 0 }
  const reqs: Req[] = []
  while (reqs.length < opts.count) {
    const r = makeRequest(f, t, url.host)
    if (r === undefined) report.tally.validByChance++
    else reqs.push(r)
  }
  await pool(reqs.length, 8, async (i) => {
    const req = reqs[i]!
    const a = await send(url, req, 10_000)
    report.tally.count(req.kind as Mutation)
    report.statuses[String(a.status)] = (report.statuses[String(a.status)] ?? 0) + 1
    if (a.reset) report.tally.resets++
    if (a.timedOut) { report.tally.timeouts++; report.hung.push({ kind: req.kind, request: describe(req) }) }
    if (a.status >= 400 && a.status < 500) report.tally.rejected++
    const codes = codesOf(a.body)
    for (const c of codes) report.codes[c] = (report.codes[c] ?? 0) + 1
    if (a.status >= 500 || codes.some((c) => !/^ERR_[A-Z0-9_]+$/.test(c) || c === 'ERR_INTERNAL')) report.unclear.push({ kind: req.kind, request: describe(req), status: a.status, body: a.body.slice(0, 300) })
  })
  report.ms = Math.round(performance.now() - t0)
  return report
}
