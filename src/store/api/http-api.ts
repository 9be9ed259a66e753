/**
 * The store's HTTP routes, for the CLI when a node runs on the data dir
 * (the node owns pins and records then). Paths are fixed (model ids hold
 * "/", so references travel in bodies):
 *
 *   GET  /api/v1/models                     → { models: ModelSummary[] }
 *   POST /api/v1/models/import  { dir, id?, skillset? }
 *   POST /api/v1/models/pull    { ref, peers?, id?, skillset?, maxBytes? }
 *   POST /api/v1/models/pin     { ref }      /unpin { ref }   /verify { ref }
 *   POST /api/v1/models/export  { ref, dir }
 *   POST /api/v1/models/gc      {}
 *
 * POST answers are NDJSON: `{"type":"progress",...}` lines, then one
 * `{"type":"result","result":...}` or `{"type":"error","code","message"}`.
 * Closing the request cancels the operation.
 *
 * These routes do no access checks of their own: mount them only through
 * `createGateway` with a guard (src/gateway/guard.ts), which lets through
 * loopback clients that call the node by its own address, from no web
 * page, with the token of `<data-dir>/api.token` and JSON bodies. Import
 * and export name folders on the node's host; export writes only into a
 * new or empty folder.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { z } from 'zod'
import { errorCode, errorMessage, InputTooLargeError } from '../../errors.ts'
import { SKILLSET_NAMES } from '../../interfaces/index.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { modelIdSchema } from '../../models/catalog.ts'
import type { ModelStore, StoreProgress } from '../models/model-store.ts'

export const STORE_API_PREFIX = '/api/v1/models'
const MAX_BODY_BYTES = 64 * 1024

export interface StoreRoute {
  method: 'GET' | 'POST'
  path: string
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>
}

const ref = z.string().min(1).max(300)
const skillset = z.enum(SKILLSET_NAMES as [SkillsetName, ...SkillsetName[]])
const absDir = z.string().min(1).max(4096).refine((d) => d.startsWith('/') || /^[A-Za-z]:[\\/]/.test(d), 'an absolute path')

export const storeBodies = {
  import: z.strictObject({ dir: absDir, id: modelIdSchema.optional(), skillset: skillset.optional(), maxBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional() }),
  pull: z.strictObject({ ref, peers: z.array(z.string().min(1).max(1000)).max(64).optional(), id: modelIdSchema.optional(), skillset: skillset.optional(), maxBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional() }),
  ref: z.strictObject({ ref }),
  export: z.strictObject({ ref, dir: absDir }),
  gc: z.strictObject({})
}

function send (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function readBody (req: IncomingMessage): Promise<unknown> {
  // Found by fuzzing: a body declared past the limit was awaited until the client gave up (Node's request timeout is 5 minutes).
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > MAX_BODY_BYTES) throw new InputTooLargeError(`request body of ${declared} bytes is over the ${MAX_BODY_BYTES}-byte limit`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of req) {
    size += (c as Buffer).byteLength
    if (size > MAX_BODY_BYTES) throw new InputTooLargeError(`request body over the ${MAX_BODY_BYTES}-byte limit`)
    chunks.push(c as Buffer)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') return {}
  try {
    return JSON.parse(text)
  } catch (err) {
    throw Object.assign(new Error(`request body is not JSON: ${(err as Error).message}`), { code: 'ERR_INVALID_INPUT' })
  }
}

type Op<S extends z.ZodType> = (body: z.infer<S>, ctx: { signal: AbortSignal, onProgress: (p: StoreProgress) => void }) => Promise<unknown>

/** A POST route: validate the body, stream progress and the outcome as NDJSON. */
function post<S extends z.ZodType> (path: string, schema: S, op: Op<S>): StoreRoute {
  return {
    method: 'POST',
    path,
    handler: async (req, res) => {
      let body: z.infer<S>
      try {
        const parsed = schema.safeParse(await readBody(req))
        if (!parsed.success) {
          send(res, 400, { error: { code: 'ERR_INVALID_INPUT', message: parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') } })
          return
        }
        body = parsed.data
      } catch (err) {
        send(res, 400, { error: { code: errorCode(err), message: errorMessage(err) } })
        return
      }
      const ac = new AbortController()
      res.on('close', () => { if (!res.writableFinished) ac.abort(new Error('the client went away')) })
      res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' })
      const line = (o: unknown): void => { if (!res.destroyed) res.write(JSON.stringify(o) + '\n') }
      let last = 0
      try {
        const result = await op(body, {
          signal: ac.signal,
          onProgress: (p) => {
            const now = Date.now()
            if (now - last < 200) return
            last = now
            line({ type: 'progress', ...p })
          }
        })
        line({ type: 'result', result })
      } catch (err) {
        line({ type: 'error', code: errorCode(err), message: errorMessage(err) })
      }
      res.end()
    }
  }
}

/** The store's routes, for the node's gateway. */
export function storeRoutes (store: ModelStore): StoreRoute[] {
  const p = STORE_API_PREFIX
  return [
    {
      method: 'GET',
      path: p,
      handler: async (_req, res) => {
        send(res, 200, { models: await store.list() })
      }
    },
    post(`${p}/import`, storeBodies.import, async (b, ctx) => await store.importDir(b.dir, { ...ctx, ...(b.id === undefined ? {} : { id: b.id }), ...(b.skillset === undefined ? {} : { skillset: b.skillset }), ...(b.maxBytes === undefined ? {} : { maxBytes: b.maxBytes }) })),
    post(`${p}/pull`, storeBodies.pull, async (b, ctx) => await store.pull(b.ref, { ...ctx, ...(b.peers === undefined ? {} : { peers: b.peers }), ...(b.id === undefined ? {} : { id: b.id }), ...(b.skillset === undefined ? {} : { skillset: b.skillset }), ...(b.maxBytes === undefined ? {} : { maxBytes: b.maxBytes }) })),
    post(`${p}/pin`, storeBodies.ref, async (b, ctx) => await store.pin(b.ref, ctx)),
    post(`${p}/unpin`, storeBodies.ref, async (b, ctx) => await store.unpin(b.ref, ctx)),
    post(`${p}/verify`, storeBodies.ref, async (b, ctx) => await store.verify(b.ref, ctx)),
    post(`${p}/export`, storeBodies.export, async (b, ctx) => await store.exportTo(b.ref, b.dir, ctx)),
    post(`${p}/gc`, storeBodies.gc, async (_b, ctx) => await store.gc(ctx))
  ]
}
