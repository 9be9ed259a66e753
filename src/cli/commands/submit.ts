import type { Command } from '../command.ts'
import { bool, str, strs } from '../command.ts'
import { UsageError } from '../../errors.ts'
import { getSkillset } from '../../../skillsets/index.ts'
import { modelIdSchema } from '../../models/catalog.ts'
import { standInStreamCommand } from './submit-stream.ts'
import { lmCommand } from './submit-lm.ts'
import { detrCommand, llavaNextCommand } from './submit-image.ts'
import { CLIENT_OPTIONS, provenanceJson, withClient } from './submit-common.ts'

const embedCommand: Command = {
  name: 'embed',
  summary: 'embed texts into vectors',
  help: `Usage: ipfs-accelerate submit embed --text T [--text T2 ...] [options]

Joins the swarm as a client only, offers the job on job links to a few
workers that serve the model (over gossipsub too from the second round on,
or while no worker is advertised yet), leases it to the best bid and prints
the result. Without --bootstrap it finds the node running from the same data
dir (its node.json) and peers on the LAN by mDNS.

Options:
  --text T              a text to embed, repeatable (1 to 256 texts, 8192
                        characters each)
  --model ID            model to use (default: the worker's default embed model)
  --pooling mean|cls    pooling over tokens (default mean)
  --no-normalize        do not L2-normalise the vectors
  --bootstrap MULTIADDR worker to join through, repeatable
  --data-dir DIR        data dir of a local node to find (default ~/.ipfs-accelerate)
  --no-mdns             do not look for workers on the LAN
  --swarm-key FILE      the private swarm's key file (swarm.key format; env
                        IPFS_ACCELERATE_SWARM_KEY): needed to reach workers
                        started with --swarm-key
  --timeout SECONDS     give up after this long (default 30, up to 3600)
  --json                one JSON object on stdout:
                        {"jobId","worker","skillset","model",
                         "output":{"embeddings":number[][],"dims":N},
                         "tries":[{"worker","code","message"}],
                         "provenance":{"worker","modelCid","provider","dtype",
                                       "inputHash","signature"},"timings":{...}}
                        ("tries" names the workers that had the job before
                        the one that answered, and why they did not;
                        "timings.rounds" counts the offer rounds; the
                        provenance is signed by the worker's key over the
                        job, this client, the input and the output, and was
                        checked: a result that fails the check is refused
                        and the job offered elsewhere)
                        ("output.truncated" lists texts past the model's token
                        limit, embedded from their beginning only)
  -h, --help            this help

Exit status: 0 with a result; 1 when no worker answered in time, no worker
serves the model (ERR_NO_WORKER, at once, naming what the swarm serves), or
the job failed on every worker it was tried on (up to 3, each named), or
every worker that serves it refused this client (ERR_FORBIDDEN: their
\`start --allow-peer\` lists); 2 for invalid usage.
`,
  options: { ...CLIENT_OPTIONS, text: { type: 'string', multiple: true }, model: { type: 'string' }, pooling: { type: 'string' }, normalize: { type: 'boolean' } },
  async run (args) {
    const texts = strs(args, 'text')
    if (texts.length === 0) throw new UsageError('give at least one --text to embed')
    const model = str(args, 'model')
    if (model !== undefined && !modelIdSchema.safeParse(model).success) throw new UsageError(`--model ${JSON.stringify(model)} is not a model id (OWNER/NAME)`)
    const skillset = getSkillset('embed')
    const raw: Record<string, unknown> = { texts }
    const pooling = str(args, 'pooling')
    if (pooling !== undefined) raw.pooling = pooling
    const normalize = bool(args, 'normalize')
    if (normalize !== undefined) raw.normalize = normalize
    const input = skillset.parseInput(raw)
    return await withClient(args, async ({ client, remainingMs }) => {
      const res = await client.submit({ skillset: 'embed', ...(model === undefined ? {} : { model }), input: raw, cost: skillset.cost(input), timeoutMs: remainingMs() })
      const out = skillset.decodeOutput(res.output) as { embeddings: Float32Array, count: number, dims: number, truncated?: number[] }
      if (out.truncated !== undefined) process.stderr.write(`warning: text(s) ${out.truncated.map((i) => `#${i}`).join(', ')} passed the model's token limit and were embedded from their beginning only: split long texts into several\n`)
      const embeddings: number[][] = []
      for (let i = 0; i < out.count; i++) embeddings.push(Array.from(out.embeddings.subarray(i * out.dims, (i + 1) * out.dims)))
      if (bool(args, 'json') === true) {
        process.stdout.write(JSON.stringify({ jobId: res.jobId, traceId: res.traceId, worker: res.worker, skillset: 'embed', model: res.model, output: { embeddings, dims: out.dims, ...(out.truncated === undefined ? {} : { truncated: out.truncated }) }, tries: res.tries, provenance: provenanceJson(res.provenance), timings: res.timings }) + '\n')
        return 0
      }
      process.stdout.write(`job ${res.jobId} ran on ${res.worker} (${res.timings.rounds} offer round(s))\n`)
      for (const t of res.tries) process.stdout.write(`  tried first: ${t.worker}: ${t.code} ${t.message}\n`)
      process.stdout.write(`model ${res.model}, ${out.count} vector(s) of ${out.dims} dims, ${res.timings.totalMs.toFixed(1)} ms\n`)
      embeddings.forEach((v, i) => {
        const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0))
        process.stdout.write(`[${i}] |v|=${norm.toFixed(4)} [${v.slice(0, 6).map((x) => x.toFixed(4)).join(', ')}${v.length > 6 ? ', ...' : ''}]\n`)
      })
      return 0
    })
  }
}

export const submitCommand: Command = {
  name: 'submit',
  summary: 'submit a job to the swarm and print its result',
  help: 'Usage: ipfs-accelerate submit <skillset> [options]',
  options: {},
  subcommands: Object.freeze([embedCommand, lmCommand, detrCommand, llavaNextCommand, standInStreamCommand])
}
