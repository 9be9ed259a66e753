/**
 * The embed skillset's job input: parsed once, at the boundary, with zod.
 * Shape problems are InvalidInputError; sizes over a limit are InputTooLargeError.
 */
import { z } from 'zod'
import { InputTooLargeError, InvalidInputError } from '../../src/errors.ts'
import type { Pooling } from './pooling.ts'
import { POOLINGS } from './pooling.ts'

export interface EmbedInput {
  texts: string[]
  pooling: Pooling
  normalize: boolean
}

export interface EmbedLimits {
  maxTexts: number
  maxTextChars: number
  maxTotalChars: number
}

const inputSchema = z.strictObject({
  texts: z.array(z.string().min(1, 'a text must not be empty')).min(1, 'texts must hold at least one text'),
  pooling: z.enum(POOLINGS as [Pooling, ...Pooling[]]).optional(),
  normalize: z.boolean().optional()
})

export function parseEmbedInput (raw: unknown, limits: EmbedLimits): EmbedInput {
  // Refuse an oversized array before zod walks it.
  if (typeof raw === 'object' && raw !== null && 'texts' in raw && Array.isArray(raw.texts) && raw.texts.length > limits.maxTexts) {
    throw new InputTooLargeError(`embed input has ${raw.texts.length} texts, at most ${limits.maxTexts} are allowed: split it into smaller jobs`)
  }
  const parsed = inputSchema.safeParse(raw)
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ')
    throw new InvalidInputError(`invalid embed input: ${problems}`, { cause: parsed.error })
  }
  const { texts, pooling = 'mean', normalize = true } = parsed.data
  let total = 0
  for (let i = 0; i < texts.length; i++) {
    const n = (texts[i] as string).length
    if (n > limits.maxTextChars) throw new InputTooLargeError(`embed input: texts[${i}] has ${n} characters, at most ${limits.maxTextChars} are allowed`)
    total += n
  }
  if (total > limits.maxTotalChars) throw new InputTooLargeError(`embed input: the texts have ${total} characters in all, at most ${limits.maxTotalChars} are allowed: split them into smaller jobs`)
  return { texts, pooling, normalize }
}
