/**
 * `/v1/chat/completions` and `/v1/completions` on the `lm` skillset, and
 * chat with an image on `llava-next`: OpenAI's request mapped to a job's
 * wire input, the job's output mapped back, as one JSON response or as
 * server-sent events (`chat.completion.chunk` / `text_completion` chunks,
 * then `data: [DONE]`).
 *
 * Streaming: the response starts at the first partial (so an error before
 * any output is still a plain HTTP error with its status), naming the
 * worker that holds the job; a partial is written only once the previous
 * one was taken by the socket, so a slow reader pauses its own job on the
 * worker. An error after the stream started is sent as a last event
 * `data: {"error": {...}}` (which the openai client raises), without
 * `[DONE]`. A client that goes away cancels the job.
 */
import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { InvalidRequestError } from '../../errors.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { decodeLmOutput, decodeLmPartial } from '../../../skillsets/lm/codec.ts'
import type { LmOutput } from '../../../skillsets/lm/codec.ts'
import type { GatewayAnswer, GatewayJob } from './backend.ts'
import { openAiError } from './errors.ts'
import { decodeImage } from './images.ts'
import type { ChatRequest, CompletionsRequest } from './schemas.ts'

export const WORKER_HEADER = 'x-ipfs-accelerate-worker'

type Sampling = Pick<ChatRequest, 'max_tokens' | 'temperature' | 'top_p' | 'seed' | 'stop' | 'top_k' | 'repetition_penalty'> & { max_completion_tokens?: number | null }

/** OpenAI's sampling fields as the lm / llava-next wire input names them; absent fields take the skillset's defaults (greedy). */
export function samplingInput (r: Sampling): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const maxTokens = r.max_completion_tokens ?? r.max_tokens
  if (maxTokens != null) out.max_new_tokens = maxTokens
  if (r.temperature != null) out.temperature = r.temperature
  if (r.top_p != null) out.top_p = r.top_p
  if (r.seed != null) out.seed = r.seed
  if (r.stop != null) out.stop = typeof r.stop === 'string' ? [r.stop] : r.stop
  if (r.top_k !== undefined) out.top_k = r.top_k
  if (r.repetition_penalty !== undefined) out.repetition_penalty = r.repetition_penalty
  return out
}

/**
 * A chat request as a job input: text-only → `lm`; one image (an
 * `image_url` part with a data: URL) → `llava-next`, with `<image>` where
 * the image part stood. `developer` messages count as `system`.
 */
export function chatInput (r: ChatRequest, maxImageBytes: number): { skillset: SkillsetName, input: Record<string, unknown> } {
  let image: Uint8Array | undefined
  const messages = r.messages.map((m, i) => {
    const role = m.role === 'developer' ? 'system' : m.role
    if (typeof m.content === 'string') return { role, content: m.content }
    let content = ''
    for (const [j, part] of m.content.entries()) {
      if (part.type === 'text') { content += part.text; continue }
      const param = `messages.${i}.content.${j}.image_url.url`
      if (image !== undefined) throw new InvalidRequestError(`${param}: one image per request: send the others in requests of their own`, param)
      image = decodeImage(part.image_url.url, maxImageBytes, param)
      content += '<image>'
    }
    return { role, content }
  })
  const input = { messages, ...samplingInput(r), ...(image === undefined ? {} : { image }) }
  return { skillset: image === undefined ? 'lm' : 'llava-next', input }
}

export function completionInput (r: CompletionsRequest): Record<string, unknown> {
  return { prompt: typeof r.prompt === 'string' ? r.prompt : r.prompt[0], ...samplingInput(r) }
}

export interface GenerationShape {
  /** `chat.completion` or `text_completion`. */
  kind: 'chat' | 'text'
  stream: boolean
  includeUsage: boolean
  /** The model the job asks for (resolved before the job is sent, so every chunk names it). */
  model: string
}

function usage (out: LmOutput): Record<string, number> {
  // Prompt tokens are not counted: workers report only the generated ids (README: "usage").
  return { prompt_tokens: 0, completion_tokens: out.tokens.length, total_tokens: out.tokens.length }
}

function finalBody (shape: GenerationShape, id: string, created: number, answer: GatewayAnswer, out: LmOutput): Record<string, unknown> {
  const choice = shape.kind === 'chat'
    ? { index: 0, message: { role: 'assistant', content: out.text, refusal: null }, logprobs: null, finish_reason: out.finishReason }
    : { index: 0, text: out.text, logprobs: null, finish_reason: out.finishReason }
  return { id, object: shape.kind === 'chat' ? 'chat.completion' : 'text_completion', created, model: answer.model, choices: [choice], usage: usage(out) }
}

/** Write, and wait until the socket took it (or the client left): the job's pace follows the reader's. */
async function write (res: ServerResponse, text: string): Promise<void> {
  if (res.destroyed || res.write(text)) return
  await new Promise<void>((resolve) => {
    const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
    res.on('drain', done)
    res.on('close', done)
  })
}

/** Run a generation job and answer it: JSON, or server-sent events. */
export async function answerGeneration (res: ServerResponse, shape: GenerationShape, submit: (extra: Pick<GatewayJob, 'onLease' | 'onPartial'>) => Promise<GatewayAnswer>): Promise<void> {
  const id = `${shape.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('base64url')}`
  const created = Math.floor(Date.now() / 1000)
  if (!shape.stream) {
    // Generation skillsets always stream on the wire; the JSON answer waits for the final output.
    const answer = await submit({ onPartial: async () => {} })
    const body = JSON.stringify(finalBody(shape, id, created, answer, decodeLmOutput(answer.output)))
    res.writeHead(200, { [WORKER_HEADER]: answer.worker, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
    res.end(body)
    return
  }
  let worker = ''
  let model = shape.model
  const object = shape.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion'
  const chunk = (delta: string | undefined, finish: string | null, extra: Record<string, unknown> = {}): string => {
    const choice = shape.kind === 'chat'
      ? { index: 0, delta: delta === undefined ? {} : { content: delta }, logprobs: null, finish_reason: finish }
      : { index: 0, text: delta ?? '', logprobs: null, finish_reason: finish }
    return `data: ${JSON.stringify({ id, object, created, model, choices: [choice], ...extra })}\n\n`
  }
  const start = async (): Promise<void> => {
    if (res.headersSent) return
    res.writeHead(200, { [WORKER_HEADER]: worker, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' })
    if (shape.kind === 'chat') {
      await write(res, `data: ${JSON.stringify({ id, object, created, model, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] })}\n\n`)
    }
  }
  try {
    const answer = await submit({
      onLease: (w) => { worker = w },
      onPartial: async (p) => {
        const part = decodeLmPartial(p)
        await start()
        if (part.text !== '') await write(res, chunk(part.text, null))
      }
    })
    worker = answer.worker
    model = answer.model
    const out = decodeLmOutput(answer.output)
    await start()
    await write(res, chunk(undefined, out.finishReason))
    if (shape.includeUsage) await write(res, `data: ${JSON.stringify({ id, object, created, model, choices: [], usage: usage(out) })}\n\n`)
    await write(res, 'data: [DONE]\n\n')
    res.end()
  } catch (err) {
    if (!res.headersSent) throw err // answered as a plain HTTP error by the route
    if (!res.destroyed) res.end(`data: ${JSON.stringify(openAiError(err).body)}\n\n`)
  }
}
