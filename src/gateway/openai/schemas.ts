/**
 * Request bodies of the OpenAI-compatible routes, as zod schemas: OpenAI's
 * field names and ranges, strict (a field this gateway does not honour is
 * refused by name instead of silently ignored), with bounded sizes. Two
 * fields are extensions that vLLM and others also accept: `top_k` and
 * `repetition_penalty`.
 */
import { z } from 'zod'

const modelId = z.string().min(1).max(200)
const uint32 = z.number().int().min(0).max(0xffffffff)
/** What OpenAI clients send for "not set". */
const opt = <T extends z.ZodType>(t: T): z.ZodOptional<z.ZodNullable<T>> => t.nullable().optional()

export const MAX_EMBED_INPUTS = 256

export const embeddingsSchema = z.strictObject({
  model: modelId.optional(),
  input: z.union([
    z.string().min(1, 'a text must not be empty'),
    z.array(z.string().min(1, 'a text must not be empty')).min(1).max(MAX_EMBED_INPUTS)
  ], { error: 'input: a string, or an array of 1-256 non-empty strings (token arrays are not accepted)' }),
  /** The openai client sends base64 unless told otherwise, and decodes it itself. */
  encoding_format: z.enum(['float', 'base64']).optional(),
  user: z.string().max(256).optional()
})
export type EmbeddingsRequest = z.infer<typeof embeddingsSchema>

const textPart = z.strictObject({ type: z.literal('text'), text: z.string().max(1 << 20) })
const imagePart = z.strictObject({
  type: z.literal('image_url'),
  image_url: z.strictObject({ url: z.string().min(1), detail: z.enum(['auto', 'low', 'high']).optional() })
})
const message = z.strictObject({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(z.discriminatedUnion('type', [textPart, imagePart])).min(1).max(64)])
})
export type ChatMessageIn = z.infer<typeof message>

/** Sampling fields shared by chat and completions. */
const generation = {
  model: modelId.optional(),
  max_tokens: opt(z.number().int().min(1).max(2048)),
  temperature: opt(z.number().min(0).max(2)),
  top_p: opt(z.number().gt(0).max(1)),
  seed: opt(uint32),
  stop: opt(z.union([z.string().min(1), z.array(z.string().min(1)).max(4)])),
  stream: opt(z.boolean()),
  stream_options: opt(z.strictObject({ include_usage: z.boolean().optional() })),
  n: opt(z.literal(1, { error: 'n: only 1 choice per request' })),
  user: z.string().max(256).optional(),
  top_k: z.number().int().min(0).max(1_000_000).optional(),
  repetition_penalty: z.number().gt(0).max(10).optional()
}

export const chatSchema = z.strictObject({
  ...generation,
  messages: z.array(message).min(1).max(256),
  max_completion_tokens: opt(z.number().int().min(1).max(2048))
})
export type ChatRequest = z.infer<typeof chatSchema>

export const completionsSchema = z.strictObject({
  ...generation,
  prompt: z.union([z.string().min(1), z.array(z.string().min(1)).length(1, 'prompt: one prompt per request')]),
  echo: opt(z.literal(false, { error: 'echo: not supported' }))
})
export type CompletionsRequest = z.infer<typeof completionsSchema>

export const detectionsSchema = z.strictObject({
  model: modelId.optional(),
  /** A data: URL or bare base64 of a PNG, JPEG or WebP file. */
  image: z.string().min(1),
  threshold: z.number().min(0).max(1).optional(),
  top_k: z.number().int().min(1).max(1000).optional()
})
export type DetectionsRequest = z.infer<typeof detectionsSchema>
