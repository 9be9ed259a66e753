/**
 * Wire forms of the lm skillset's final output and partials. Token ids
 * travel as plain integer arrays (CBOR packs small ones tightly); what
 * comes off the wire is checked before it is trusted (ProtocolError).
 */
import { z } from 'zod'
import { ProtocolError } from '../../src/errors.ts'

export type FinishReason = 'stop' | 'length'

/** The job's result: the text (stop sequence excluded), every generated id, and why it ended. */
export interface LmOutput {
  text: string
  tokens: number[]
  finishReason: FinishReason
}

/** One decode step of a job: the new token ids and the text they release (deltas join into the final text). */
export interface LmPartial {
  tokens: number[]
  text: string
}

const MAX_TOKENS = 1 << 20
const tokenIds = z.array(z.number().int().min(0).max(0x7fffffff)).max(MAX_TOKENS)

const outputSchema = z.strictObject({ text: z.string(), tokens: tokenIds, finishReason: z.enum(['stop', 'length']) })
const partialSchema = z.strictObject({ tokens: tokenIds, text: z.string() })

function parse<T> (schema: z.ZodType<T>, wire: unknown, what: string): T {
  const parsed = schema.safeParse(wire)
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(value)'}: ${i.message}`).join('; ')
    throw new ProtocolError(`malformed lm ${what}: ${problems}`, { cause: parsed.error })
  }
  return parsed.data
}

export function encodeLmOutput (out: LmOutput): Record<string, unknown> {
  return { text: out.text, tokens: out.tokens, finishReason: out.finishReason }
}

export function decodeLmOutput (wire: unknown): LmOutput {
  return parse(outputSchema, wire, 'output')
}

export function encodeLmPartial (p: LmPartial): Record<string, unknown> {
  return { tokens: p.tokens, text: p.text }
}

export function decodeLmPartial (wire: unknown): LmPartial {
  return parse(partialSchema, wire, 'partial')
}
