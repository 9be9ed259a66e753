/**
 * The llava-next skillset's job input, parsed once at the boundary: one
 * `image` (bytes, or `{ cid, size }` of an image in the content store) and
 * lm's generation fields (`prompt` xor `messages`, max_new_tokens,
 * temperature, top_k, top_p, repetition_penalty, seed, stop; lm/input.ts).
 *
 * The prompt places the image with one `<image>` tag. Without one the
 * image goes first: `<image>\n` is put before the prompt, or before the
 * first user message's content (the form LLaVA-NeXT was trained on). More
 * than one tag is refused (one image per job).
 */
import { z } from 'zod'
import { InvalidInputError } from '../../src/errors.ts'
import type { ImageLimits, ImageSource } from '../../src/interfaces/index.ts'
import { parseImageSource } from '../image/index.ts'
import type { GenerationWire, LmInput, LmLimits } from '../lm/input.ts'
import { generationFields, generationInput, lmCost, ONE_PROMPT_MESSAGE, onePrompt, zodProblems } from '../lm/input.ts'

export const IMAGE_TAG = '<image>'

export interface LlavaNextInput extends LmInput {
  image: ImageSource
}

function schema (limits: LmLimits): z.ZodType {
  return z.strictObject({ image: z.unknown().optional(), ...generationFields(limits) }).refine((v) => onePrompt(v as { prompt?: unknown, messages?: unknown }), ONE_PROMPT_MESSAGE)
}

const tags = (s: string): number => s.split(IMAGE_TAG).length - 1

/** The prompt with exactly one `<image>` tag (the image first when the client placed none). */
function placeImage (input: LmInput): Pick<LmInput, 'prompt' | 'messages'> {
  if (input.prompt !== undefined) {
    const n = tags(input.prompt)
    if (n > 1) throw new InvalidInputError(`invalid llava-next input: prompt has ${n} ${IMAGE_TAG} tags, a job takes one image`)
    return { prompt: n === 1 ? input.prompt : `${IMAGE_TAG}\n${input.prompt}` }
  }
  const messages = input.messages ?? []
  const n = messages.reduce((sum, m) => sum + tags(m.content), 0)
  if (n > 1) throw new InvalidInputError(`invalid llava-next input: messages have ${n} ${IMAGE_TAG} tags, a job takes one image`)
  if (n === 1) return { messages }
  const first = messages.findIndex((m) => m.role === 'user')
  if (first === -1) throw new InvalidInputError('invalid llava-next input: messages: no user message to show the image with')
  return { messages: messages.map((m, i) => i === first ? { role: m.role, content: `${IMAGE_TAG}\n${m.content}` } : m) }
}

export function parseLlavaNextInput (raw: unknown, limits: LmLimits, images: Pick<ImageLimits, 'maxBytes'>): LlavaNextInput {
  const parsed = schema(limits).safeParse(raw)
  if (!parsed.success) throw new InvalidInputError(`invalid llava-next input: ${zodProblems(parsed.error)}`, { cause: parsed.error })
  const v = parsed.data as GenerationWire & { image?: unknown }
  if (v.image === undefined) throw new InvalidInputError('invalid llava-next input: image: required (the image\'s bytes, or { cid, size })')
  const image = parseImageSource(v.image, images, 'llava-next input: image')
  const text = generationInput(v, limits, 'llava-next')
  const { prompt: _p, messages: _m, ...params } = text
  return { ...params, ...placeImage(text), image }
}

/**
 * The job's cost in KV-cache tokens: lm's bound for the text (one token per
 * UTF-8 byte, the chat template's tokens, max_new_tokens) plus the most
 * tokens an image can become. The `<image>` tag's own bytes are counted in
 * the text too, so the bound holds with a little to spare.
 */
export function llavaNextCost (input: Pick<LlavaNextInput, 'prompt' | 'messages' | 'maxNewTokens'>, maxImageTokens: number): number {
  return lmCost(input) + maxImageTokens
}
