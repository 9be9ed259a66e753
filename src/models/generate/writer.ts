/**
 * Writes a generated BERT encoder, Qwen2-shaped LM, DETR-shaped detector or
 * LLaVA-NeXT-shaped vision-language model (or the stand-in
 * skillset's placeholder model) in the Hugging Face layout, and makes sure
 * the generated entries of models.json exist on disk (atomically: a crash
 * never leaves half a model where a loader would find it).
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, relative, resolve, sep } from 'node:path'
import type { ModelEntry } from '../../interfaces/index.ts'
import { ModelLoadError } from '../../errors.ts'
import { forComponent } from '../../logger.ts'
import type { BertSize } from './config.ts'
import { BERT_SHAPES, hfConfig } from './config.ts'
import type { GraphDtype } from './graph.ts'
import { buildBertOnnx } from './graph.ts'
import { generateBertWeights, parameterCount } from './weights.ts'
import { buildVocab, specialTokensMapJson, tokenizerConfigJson, tokenizerJson } from './vocab.ts'
import { standInFiles } from './stand-in.ts'
import type { LmSize } from './lm/config.ts'
import { lmModelFiles } from './lm/files.ts'
import type { DetrSize } from './detr/config.ts'
import { detrModelFiles } from './detr/files.ts'
import type { LlavaSize } from './llava/config.ts'
import { LLAVA_ONNX_FILES, llavaModelFiles } from './llava/files.ts'

const log = forComponent('ipfs-accelerate:models:generate')

/** Bumped whenever the generator's output changes for a given seed. */
export const GENERATOR_VERSION = 1
export const MANIFEST_FILE = 'generated.json'
/** transformers.js file names: dtype 'int8' loads model_int8.onnx, here the statically quantized graph. */
const ONNX_FILES: Readonly<Record<GraphDtype, string>> = Object.freeze({ fp32: 'onnx/model.onnx', q8: 'onnx/model_quantized.onnx', int8: 'onnx/model_int8.onnx' })
export const GRAPH_DTYPES: readonly GraphDtype[] = Object.freeze(Object.keys(ONNX_FILES) as GraphDtype[])

export interface GenerateProgress { step: 'weights' | 'tokenizer' | 'onnx' | 'write' | 'done', detail: string, elapsedMs: number }

export interface GenerateOptions {
  size: BertSize
  seed: number
  outDir: string
  /** ONNX variants to write; default all: fp32 (model.onnx), q8 (model_quantized.onnx, dynamic) and int8 (model_int8.onnx, static). */
  dtypes?: readonly GraphDtype[]
  onProgress?: (event: GenerateProgress) => void
  signal?: AbortSignal
}

export interface GeneratedFile { path: string, bytes: number, sha256: string }

export interface GeneratedModel {
  dir: string
  size: BertSize
  seed: number
  parameters: number
  files: GeneratedFile[]
  ms: number
}

interface Manifest { generator: GeneratedSource['generator'], version: number, size?: BertSize | LmSize | DetrSize | LlavaSize, seed: number, files: GeneratedFile[] }

function json (v: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v, null, 2) + '\n')
}

/** Generate a model into `outDir` (created; existing files are overwritten). */
export async function generateBertModel (opts: GenerateOptions): Promise<GeneratedModel> {
  const shape = BERT_SHAPES[opts.size]
  if (shape === undefined) throw new RangeError(`unknown generated model size "${String(opts.size)}"`)
  if (!Number.isSafeInteger(opts.seed) || opts.seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${opts.seed}`)
  const dtypes = [...new Set<GraphDtype>(opts.dtypes ?? GRAPH_DTYPES)].sort()
  for (const d of dtypes) if (!(d in ONNX_FILES)) throw new RangeError(`unknown ONNX variant "${String(d)}": ${GRAPH_DTYPES.join(', ')}`)
  const t0 = performance.now()
  const progress = (step: GenerateProgress['step'], detail: string): void => {
    opts.signal?.throwIfAborted()
    opts.onProgress?.({ step, detail, elapsedMs: performance.now() - t0 })
  }

  progress('weights', `${parameterCount(shape)} parameters`)
  const weights = generateBertWeights(shape, opts.seed)
  progress('tokenizer', `${shape.vocabSize} tokens`)
  const vocab = buildVocab(shape.vocabSize)
  const contents = new Map<string, Uint8Array>([
    ['config.json', json(hfConfig(shape, opts.size, opts.seed))],
    ['tokenizer.json', json(tokenizerJson(vocab))],
    ['tokenizer_config.json', json(tokenizerConfigJson(shape.maxPositionEmbeddings))],
    ['special_tokens_map.json', json(specialTokensMapJson())]
  ])
  for (const dtype of dtypes) {
    progress('onnx', ONNX_FILES[dtype])
    contents.set(ONNX_FILES[dtype], buildBertOnnx(weights, dtype))
  }

  const files = await writeModelFiles(opts.outDir, contents, (path, bytes) => { progress('write', `${path} (${(bytes.byteLength / 1048576).toFixed(1)} MiB)`) })
  await writeFile(join(opts.outDir, MANIFEST_FILE), json({ generator: 'bert', version: GENERATOR_VERSION, size: opts.size, seed: opts.seed, files } satisfies Manifest))
  const ms = performance.now() - t0
  progress('done', `${files.length} files`)
  return { dir: opts.outDir, size: opts.size, seed: opts.seed, parameters: parameterCount(shape), files, ms }
}

async function writeModelFiles (outDir: string, contents: ReadonlyMap<string, Uint8Array>, onFile: (path: string, bytes: Uint8Array) => void): Promise<GeneratedFile[]> {
  const files: GeneratedFile[] = []
  for (const [path, bytes] of contents) {
    onFile(path, bytes)
    const full = join(outDir, path)
    await mkdir(dirname(full), { recursive: true })
    await writeFile(full, bytes)
    files.push({ path, bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') })
  }
  return files
}

export interface GeneratedFromFiles<S> { dir: string, size: S, seed: number, parameters: number, files: GeneratedFile[], ms: number }
export type GeneratedLm = GeneratedFromFiles<LmSize>
export type GeneratedDetr = GeneratedFromFiles<DetrSize>
export type GeneratedLlava = GeneratedFromFiles<LlavaSize>

interface FilesOptions<S> { size: S, seed: number, outDir: string, onProgress?: (event: GenerateProgress) => void, signal?: AbortSignal }
type ProgressFn = (step: GenerateProgress['step'], detail: string) => void

/** Write a generator's path → bytes map and its manifest into `outDir` (created; existing files are overwritten). */
async function generateFromFiles<S extends LmSize | DetrSize | LlavaSize> (generator: 'qwen2' | 'detr' | 'llava-next', opts: FilesOptions<S>, make: (progress: ProgressFn) => { files: Map<string, Uint8Array>, parameters: number }): Promise<GeneratedFromFiles<S>> {
  const t0 = performance.now()
  const progress: ProgressFn = (step, detail) => {
    opts.signal?.throwIfAborted()
    opts.onProgress?.({ step, detail, elapsedMs: performance.now() - t0 })
  }
  const { files: contents, parameters } = make(progress)
  const files = await writeModelFiles(opts.outDir, contents, (path, bytes) => { progress('write', `${path} (${(bytes.byteLength / 1048576).toFixed(2)} MiB)`) })
  await writeFile(join(opts.outDir, MANIFEST_FILE), json({ generator, version: GENERATOR_VERSION, size: opts.size, seed: opts.seed, files } satisfies Manifest))
  progress('done', `${files.length} files`)
  return { dir: opts.outDir, size: opts.size, seed: opts.seed, parameters, files, ms: performance.now() - t0 }
}

/** Generate a Qwen2-shaped decoder LM (fp32 only) into `outDir` (created; existing files are overwritten). */
export async function generateLmModel (opts: FilesOptions<LmSize>): Promise<GeneratedLm> {
  return await generateFromFiles('qwen2', opts, (progress) => lmModelFiles(opts.size, opts.seed, progress))
}

/** Generate a DETR-shaped detector (fp32 only) into `outDir` (created; existing files are overwritten). */
export async function generateDetrModel (opts: FilesOptions<DetrSize>): Promise<GeneratedDetr> {
  return await generateFromFiles('detr', opts, (progress) => detrModelFiles(opts.size, opts.seed, progress))
}

/** Generate a LLaVA-NeXT-shaped model (fp32 only: three ONNX sessions) into `outDir` (created; existing files are overwritten). */
export async function generateLlavaModel (opts: FilesOptions<LlavaSize>): Promise<GeneratedLlava> {
  return await generateFromFiles('llava-next', opts, (progress) => llavaModelFiles(opts.size, opts.seed, progress))
}

/** Write the stand-in skillset's placeholder model (config.json, onnx/model.onnx, manifest) into `outDir`. */
export async function generateStandInModel (opts: { seed: number, outDir: string, onProgress?: (event: GenerateProgress) => void, signal?: AbortSignal }): Promise<GeneratedFile[]> {
  const t0 = performance.now()
  opts.signal?.throwIfAborted()
  const files = await writeModelFiles(opts.outDir, standInFiles(opts.seed), (path) => {
    opts.onProgress?.({ step: 'write', detail: path, elapsedMs: performance.now() - t0 })
  })
  await writeFile(join(opts.outDir, MANIFEST_FILE), json({ generator: 'stand-in', version: GENERATOR_VERSION, seed: opts.seed, files } satisfies Manifest))
  opts.onProgress?.({ step: 'done', detail: `${files.length} files`, elapsedMs: performance.now() - t0 })
  return files
}

/** The directory of a model under a models root (`<root>/<owner>/<name>`). */
export function modelDir (modelsRoot: string, id: string): string {
  const root = resolve(modelsRoot)
  const dir = resolve(root, ...id.split('/'))
  const rel = relative(root, dir)
  if (rel === '' || rel.startsWith('..') || rel.split(sep).includes('..')) throw new ModelLoadError(`model id "${id}" escapes the models directory`)
  return dir
}

type GeneratedSource = Extract<ModelEntry['source'], { kind: 'generated' }>

/** Whether `dir` holds a complete model generated from `source` (manifest and file sizes). */
export async function isGeneratedModelComplete (dir: string, source: GeneratedSource, dtypes: readonly GraphDtype[]): Promise<boolean> {
  let manifest: Manifest
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as Manifest
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    log.warn('unreadable manifest: the model will be regenerated', { dir, error: err })
    return false
  }
  if (manifest.generator !== source.generator || manifest.version !== GENERATOR_VERSION ||
      manifest.size !== source.size || manifest.seed !== source.seed || !Array.isArray(manifest.files)) return false
  const listed = new Set(manifest.files.map((f) => f.path))
  // A vision-language model has one file per session (fp32 only), not model.onnx.
  const onnx = source.generator === 'llava-next' ? Object.values(LLAVA_ONNX_FILES) : dtypes.map((d) => ONNX_FILES[d])
  if (onnx.some((f) => !listed.has(f))) return false
  for (const f of manifest.files) {
    const st = await stat(join(dir, f.path)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
    if (st?.size !== f.bytes) return false
  }
  return true
}

/** The ONNX variants each generator writes (the stand-in writes a placeholder in fp32's place). */
export const WRITTEN_DTYPES: Readonly<Record<GeneratedSource['generator'], readonly GraphDtype[]>> = Object.freeze({
  bert: GRAPH_DTYPES,
  qwen2: Object.freeze(['fp32' as const]),
  detr: Object.freeze(['fp32' as const]),
  'llava-next': Object.freeze(['fp32' as const]),
  'stand-in': Object.freeze(['fp32' as const])
})

/** The ONNX variants generated for a catalog entry: those of its dtypes the generator writes (the stand-in: its placeholder). */
export function generatedDtypes (entry: ModelEntry): GraphDtype[] {
  const source = entry.source
  if (source.kind !== 'generated') throw new ModelLoadError(`model "${entry.id}" is not a generated model (source kind "${source.kind}")`)
  const written = WRITTEN_DTYPES[source.generator]
  const dtypes = source.generator === 'stand-in' ? [...written] : written.filter((d) => entry.dtypes.includes(d))
  if (dtypes.length === 0) throw new ModelLoadError(`model "${entry.id}": the ${source.generator} generator writes ${written.join(', ')} only, the entry lists ${entry.dtypes.join(', ')}`)
  return dtypes
}

export interface EnsureOptions {
  /** Regenerate even when a complete model is there. */
  force?: boolean
  onProgress?: (event: GenerateProgress) => void
  signal?: AbortSignal
}

/**
 * Make sure a `generated` catalog entry exists under `<modelsRoot>/<entry.id>/`:
 * generate it into a temporary sibling directory and rename it into place.
 * Returns the model's directory.
 */
export async function ensureGeneratedModel (entry: ModelEntry, modelsRoot: string, options: EnsureOptions = {}): Promise<string> {
  const source = entry.source
  if (source.kind !== 'generated') throw new ModelLoadError(`model "${entry.id}" is not a generated model (source kind "${source.kind}")`)
  const dir = modelDir(modelsRoot, entry.id)
  const dtypes = generatedDtypes(entry)
  if (options.force !== true && await isGeneratedModelComplete(dir, source, dtypes)) return dir

  const suffix = `${process.pid}-${randomBytes(4).toString('hex')}`
  const tmp = `${dir}.tmp-${suffix}`
  const old = `${dir}.old-${suffix}`
  await mkdir(dirname(dir), { recursive: true })
  try {
    log.info('generating model', { model: entry.id, generator: source.generator, ...(source.size === undefined ? {} : { size: source.size }), seed: source.seed })
    const t0 = performance.now()
    const common = { seed: source.seed, outDir: tmp, onProgress: options.onProgress, signal: options.signal }
    if (source.generator === 'stand-in') await generateStandInModel(common)
    else if (source.generator === 'qwen2') await generateLmModel({ ...common, size: source.size })
    else if (source.generator === 'detr') await generateDetrModel({ ...common, size: source.size })
    else if (source.generator === 'llava-next') await generateLlavaModel({ ...common, size: source.size })
    else await generateBertModel({ ...common, size: source.size, dtypes })
    // Move a stale or incomplete copy aside, then put the new one in place.
    const hadOld = await rename(dir, old).then(() => true, (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false
      throw err
    })
    try {
      await rename(tmp, dir)
    } catch (err) {
      // Another process put a model there first: keep theirs if it is complete.
      const code = (err as NodeJS.ErrnoException).code
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && await isGeneratedModelComplete(dir, source, dtypes)) return dir
      throw err
    } finally {
      if (hadOld) await rm(old, { recursive: true, force: true })
    }
    log.info('model generated', { model: entry.id, dir, ms: Math.round(performance.now() - t0) })
    return dir
  } catch (err) {
    if (err instanceof ModelLoadError) throw err
    throw new ModelLoadError(`cannot generate model "${entry.id}" into ${dir}: ${(err as Error).message}`, { cause: err })
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}
