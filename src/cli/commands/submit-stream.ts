/**
 * Generic plumbing for `submit <streaming skillset>`: joins the swarm as a
 * client, submits the job over job protocol 1.1.0 and, with --stream,
 * prints each partial as it arrives. A skillset's subcommand (the
 * stand-in-stream's here; `lm` adds its own) builds the input from its
 * flags and says how a partial prints; the rest is shared.
 *
 * Output: with --stream, a partial's `text` (when it has one) is written
 * as it comes, else its JSON, one a line; with --json, one JSON line per
 * partial ({"seq","partial"}) when --stream, then the result object, which
 * carries `partials` and `timings.firstPartialMs`.
 */
import type { Command, OptionSpec, ParsedArgs } from '../command.ts'
import { bool, str } from '../command.ts'
import { UsageError } from '../../errors.ts'
import { getStreamingSkillset } from '../../../skillsets/index.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { modelIdSchema } from '../../models/catalog.ts'
import { CLIENT_OPTIONS, provenanceJson, withClient } from './submit-common.ts'
import type { JobImage } from './submit-common.ts'

/** Options every streaming submit takes. */
export const STREAM_SUBMIT_OPTIONS: OptionSpec = Object.freeze({
  ...CLIENT_OPTIONS,
  model: { type: 'string' },
  stream: { type: 'boolean' },
  window: { type: 'string' }
})

export const STREAM_SUBMIT_HELP = `Common options:
  --model ID            model to use (default: the worker's default for the skillset)
  --stream              print each partial as it arrives
  --window N            partials the worker may have unread (default 16, 1-256):
                        a slow reader pauses the job on the worker
  --bootstrap MULTIADDR worker to join through, repeatable
  --data-dir DIR        data dir of a local node to find (default ~/.ipfs-accelerate)
  --no-mdns             do not look for workers on the LAN
  --swarm-key FILE      the private swarm's key file
  --timeout SECONDS     give up after this long (default 30, up to 3600)
  --json                the result as one JSON object on stdout (with --stream,
                        one {"seq","partial"} line per partial first); it has
                        "partials" (how many came) and "timings.firstPartialMs"
  -h, --help            this help

Exit status: 0 with a result; 1 when the job failed (ERR_STREAM_BROKEN when
its worker was lost after some partials and it could not resume there: it is
not retried elsewhere), or no worker answered; 2 for invalid usage.`

/** Submit a streaming job from parsed flags; `raw` is the job's input in wire form. Returns the exit code. */
export async function runStreamingSubmit (args: ParsedArgs, name: SkillsetName, raw: Record<string, unknown>, extra: { timings?: (output: Record<string, unknown>, timings: { totalMs: number, firstPartialMs?: number }) => Record<string, number>, image?: JobImage } = {}): Promise<number> {
  const skillset = getStreamingSkillset(name)
  const model = str(args, 'model')
  if (model !== undefined && !modelIdSchema.safeParse(model).success) throw new UsageError(`--model ${JSON.stringify(model)} is not a model id (OWNER/NAME)`)
  const input = skillset.parseInput(extra.image === undefined ? raw : { ...raw, [extra.image.key]: extra.image.bytes })
  const windowRaw = str(args, 'window')
  const window = windowRaw === undefined ? undefined : Number(windowRaw)
  if (window !== undefined && (!Number.isInteger(window) || window < 1 || window > 256)) throw new UsageError(`--window ${String(windowRaw)}: expected a whole number from 1 to 256`)
  const json = bool(args, 'json') === true
  const stream = bool(args, 'stream') === true
  return await withClient(args, async ({ client, remainingMs, image }) => {
    const wire = extra.image === undefined ? raw : { ...raw, [extra.image.key]: await image(extra.image.bytes) }
    const res = await client.submit({
      skillset: name,
      ...(model === undefined ? {} : { model }),
      input: wire,
      cost: skillset.cost(input),
      timeoutMs: remainingMs(),
      stream: {
        ...(window === undefined ? {} : { window }),
        onPartial: async (partial, seq) => {
          if (!stream) return
          skillset.decodePartial(partial) // refuse a malformed partial before printing it
          const line = json ? JSON.stringify({ seq, partial }) + '\n' : typeof partial.text === 'string' ? partial.text : JSON.stringify(partial) + '\n'
          // Back-pressure reaches the worker: a stdout that does not drain pauses the job.
          if (!process.stdout.write(line)) await new Promise<void>((resolve) => { process.stdout.once('drain', () => { resolve() }) })
        }
      }
    })
    const output = skillset.encodeOutput(skillset.decodeOutput(res.output))
    if (json) {
      process.stdout.write(JSON.stringify({ jobId: res.jobId, traceId: res.traceId, worker: res.worker, skillset: name, model: res.model, output, partials: res.partials ?? 0, tries: res.tries, provenance: provenanceJson(res.provenance), timings: { ...res.timings, ...extra.timings?.(output, res.timings) } }) + '\n')
    } else {
      if (stream) process.stdout.write('\n')
      process.stdout.write(`job ${res.jobId} ran on ${res.worker}: ${res.partials ?? 0} partial(s), first after ${(res.timings.firstPartialMs ?? 0).toFixed(1)} ms, ${res.timings.totalMs.toFixed(1)} ms in all\n`)
      if (!stream) process.stdout.write(JSON.stringify(output) + '\n')
    }
    return 0
  })
}

/** `submit stand-in-stream`: the streaming stand-in (tests, demos of the streaming path). */
export const standInStreamCommand: Command = {
  name: 'stand-in-stream',
  summary: 'stream deterministic tokens from the streaming stand-in (tests)',
  help: `Usage: ipfs-accelerate submit stand-in-stream --steps N [--tag T] [--ms-per-step MS] [options]

Runs a job of the streaming stand-in (model demo/stand-in-stream): one
deterministic token per step, joined into the final text.

Options:
  --steps N             steps (tokens) to stream, 1-4096
  --tag T               free text that makes the tokens differ
  --ms-per-step MS      a timer before each step on the worker (default 0)

${STREAM_SUBMIT_HELP}
`,
  options: { ...STREAM_SUBMIT_OPTIONS, steps: { type: 'string' }, tag: { type: 'string' }, 'ms-per-step': { type: 'string' } },
  async run (args) {
    const steps = Number(str(args, 'steps'))
    if (!Number.isInteger(steps)) throw new UsageError('give --steps N (a whole number)')
    const raw: Record<string, unknown> = { steps }
    const tag = str(args, 'tag')
    if (tag !== undefined) raw.tag = tag
    const msPerStep = str(args, 'ms-per-step')
    if (msPerStep !== undefined) raw.msPerStep = Number(msPerStep)
    return await runStreamingSubmit(args, 'stand-in-stream', raw)
  }
}
