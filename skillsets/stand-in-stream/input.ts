/**
 * The streaming stand-in's job input, partial and output, validated at the
 * boundary. Everything is deterministic from the input: step i's partial is
 * `token(tag, i)`, and the final text is every partial's text joined, so a
 * client can check both the stream and the result.
 */
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { InputTooLargeError, InvalidInputError, ProtocolError } from '../../src/errors.ts'

/** Most steps one job may ask for (its cost: the "KV-cache tokens" of the stand-in). */
export const MAX_STEPS = 4096
export const MAX_TAG_CHARS = 200
/** Longest per-step delay an input may ask for. */
export const MAX_MS_PER_STEP = 10_000
/** Longest partial text the wire accepts from a stand-in-stream worker. */
export const MAX_PARTIAL_CHARS = 256

export interface StreamInput {
  /** Steps to run: one partial each. Its cost. */
  steps: number
  /** Free text, so equal-sized jobs stream different tokens. */
  tag?: string
  /** A timer of this many ms before each step (default 0: the next turn of the event loop). */
  msPerStep?: number
  /** The job fails with ERR_INFERENCE at this step (before emitting it). */
  failAt?: number
  /** The job stops making progress at this step (the watchdog or a cancel ends it). */
  hangAt?: number
}

export interface StreamPartial { text: string }
export interface StreamOutput { text: string, steps: number }

const inputSchema = z.strictObject({
  steps: z.number().int().min(1),
  tag: z.string().optional(),
  msPerStep: z.number().min(0).max(MAX_MS_PER_STEP).optional(),
  failAt: z.number().int().min(0).optional(),
  hangAt: z.number().int().min(0).optional()
})

function problems (error: z.ZodError, what: string): string {
  return error.issues.map((i) => `${i.path.join('.') || `(${what})`}: ${i.message}`).join('; ')
}

export function parseStreamInput (raw: unknown): StreamInput {
  const parsed = inputSchema.safeParse(raw)
  if (!parsed.success) throw new InvalidInputError(`invalid stand-in-stream input: ${problems(parsed.error, 'input')}`, { cause: parsed.error })
  const d = parsed.data
  if (d.steps > MAX_STEPS) throw new InputTooLargeError(`stand-in-stream input asks for ${d.steps} steps, at most ${MAX_STEPS} are allowed: split it into smaller jobs`)
  if (d.tag !== undefined && d.tag.length > MAX_TAG_CHARS) throw new InputTooLargeError(`stand-in-stream input: tag has ${d.tag.length} characters, at most ${MAX_TAG_CHARS} are allowed`)
  const out: StreamInput = { steps: d.steps }
  if (d.tag !== undefined) out.tag = d.tag
  if (d.msPerStep !== undefined) out.msPerStep = d.msPerStep
  if (d.failAt !== undefined) out.failAt = d.failAt
  if (d.hangAt !== undefined) out.hangAt = d.hangAt
  return out
}

/** Step i's text: a short word derived from the tag and i (with a leading space after the first). */
export function streamToken (tag: string, i: number): string {
  const h = createHash('sha256').update(`${tag}\u0000${i}`).digest('hex').slice(0, 6)
  return `${i === 0 ? '' : ' '}t${i}-${h}`
}

/** The whole text a job of this input streams. */
export function expectedText (input: StreamInput): string {
  let s = ''
  for (let i = 0; i < input.steps; i++) s += streamToken(input.tag ?? '', i)
  return s
}

const partialSchema = z.strictObject({ text: z.string().max(MAX_PARTIAL_CHARS) })
const outputSchema = z.strictObject({ text: z.string().max(MAX_STEPS * MAX_PARTIAL_CHARS), steps: z.number().int().min(0).max(MAX_STEPS) })

export function encodeStreamPartial (p: StreamPartial): { text: string } {
  return { text: p.text }
}

export function decodeStreamPartial (wire: unknown): StreamPartial {
  const parsed = partialSchema.safeParse(wire)
  if (!parsed.success) throw new ProtocolError(`malformed stand-in-stream partial: ${problems(parsed.error, 'partial')}`, { cause: parsed.error })
  return { text: parsed.data.text }
}

export function encodeStreamOutput (o: StreamOutput): { text: string, steps: number } {
  return { text: o.text, steps: o.steps }
}

export function decodeStreamOutput (wire: unknown): StreamOutput {
  const parsed = outputSchema.safeParse(wire)
  if (!parsed.success) throw new ProtocolError(`malformed stand-in-stream output: ${problems(parsed.error, 'output')}`, { cause: parsed.error })
  return { text: parsed.data.text, steps: parsed.data.steps }
}
