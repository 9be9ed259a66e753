import { join, resolve } from 'node:path'
import type { Command, ParsedArgs } from '../command.ts'
import { bool, str, strs } from '../command.ts'
import { defaultDataDir } from '../../config/schema.ts'
import { UsageError } from '../../errors.ts'
import type { ModelEntry } from '../../interfaces/index.ts'
import { DEFAULT_CATALOG_PATH, loadCatalog, modelIdSchema } from '../../models/catalog.ts'
import type { GenerateProgress } from '../../models/generate/index.ts'
import { ensureGeneratedModel, generatedDtypes, isGeneratedModelComplete, modelDir } from '../../models/generate/index.ts'
import { folderCid } from '../../store/models/files.ts'

interface Result { id: string, dir: string, status: 'generated' | 'present', ms: number, cid: string, pinned: 'matches' | 'differs' | 'none' }

const GENERATOR_WORDS: Readonly<Record<Extract<ModelEntry['source'], { kind: 'generated' }>['generator'], (size: string | undefined) => string>> = Object.freeze({
  bert: (size) => `${size ?? ''} BERT`,
  qwen2: (size) => `${size ?? ''} Qwen2-shaped LM`,
  detr: (size) => `${size ?? ''} DETR-shaped detector`,
  'llava-next': (size) => `${size ?? ''} LLaVA-NeXT-shaped vision-language model`,
  'stand-in': () => 'stand-in placeholder'
})

function targets (args: ParsedArgs, all: readonly ModelEntry[]): ModelEntry[] {
  const ids = strs(args, 'id')
  if (ids.length === 0) return all.filter((m) => m.source.kind === 'generated')
  return [...new Set(ids)].map((id) => {
    if (!modelIdSchema.safeParse(id).success) throw new UsageError(`--id ${JSON.stringify(id)}: not a model id (NAME or OWNER/NAME)`)
    const entry = all.find((m) => m.id === id)
    if (entry === undefined) throw new UsageError(`--id ${id}: not in the catalog; generated models are ${all.filter((m) => m.source.kind === 'generated').map((m) => m.id).join(', ')}`)
    if (entry.source.kind !== 'generated') throw new UsageError(`--id ${id}: comes from the hub (${entry.source.repo}), not from the generator: use \`ipfs-accelerate models pull\``)
    return entry
  })
}

async function run (args: ParsedArgs): Promise<number> {
  const json = bool(args, 'json') === true
  const force = bool(args, 'force') === true
  const dataDir = str(args, 'data-dir') ?? process.env.IPFS_ACCELERATE_DATA_DIR ?? defaultDataDir()
  const modelsDir = resolve(str(args, 'models-dir') ?? join(dataDir, 'models'))
  const catalog = await loadCatalog(str(args, 'catalog') ?? DEFAULT_CATALOG_PATH)
  const entries = targets(args, catalog.models)
  const say = (line: string): void => { if (!json) process.stdout.write(line + '\n') }
  if (entries.length === 0) say('the catalog has no generated models')

  const results: Result[] = []
  for (const entry of entries) {
    if (entry.source.kind !== 'generated') continue
    const { generator, size, seed } = entry.source
    const dir = modelDir(modelsDir, entry.id)
    const dtypes = generatedDtypes(entry)
    let status: Result['status'] = 'present'
    let ms = 0
    if (!force && await isGeneratedModelComplete(dir, entry.source, dtypes)) {
      say(`${entry.id}: present in ${dir} (--force regenerates it)`)
    } else {
      say(`${entry.id}: generating ${GENERATOR_WORDS[generator](size)}, seed ${seed} → ${dir}`)
      const t0 = performance.now()
      const onProgress = (e: GenerateProgress): void => { say(`  ${(e.elapsedMs / 1000).toFixed(1).padStart(5)}s  ${e.step.padEnd(9)} ${e.detail}`) }
      await ensureGeneratedModel(entry, modelsDir, { force, onProgress })
      ms = Math.round(performance.now() - t0)
      status = 'generated'
      say(`${entry.id}: done in ${(ms / 1000).toFixed(1)} s`)
    }
    const cid = (await folderCid(dir)).toString()
    const pinned = entry.cid === undefined ? 'none' : entry.cid === cid ? 'matches' : 'differs'
    say(`${entry.id}: ${cid} (${pinned === 'none' ? 'models.json pins no CID for it' : pinned === 'matches' ? 'the CID models.json pins' : `models.json pins ${entry.cid ?? ''}: update it`})`)
    results.push({ id: entry.id, dir, status, ms, cid, pinned })
  }
  if (json) process.stdout.write(JSON.stringify({ modelsDir, models: results }) + '\n')
  return 0
}

export const modelsGenerateCommand: Command = {
  name: 'generate',
  summary: 'write the generated (seeded random) models of models.json to disk',
  help: `Usage: ipfs-accelerate models generate [--id ID]... [options]

Writes the catalog's generated models (source kind "generated": BERT encoders,
Qwen2-shaped decoder LMs, DETR-shaped detectors and LLaVA-NeXT-shaped models
with seeded RANDOM weights, real ONNX in the Hugging Face layout, and the
stand-ins' placeholders) into the models directory, one directory per model id:

  <models-dir>/<id>/config.json, tokenizer.json, tokenizer_config.json,
                    special_tokens_map.json, generated.json,
                    onnx/model.onnx (fp32), onnx/model_quantized.onnx (q8),
                    onnx/model_int8.onnx (int8, static scales)
  LMs (generator qwen2): generation_config.json and onnx/model.onnx only
                    (a merged decoder with a KV cache; byte-level BPE with a
                    ChatML chat template)
  detectors (generator detr): config.json, preprocessor_config.json
                    (DetrImageProcessor) and onnx/model.onnx only
  vision-language (generator llava-next): generation_config.json,
                    preprocessor_config.json, processor_config.json and
                    onnx/vision_encoder.onnx, embed_tokens.onnx and
                    decoder_model_merged.onnx only

The same seed always gives byte-identical files, so the same root CID on every
host: each model's CID is printed, and checked against the one models.json
pins (a node refuses to serve a generated model whose CID differs). A model that is already
complete is left alone; an incomplete or stale one is regenerated. Each model
is written to a temporary directory first and renamed into place, so an
interrupted run never leaves half a model. demo/minilm-random (all-MiniLM-L6-v2's
shape, 86 MiB fp32 + 22 MiB q8) takes a few seconds; demo/lm-bench-random
(75 M parameters, 288 MiB) takes longer: name the models you want with --id.

Options:
  --id ID           a model to generate, repeatable (default: every generated
                    model of the catalog)
  --models-dir DIR  where models go (default <data-dir>/models)
  --data-dir DIR    the node's data dir (default $IPFS_ACCELERATE_DATA_DIR,
                    else ~/.ipfs-accelerate)
  --catalog FILE    the model catalog (default: the package's models.json)
  --force           regenerate models that are already complete
  --json            no progress; one JSON object on stdout:
                    {"modelsDir","models":[{"id","dir","status":"generated"|"present",
                    "ms","cid","pinned":"matches"|"differs"|"none"}]}
  -h, --help        this help

Exit status: 0 when every model is in place; 1 when one could not be written
(ERR_MODEL_LOAD) or the catalog is invalid (ERR_CONFIG); 2 for invalid usage.
`,
  options: {
    id: { type: 'string', multiple: true },
    'models-dir': { type: 'string' },
    'data-dir': { type: 'string' },
    catalog: { type: 'string' },
    force: { type: 'boolean' },
    json: { type: 'boolean' }
  },
  run
}
