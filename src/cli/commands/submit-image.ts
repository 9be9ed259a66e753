/**
 * `submit detr` and `submit llava-next`: jobs that carry an image. The
 * image file is checked here (a PNG, JPEG or WebP, bounded) and travels
 * inside the job up to 4 MiB, or as a CID that this client serves to the
 * worker (src/store/attachments.ts) above it.
 */
import type { Command } from '../command.ts'
import { bool, str } from '../command.ts'
import { UsageError } from '../../errors.ts'
import { getSkillset } from '../../../skillsets/index.ts'
import { modelIdSchema } from '../../models/catalog.ts'
import { CLIENT_OPTIONS, provenanceJson, readImageFile, withClient } from './submit-common.ts'
import { runStreamingSubmit, STREAM_SUBMIT_HELP, STREAM_SUBMIT_OPTIONS } from './submit-stream.ts'
import { GENERATION_HELP, GENERATION_OPTIONS, generationInput, tokenTimings } from './submit-lm.ts'

const IMAGE_HELP = `  --image PATH          a PNG, JPEG or WebP file; up to 4 MiB it travels inside
                        the job, above that this client serves it to the
                        worker by CID while the job runs (workers refuse
                        images over their images.maxMB, 32 by default)`

interface Detection { label: string, score: number, box: { xmin: number, ymin: number, xmax: number, ymax: number } }

export const detrCommand: Command = {
  name: 'detr',
  summary: 'detect objects in an image',
  help: `Usage: ipfs-accelerate submit detr --image PATH [--threshold X] [--top-k K] [--json] [options]

Detects objects in an image on a worker that serves a detr model (default:
the worker's default, demo/detr-random offline, whose detections mean
nothing: its weights are random). Boxes are in the image's own pixels.

Options:
${IMAGE_HELP}
  --threshold X         keep detections scoring above X (0 to 1; default 0.5)
  --top-k K             keep the K best detections at most (1 to 1000;
                        default 100)
  --model ID            model to use (default: the worker's default detr model)
  --bootstrap MULTIADDR worker to join through, repeatable
  --data-dir DIR        data dir of a local node to find (default ~/.ipfs-accelerate)
  --no-mdns             do not look for workers on the LAN
  --swarm-key FILE      the private swarm's key file
  --timeout SECONDS     give up after this long (default 30, up to 3600)
  --json                one JSON object on stdout:
                        {"jobId","worker","skillset","model",
                         "output":{"detections":[{"label","score",
                           "box":{"xmin","ymin","xmax","ymax"}}],
                           "width","height"},
                         "tries","provenance","timings"}
  -h, --help            this help

Exit status: 0 with a result; 1 when the job failed (a broken or oversized
image: ERR_INVALID_INPUT or ERR_INPUT_TOO_LARGE) or no worker answered;
2 for invalid usage (an unreadable file, or not an image).
`,
  options: { ...CLIENT_OPTIONS, image: { type: 'string' }, threshold: { type: 'string' }, 'top-k': { type: 'string' }, model: { type: 'string' } },
  async run (args) {
    const file = str(args, 'image')
    if (file === undefined) throw new UsageError('give --image PATH (a PNG, JPEG or WebP file)')
    const model = str(args, 'model')
    if (model !== undefined && !modelIdSchema.safeParse(model).success) throw new UsageError(`--model ${JSON.stringify(model)} is not a model id (OWNER/NAME)`)
    const bytes = await readImageFile('image', file)
    const raw: Record<string, unknown> = {}
    const threshold = str(args, 'threshold')
    if (threshold !== undefined) {
      const x = Number(threshold)
      if (threshold.trim() === '' || !Number.isFinite(x)) throw new UsageError(`--threshold ${JSON.stringify(threshold)}: expected a number from 0 to 1`)
      raw.threshold = x
    }
    const topK = str(args, 'top-k')
    if (topK !== undefined) {
      const k = Number(topK)
      if (!Number.isInteger(k)) throw new UsageError(`--top-k ${JSON.stringify(topK)}: expected a whole number`)
      raw.top_k = k
    }
    const skillset = getSkillset('detr')
    const input = skillset.parseInput({ ...raw, image: bytes })
    return await withClient(args, async ({ client, remainingMs, image }) => {
      const res = await client.submit({ skillset: 'detr', ...(model === undefined ? {} : { model }), input: { ...raw, image: await image(bytes) }, cost: skillset.cost(input), timeoutMs: remainingMs() })
      const output = skillset.encodeOutput(skillset.decodeOutput(res.output))
      if (bool(args, 'json') === true) {
        process.stdout.write(JSON.stringify({ jobId: res.jobId, traceId: res.traceId, worker: res.worker, skillset: 'detr', model: res.model, output, tries: res.tries, provenance: provenanceJson(res.provenance), timings: res.timings }) + '\n')
        return 0
      }
      const detections = (output.detections ?? []) as Detection[]
      process.stdout.write(`job ${res.jobId} ran on ${res.worker}: model ${res.model}, ${detections.length} detection(s), ${res.timings.totalMs.toFixed(1)} ms\n`)
      for (const t of res.tries) process.stdout.write(`  tried first: ${t.worker}: ${t.code} ${t.message}\n`)
      for (const d of detections) {
        const b = d.box
        process.stdout.write(`${d.label.padEnd(16)} ${d.score.toFixed(3)}  [${[b.xmin, b.ymin, b.xmax, b.ymax].map((v) => v.toFixed(1)).join(', ')}]\n`)
      }
      return 0
    })
  }
}

export const llavaNextCommand: Command = {
  name: 'llava-next',
  summary: 'describe an image: text generation from an image and a prompt, streamed',
  help: `Usage: ipfs-accelerate submit llava-next --image PATH (--prompt P | --messages FILE)
         [--max-tokens N] [--temperature T] [--seed S] [--stop S]... [--stream] [--json] [options]

Generates text about an image on a worker that serves a llava-next model
(default: the worker's default, demo/llava-next-random offline, whose text
means nothing: its weights are random). The image is tiled at the model's
resolutions (anyres); the prompt's <image> tag marks where it goes, else it
goes first.

Options:
${IMAGE_HELP}
${GENERATION_HELP}
${STREAM_SUBMIT_HELP}
`,
  options: { ...STREAM_SUBMIT_OPTIONS, ...GENERATION_OPTIONS, image: { type: 'string' } },
  async run (args) {
    const file = str(args, 'image')
    if (file === undefined) throw new UsageError('give --image PATH (a PNG, JPEG or WebP file)')
    const bytes = await readImageFile('image', file)
    return await runStreamingSubmit(args, 'llava-next', await generationInput(args), { timings: tokenTimings, image: { key: 'image', bytes } })
  }
}
