/**
 * The OpenAI-compatible routes under `/v1`, on a GatewayBackend (the
 * node's long-lived job client: jobs run on this node or anywhere in the
 * swarm). Each route reads its body within a bound, validates it with zod,
 * resolves the model (404 `model_not_found` for one nobody serves), builds
 * the job's wire input, checks it with the skillset's own `parseInput`
 * (the same rules the worker applies, so a bad input is a 400 here), and
 * answers in OpenAI's shapes with a header naming the worker.
 *
 * `/v1/detections` is not an OpenAI route; it answers like OpenAI's lists:
 * `{ object: "list", model, data: [{ label, score, box }], width, height }`.
 *
 * Access is this router's own guard (made in src/node/openai-gateway.ts), not the store
 * API's token: refusals come back in OpenAI's error shape.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { InvalidRequestError, ModelNotFoundError, NoWorkerError, SkillsetNotFoundError } from '../../errors.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { getSkillset } from '../../../skillsets/index.ts'
import { decodeEmbedOutput } from '../../../skillsets/embed/codec.ts'
import { MAX_DIMS } from '../../../skillsets/embed/constants.ts'
import { decodeDetrOutput, encodeDetrOutput } from '../../../skillsets/detr/codec.ts'
import type { Route } from '../http.ts'
import type { RequestGuard } from '../guard.ts'
import type { GatewayBackend, GatewayJob } from './backend.ts'
import { parseBody, readJsonBody } from './body.ts'
import { sendOpenAiError, sendRefusal } from './errors.ts'
import { answerGeneration, chatInput, completionInput, WORKER_HEADER } from './generation.ts'
import { decodeImage } from './images.ts'
import { chatSchema, completionsSchema, detectionsSchema, embeddingsSchema, MAX_EMBED_INPUTS } from './schemas.ts'

export const TEXT_BODY_BYTES = 1024 * 1024
/** Bodies that may carry an image as base64 (4/3 of its bytes) in JSON. */
export const IMAGE_BODY_BYTES = 24 * 1024 * 1024
/** An inline image stays below the 16 MiB input frame of the image skillsets (src/node/frame-limits.ts). */
export const MAX_INLINE_IMAGE_BYTES = 15 * 1024 * 1024

const EMBED_TIMEOUT_MS = 60_000
const GENERATE_TIMEOUT_MS = 300_000
const DETECT_TIMEOUT_MS = 120_000

export interface OpenAiRoutesInit {
  backend: GatewayBackend
  guard: RequestGuard
  /** The node's bound on one image (config `images.maxMB`); inline images are held below the image frame limit too. */
  maxImageBytes: number
}

function json (res: ServerResponse, body: unknown, worker?: string): void {
  const text = JSON.stringify(body)
  res.writeHead(200, { ...(worker === undefined ? {} : { [WORKER_HEADER]: worker }), 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** The model a request names (404 when nobody serves it, 400 when it is for another endpoint), or the default of the first fitting skillset. */
function resolveModel (backend: GatewayBackend, id: string | undefined, skillsets: readonly SkillsetName[], endpoint: string): { id: string, skillset: SkillsetName } {
  const models = backend.models()
  if (id !== undefined) {
    const m = models.find((x) => x.id === id)
    if (m === undefined) {
      const served = models.filter((x) => skillsets.includes(x.skillset)).map((x) => x.id).slice(0, 32)
      throw new ModelNotFoundError(`the model \`${id}\` is not served by this node or any worker it knows; ${endpoint} serves ${served.length === 0 ? 'nothing in this swarm yet' : served.join(', ')} (GET /v1/models lists all)`)
    }
    if (!skillsets.includes(m.skillset)) throw new InvalidRequestError(`the model \`${id}\` is a \`${m.skillset}\` model: ${endpoint} takes ${skillsets.join(' or ')} models`, 'model')
    return m
  }
  // Own models come first: the default is this node's when it serves one.
  for (const s of skillsets) {
    const m = models.find((x) => x.skillset === s && x.workers > 0)
    if (m !== undefined) return m
  }
  // Nothing to name: no capacity for this kind of job (503), where a named model nobody serves is a 404.
  throw new NoWorkerError(`no \`${skillsets.join('` or `')}\` model is served by this node or any worker it knows: start a worker with one (--models)`)
}

/** The job's cost by its skillset's own rules; an input the skillset refuses is a 400/413 now. */
function costOf (skillset: SkillsetName, input: Record<string, unknown>): number {
  let s
  try {
    s = getSkillset(skillset)
  } catch (err) {
    throw new SkillsetNotFoundError(`this node's version has no \`${skillset}\` skillset, so it cannot send such jobs: upgrade it`, { cause: err })
  }
  return s.cost(s.parseInput(input) as never)
}

/** The HTTP client went away: the job is cancelled wherever it runs. */
function clientGone (req: IncomingMessage, res: ServerResponse): AbortSignal {
  const ac = new AbortController()
  res.on('close', () => { if (!res.writableFinished) ac.abort(new Error('the HTTP client went away')) })
  req.on('error', () => { ac.abort(new Error('the HTTP request failed')) })
  return ac.signal
}

export function openAiRoutes (init: OpenAiRoutesInit): Route[] {
  const { backend } = init
  const maxImage = Math.min(init.maxImageBytes, MAX_INLINE_IMAGE_BYTES)
  const route = (method: 'GET' | 'POST', path: string, run: (req: IncomingMessage, res: ServerResponse) => Promise<void>): Route => ({
    method,
    path,
    guard: init.guard,
    refusal: sendRefusal,
    scope: '/v1/',
    handler: async (req, res) => {
      try {
        await run(req, res)
      } catch (err) {
        if (!res.headersSent) sendOpenAiError(res, err)
        else res.destroy()
      }
    }
  })
  const job = (req: IncomingMessage, res: ServerResponse, model: { id: string, skillset: SkillsetName }, input: Record<string, unknown>, timeoutMs: number): GatewayJob => ({
    skillset: model.skillset, model: model.id, input, cost: costOf(model.skillset, input), timeoutMs, signal: clientGone(req, res)
  })

  return [
    route('GET', '/v1/models', async (_req, res) => {
      const data = backend.models().map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: 'ipfs-accelerate', skillset: m.skillset, workers: m.workers, local: m.local }))
      json(res, { object: 'list', data })
    }),

    route('POST', '/v1/embeddings', async (req, res) => {
      const body = parseBody(embeddingsSchema, await readJsonBody(req, TEXT_BODY_BYTES))
      const model = resolveModel(backend, body.model, ['embed'], '/v1/embeddings')
      const texts = typeof body.input === 'string' ? [body.input] : body.input
      const answer = await backend.submit(job(req, res, model, { texts }, EMBED_TIMEOUT_MS))
      const out = decodeEmbedOutput(answer.output, { maxTexts: MAX_EMBED_INPUTS, maxDims: MAX_DIMS })
      // base64 is of little-endian float32 (what the openai client decodes): the wire's own bytes, checked by the decode above.
      const le = answer.output.embeddings as Uint8Array
      const rowBytes = out.dims * 4
      const data = Array.from({ length: out.count }, (_, index) => ({
        object: 'embedding',
        index,
        embedding: body.encoding_format === 'base64'
          ? Buffer.from(le.buffer, le.byteOffset + index * rowBytes, rowBytes).toString('base64')
          : Array.from(out.embeddings.subarray(index * out.dims, (index + 1) * out.dims))
      }))
      // Tokens are counted inside the worker's thread and not reported: usage says 0 (README).
      json(res, { object: 'list', data, model: answer.model, usage: { prompt_tokens: 0, total_tokens: 0 } }, answer.worker)
    }),

    route('POST', '/v1/chat/completions', async (req, res) => {
      const body = parseBody(chatSchema, await readJsonBody(req, IMAGE_BODY_BYTES))
      const { skillset, input } = chatInput(body, maxImage)
      const model = resolveModel(backend, body.model, body.model === undefined ? [skillset] : ['lm', 'llava-next'], '/v1/chat/completions')
      if (model.skillset !== skillset) {
        throw new InvalidRequestError(skillset === 'llava-next' ? `the model \`${model.id}\` takes no images: name a llava-next model, or send text only` : `the model \`${model.id}\` needs an image: add an image_url content part`, 'model')
      }
      const base = job(req, res, model, input, GENERATE_TIMEOUT_MS)
      await answerGeneration(res, { kind: 'chat', stream: body.stream === true, includeUsage: body.stream_options?.include_usage === true, model: model.id }, async (extra) => await backend.submit({ ...base, ...extra }))
    }),

    route('POST', '/v1/completions', async (req, res) => {
      const body = parseBody(completionsSchema, await readJsonBody(req, TEXT_BODY_BYTES))
      const model = resolveModel(backend, body.model, ['lm'], '/v1/completions')
      const base = job(req, res, model, completionInput(body), GENERATE_TIMEOUT_MS)
      await answerGeneration(res, { kind: 'text', stream: body.stream === true, includeUsage: body.stream_options?.include_usage === true, model: model.id }, async (extra) => await backend.submit({ ...base, ...extra }))
    }),

    route('POST', '/v1/detections', async (req, res) => {
      const body = parseBody(detectionsSchema, await readJsonBody(req, IMAGE_BODY_BYTES))
      const model = resolveModel(backend, body.model, ['detr'], '/v1/detections')
      const image = decodeImage(body.image, maxImage, 'image', true)
      const input = { image, ...(body.threshold === undefined ? {} : { threshold: body.threshold }), ...(body.top_k === undefined ? {} : { top_k: body.top_k }) }
      const answer = await backend.submit(job(req, res, model, input, DETECT_TIMEOUT_MS))
      // Checked by the skillset's own decoder (shape, score order, boxes inside the image), then as plain values.
      const { detections, width, height } = encodeDetrOutput(decodeDetrOutput(answer.output))
      json(res, { object: 'list', model: answer.model, data: detections, width, height }, answer.worker)
    })
  ]
}
