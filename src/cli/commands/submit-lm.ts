/**
 * `submit lm`: text generation through the swarm. Builds the job input from
 * flags (a prompt, or chat messages from a JSON file rendered with the
 * model's chat template) and runs it on the shared streaming plumbing: with
 * --stream the text prints as it is generated.
 */
import { readFile, stat } from 'node:fs/promises'
import type { Command, OptionSpec, ParsedArgs } from '../command.ts'
import { str, strs } from '../command.ts'
import { UsageError } from '../../errors.ts'
import { runStreamingSubmit, STREAM_SUBMIT_HELP, STREAM_SUBMIT_OPTIONS } from './submit-stream.ts'

const MAX_MESSAGES_FILE_BYTES = 1024 * 1024

/** A number flag, or undefined when absent; a UsageError names the flag when it is not a number. */
function num (args: ParsedArgs, flag: string, integer: boolean): number | undefined {
  const raw = str(args, flag)
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (raw.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new UsageError(`--${flag} ${JSON.stringify(raw)}: expected ${integer ? 'a whole number' : 'a number'}`)
  return n
}

async function readMessages (file: string): Promise<unknown> {
  let size: number
  try {
    size = (await stat(file)).size
  } catch (err) {
    throw new UsageError(`--messages ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  if (size > MAX_MESSAGES_FILE_BYTES) throw new UsageError(`--messages ${file}: ${size} bytes, over the ${MAX_MESSAGES_FILE_BYTES}-byte limit`)
  try {
    return JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    throw new UsageError(`--messages ${file}: not JSON (${(err as Error).message}): give an array of {"role": "system"|"user"|"assistant", "content": "..."}`)
  }
}

/** Generation flags (shared by `submit lm` and `submit llava-next`). */
export const GENERATION_OPTIONS: OptionSpec = Object.freeze({
  prompt: { type: 'string' },
  messages: { type: 'string' },
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  'repetition-penalty': { type: 'string' },
  seed: { type: 'string' },
  stop: { type: 'string', multiple: true }
})

/** The wire input of a generation job from its flags: a prompt or messages, and the sampling parameters. */
export async function generationInput (args: ParsedArgs): Promise<Record<string, unknown>> {
  const prompt = str(args, 'prompt')
  const messagesFile = str(args, 'messages')
  if ((prompt === undefined) === (messagesFile === undefined)) throw new UsageError('give exactly one of --prompt P and --messages FILE')
  const raw: Record<string, unknown> = prompt !== undefined ? { prompt } : { messages: await readMessages(messagesFile as string) }
  const fields: Array<[string, string, boolean]> = [
    ['max-tokens', 'max_new_tokens', true], ['temperature', 'temperature', false], ['top-k', 'top_k', true],
    ['top-p', 'top_p', false], ['repetition-penalty', 'repetition_penalty', false], ['seed', 'seed', true]
  ]
  for (const [flag, key, integer] of fields) {
    const v = num(args, flag, integer)
    if (v !== undefined) raw[key] = v
  }
  const stop = strs(args, 'stop')
  if (stop.length > 0) raw.stop = stop
  return raw
}

/** `timings.firstTokenMs` and `tokensPerSecond` (after the first token) of a generation result. */
export function tokenTimings (output: Record<string, unknown>, t: { totalMs: number, firstPartialMs?: number }): Record<string, number> {
  const tokens = Array.isArray(output.tokens) ? output.tokens.length : 0
  const first = t.firstPartialMs ?? t.totalMs
  const decodeMs = t.totalMs - first
  return { firstTokenMs: first, tokensPerSecond: tokens > 1 && decodeMs > 0 ? (tokens - 1) / (decodeMs / 1000) : 0 }
}

/** The help text of the generation flags and the result (shared by `submit lm` and `submit llava-next`). */
export const GENERATION_HELP = `  --prompt P            the text to continue, as is
  --messages FILE       a JSON array of {"role", "content"} (system, user,
                        assistant), rendered with the model's chat template
  --max-tokens N        tokens to generate at most (default 128, up to 2048)
  --temperature T       0 (greedy, the default) to 10
  --top-k K             sample from the K most likely tokens (0: off)
  --top-p P             sample from the smallest set with probability >= P
  --repetition-penalty R  above 1 discourages repeats (default 1: off)
  --seed S              0 to 4294967295: the same seed, the same text
  --stop S              end before this text, repeatable (up to 4, 64 bytes
                        each)

The result ("output") is {"text", "tokens", "finishReason"}: "stop" (eos
or a stop sequence, which is left out of the text) or "length". With --json,
"timings" has "firstTokenMs" and "tokensPerSecond" (after the first token).
`

export const lmCommand: Command = {
  name: 'lm',
  summary: 'generate text with a language model, streamed token by token',
  help: `Usage: ipfs-accelerate submit lm (--prompt P | --messages FILE) [--max-tokens N]
         [--temperature T] [--top-k K] [--top-p P] [--repetition-penalty R]
         [--seed S] [--stop S]... [--stream] [--json] [options]

Generates text on a worker that serves an lm model (default: the worker's
default, demo/lm-random offline, whose text means nothing: its weights are
random). Greedy unless --temperature is above 0; with a --seed, sampling
gives the same text on any worker, alone or beside other jobs.

Options:
${GENERATION_HELP}
${STREAM_SUBMIT_HELP}
`,
  options: { ...STREAM_SUBMIT_OPTIONS, ...GENERATION_OPTIONS },
  async run (args) {
    return await runStreamingSubmit(args, 'lm', await generationInput(args), { timings: tokenTimings })
  }
}

