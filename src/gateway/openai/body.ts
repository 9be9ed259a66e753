/**
 * Request bodies of the OpenAI-style routes: read with a byte bound (a body
 * declared past it is refused before it is read), parsed as JSON, and
 * validated with zod once. Every problem is reported at once; the first
 * one's field is the error's `param`.
 */
import type { IncomingMessage } from 'node:http'
import type { z } from 'zod'
import { InputTooLargeError, InvalidRequestError } from '../../errors.ts'

export async function readJsonBody (req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > maxBytes) throw new InputTooLargeError(`the request body of ${declared} bytes is over this endpoint's ${maxBytes}-byte limit: send less at once`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of req) {
    size += (c as Buffer).byteLength
    if (size > maxBytes) throw new InputTooLargeError(`the request body is over this endpoint's ${maxBytes}-byte limit: send less at once`)
    chunks.push(c as Buffer)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') throw new InvalidRequestError('the request body is empty: send a JSON object')
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new InvalidRequestError(`the request body is not JSON: ${(err as Error).message}`, null, { cause: err })
  }
}

export function parseBody<S extends z.ZodType> (schema: S, raw: unknown): z.infer<S> {
  const parsed = schema.safeParse(raw)
  if (parsed.success) return parsed.data
  const issues = parsed.error.issues
  const path = (i: (typeof issues)[number]): string => i.path.map(String).join('.')
  const first = issues[0]
  const problems = issues.slice(0, 8).map((i) => `${path(i) || '(body)'}: ${i.message}`).join('; ')
  throw new InvalidRequestError(`invalid request: ${problems}`, first === undefined || path(first) === '' ? null : path(first), { cause: parsed.error })
}
