/**
 * The stand-in skillset's job input and output, validated at the boundary
 * with zod, and the digest that makes each output checkable: sha256 of the
 * canonical JSON of the input (keys sorted, absent fields left out).
 */
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { InputTooLargeError, InvalidInputError, ProtocolError } from '../../src/errors.ts'

export const MAX_ITEMS = 1024
export const MAX_TAG_CHARS = 200
export const DIGEST_BYTES = 32

export interface StandInInput {
  /** Work units: the job's cost, and how long it runs (msPerItem each). */
  items: number
  /** Free text, so equal-sized jobs get different digests. */
  tag?: string
  /** The batch holding this job never finishes (the stall watchdog recovers). */
  hang?: boolean
  /** The batch holding this job fails with ERR_INFERENCE. */
  fail?: boolean
}

export interface StandInOutput {
  /** sha256 of the canonical JSON of the input. */
  digest: Uint8Array
}

const inputSchema = z.strictObject({
  items: z.number().int().min(1),
  tag: z.string().optional(),
  hang: z.boolean().optional(),
  fail: z.boolean().optional()
})

function problems (error: z.ZodError, what: string): string {
  return error.issues.map((i) => `${i.path.join('.') || `(${what})`}: ${i.message}`).join('; ')
}

export function parseStandInInput (raw: unknown): StandInInput {
  const parsed = inputSchema.safeParse(raw)
  if (!parsed.success) throw new InvalidInputError(`invalid stand-in input: ${problems(parsed.error, 'input')}`, { cause: parsed.error })
  const { items, tag, hang, fail } = parsed.data
  if (items > MAX_ITEMS) throw new InputTooLargeError(`stand-in input has ${items} items, at most ${MAX_ITEMS} are allowed: split it into smaller jobs`)
  if (tag !== undefined && tag.length > MAX_TAG_CHARS) throw new InputTooLargeError(`stand-in input: tag has ${tag.length} characters, at most ${MAX_TAG_CHARS} are allowed`)
  return {
    items,
    ...(tag === undefined ? {} : { tag }),
    ...(hang === undefined ? {} : { hang }),
    ...(fail === undefined ? {} : { fail })
  }
}

/** The input as JSON with its keys sorted and absent fields left out. */
export function canonicalJson (input: StandInInput): string {
  const entries = Object.entries(input).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return JSON.stringify(Object.fromEntries(entries))
}

/** sha256 of the canonical JSON of the input, in fresh memory (transferable). */
export function standInDigest (input: StandInInput): Uint8Array {
  return new Uint8Array(createHash('sha256').update(canonicalJson(input)).digest())
}

const outputSchema = z.strictObject({ digest: z.instanceof(Uint8Array) })

export function encodeStandInOutput (out: StandInOutput): { digest: Uint8Array } {
  if (!(out.digest instanceof Uint8Array) || out.digest.byteLength !== DIGEST_BYTES) throw new ProtocolError(`stand-in output: the digest must be ${DIGEST_BYTES} bytes`)
  return { digest: out.digest }
}

/** From the wire: validated, copied. Throws ProtocolError. */
export function decodeStandInOutput (wire: unknown): StandInOutput {
  const parsed = outputSchema.safeParse(wire)
  if (!parsed.success) throw new ProtocolError(`malformed stand-in output: ${problems(parsed.error, 'output')}`, { cause: parsed.error })
  const { digest } = parsed.data
  if (digest.byteLength !== DIGEST_BYTES) throw new ProtocolError(`malformed stand-in output: digest has ${digest.byteLength} bytes, expected ${DIGEST_BYTES}`)
  return { digest: new Uint8Array(digest) }
}
