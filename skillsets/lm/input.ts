/**
 * The lm skillset's job input, parsed once at the boundary with zod:
 * `prompt` xor `messages`, and the generation parameters. Shape problems and
 * out-of-range values are InvalidInputError; sizes over a limit are
 * InputTooLargeError.
 */
import { z } from 'zod'
import { InputTooLargeError, InvalidInputError } from '../../src/errors.ts'
import { CHAT_TOKENS_FIXED, CHAT_TOKENS_PER_MESSAGE, DEFAULT_MAX_NEW_TOKENS } from './constants.ts'

export interface ChatMessage { role: 'system' | 'user' | 'assistant', content: string }

export interface LmInput {
  prompt?: string
  messages?: ChatMessage[]
  maxNewTokens: number
  /** 0: greedy (the default); > 0: sampling at this temperature. */
  temperature: number
  /** 0: off. */
  topK: number
  /** 1: off. */
  topP: number
  /** 1: off (HF's CTRL-style penalty over prompt and generated ids). */
  repetitionPenalty: number
  /** The job's own random stream; default 0. */
  seed: number
  stop: string[]
}

export interface LmLimits {
  maxNewTokens: number
  maxPromptBytes: number
  maxMessages: number
  maxStops: number
  maxStopBytes: number
}

const utf8 = new TextEncoder()
export const utf8Length = (s: string): number => utf8.encode(s).byteLength

/**
 * The fields of a generation job besides what it generates from: the
 * prompt (`prompt` xor `messages`) and the sampling parameters. The lm
 * schema is exactly these; an image skillset (llava-next) adds its own.
 */
export function generationFields (limits: LmLimits): z.ZodRawShape {
  return {
    prompt: z.string().optional(),
    messages: z.array(z.strictObject({ role: z.enum(['system', 'user', 'assistant']), content: z.string() })).min(1).max(limits.maxMessages).optional(),
    max_new_tokens: z.number().int().min(1).max(limits.maxNewTokens).optional(),
    temperature: z.number().min(0).max(10).optional(),
    top_k: z.number().int().min(0).max(1_000_000).optional(),
    top_p: z.number().gt(0).max(1).optional(),
    repetition_penalty: z.number().gt(0).max(10).optional(),
    seed: z.number().int().min(0).max(0xffffffff).optional(),
    stop: z.array(z.string().min(1).refine((s) => utf8Length(s) <= limits.maxStopBytes, `a stop sequence has at most ${limits.maxStopBytes} UTF-8 bytes`)).max(limits.maxStops).optional()
  }
}

/** Exactly one of prompt and messages. */
export const onePrompt = (v: { prompt?: unknown, messages?: unknown }): boolean => (v.prompt === undefined) !== (v.messages === undefined)
export const ONE_PROMPT_MESSAGE = 'give exactly one of prompt and messages'

function schema (limits: LmLimits): z.ZodType {
  return z.strictObject(generationFields(limits)).refine(onePrompt, ONE_PROMPT_MESSAGE)
}

/** `what: problem; ...` for every issue of a failed parse. */
export function zodProblems (error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ')
}

/** UTF-8 bytes the prompt brings (for messages: roles and contents). */
export function promptBytes (input: Pick<LmInput, 'prompt' | 'messages'>): number {
  if (input.prompt !== undefined) return utf8Length(input.prompt)
  return (input.messages ?? []).reduce((n, m) => n + utf8Length(m.role) + utf8Length(m.content), 0)
}

/**
 * The job's cost in KV-cache tokens: an upper bound on prompt tokens plus
 * max_new_tokens, computable by a client without the tokenizer. Byte-level
 * BPE gives at most one token per UTF-8 byte; the chat template adds at most
 * CHAT_TOKENS_PER_MESSAGE per message and CHAT_TOKENS_FIXED once.
 */
export function lmCost (input: Pick<LmInput, 'prompt' | 'messages' | 'maxNewTokens'>): number {
  const template = input.messages === undefined ? 0 : CHAT_TOKENS_FIXED + CHAT_TOKENS_PER_MESSAGE * input.messages.length
  return promptBytes(input) + template + input.maxNewTokens
}

/** The wire fields of generationFields, as zod gives them back. */
export interface GenerationWire { prompt?: string, messages?: ChatMessage[], max_new_tokens?: number, temperature?: number, top_k?: number, top_p?: number, repetition_penalty?: number, seed?: number, stop?: string[] }

/** The LmInput of parsed generation fields, with the defaults; `what` names the skillset in messages. Checks the prompt's size. */
export function generationInput (v: GenerationWire, limits: LmLimits, what: string): LmInput {
  const input: LmInput = {
    ...(v.prompt === undefined ? {} : { prompt: v.prompt }),
    ...(v.messages === undefined ? {} : { messages: v.messages }),
    maxNewTokens: v.max_new_tokens ?? DEFAULT_MAX_NEW_TOKENS,
    temperature: v.temperature ?? 0,
    topK: v.top_k ?? 0,
    topP: v.top_p ?? 1,
    repetitionPenalty: v.repetition_penalty ?? 1,
    seed: v.seed ?? 0,
    stop: v.stop ?? []
  }
  const bytes = promptBytes(input)
  if (bytes > limits.maxPromptBytes) throw new InputTooLargeError(`${what} input: the prompt has ${bytes} UTF-8 bytes, at most ${limits.maxPromptBytes} are allowed: shorten it`)
  return input
}

export function parseLmInput (raw: unknown, limits: LmLimits): LmInput {
  const parsed = schema(limits).safeParse(raw)
  if (!parsed.success) throw new InvalidInputError(`invalid lm input: ${zodProblems(parsed.error)}`, { cause: parsed.error })
  const input = generationInput(parsed.data as GenerationWire, limits, 'lm')
  if (input.prompt === '') throw new InvalidInputError('invalid lm input: prompt: must not be empty')
  return input
}
