/**
 * The detr runner in-process on demo/detr-random (generated into
 * bench/.models on first use): images/s for batches of 1 and 8 jobs
 * (the three test photographs, 214-400 px high), through the whole runner
 * (decode, resize, one padded session.run, post-processing) and through
 * session.run alone on the prepared images; and where a job's time goes.
 * Rounds interleave the two batch sizes; figures are medians.
 * Prints a table; writes bench/results/detr-direct.json.
 * Usage: node bench/detr-direct.ts [--threads 1] [--rounds 5]
 */
import { access, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import * as ort from 'onnxruntime-node'
import { generateDetrModel } from '../src/models/generate/index.ts'
import type { ExecutionPlan } from '../src/interfaces/index.ts'
import { createDetrSkillset, loadDetrRunner } from '../skillsets/detr/index.ts'
import { packBatch, parseProcessorConfig, prepareImage } from '../skillsets/detr/preprocess.ts'
import { decodeImage, DEFAULT_IMAGE_LIMITS } from '../skillsets/image/index.ts'
import { photo } from '../test/helpers/images.ts'
import { median, printTable } from './lib.ts'

const { values } = parseArgs({ options: { threads: { type: 'string', default: '1' }, rounds: { type: 'string', default: '5' }, help: { type: 'boolean', short: 'h' } } })
if (values.help === true) {
  process.stdout.write('Usage: node bench/detr-direct.ts [--threads 1] [--rounds 5]\n')
  process.exit(0)
}
const ROUNDS = Number(values.rounds)
const ID = 'demo/detr-random'
const root = join(import.meta.dirname, '.models')
const dir = join(root, ID)
await access(join(dir, 'onnx', 'model.onnx')).catch(async () => {
  await generateDetrModel({ size: 'tiny', seed: 42, outDir: dir })
})
const plan: ExecutionPlan = { modelId: ID, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: Number(values.threads), reasons: [], fallbacks: [] }
const detr = createDetrSkillset()
const photos = [photo('chelsea.jpg'), photo('coffee.jpg'), photo('rocket.webp')]
const inputs = Array.from({ length: 8 }, (_, i) => detr.parseInput({ image: photos[i % photos.length] }))
const runner = await loadDetrRunner({ id: ID, localModelPath: root }, plan)

const settings = parseProcessorConfig(JSON.parse(await readFile(join(dir, 'preprocessor_config.json'), 'utf8')))
const decoded = await Promise.all(photos.map(async (p) => await decodeImage(p, DEFAULT_IMAGE_LIMITS)))
const prepared = Array.from({ length: 8 }, (_, i) => prepareImage(decoded[i % decoded.length]!, settings))
const session = await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'), { intraOpNumThreads: plan.intraOpThreads, extra: { session: { intra_op: { allow_spinning: '0' } } } })
const feeds = (imgs: typeof prepared): Record<string, ort.Tensor> => {
  const b = packBatch(imgs)
  return { pixel_values: new ort.Tensor('float32', b.pixelValues, [imgs.length, 3, b.height, b.width]), pixel_mask: new ort.Tensor('int64', b.pixelMask, [imgs.length, b.height, b.width]) }
}
const singleFeeds = prepared.map((p) => feeds([p]))
const batchFeeds = feeds(prepared)

/** Images per second for `reps` passes over the 8 images, one job at a time or all 8 at once. */
async function rate (batch: 1 | 8, bare: boolean, reps: number): Promise<number> {
  const t0 = performance.now()
  for (let r = 0; r < reps; r++) {
    if (bare && batch === 1) for (const f of singleFeeds) await session.run(f)
    else if (bare) await session.run(batchFeeds)
    else if (batch === 1) for (const i of inputs) await runner.run([i])
    else await runner.run(inputs)
  }
  return reps * 8 / ((performance.now() - t0) / 1000)
}

/** Milliseconds per image for decoding and for preparing (resize, normalise). */
async function stages (reps: number): Promise<{ decodeMs: number, prepareMs: number }> {
  let t = performance.now()
  for (let r = 0; r < reps; r++) for (const p of photos) await decodeImage(p, DEFAULT_IMAGE_LIMITS)
  const decodeMs = (performance.now() - t) / (reps * photos.length)
  t = performance.now()
  for (let r = 0; r < reps; r++) for (const d of decoded) prepareImage(d, settings)
  return { decodeMs, prepareMs: (performance.now() - t) / (reps * decoded.length) }
}

await rate(8, false, 2) // warm-up
await rate(8, true, 5)
const rounds: Array<Record<string, number>> = []
for (let round = 0; round < ROUNDS; round++) {
  rounds.push({
    runner1: await rate(1, false, 4),
    runner8: await rate(8, false, 4),
    bare1: await rate(1, true, 20),
    bare8: await rate(8, true, 20),
    ...await stages(4)
  })
}
const m = (k: string): number => median(rounds.map((r) => r[k]!))
await runner.dispose()

printTable([
  { path: 'runner (decode + prepare + run + post-process)', 'batch 1 images/s': m('runner1').toFixed(0), 'batch 8 images/s': m('runner8').toFixed(0) },
  { path: 'session.run on prepared images', 'batch 1 images/s': m('bare1').toFixed(0), 'batch 8 images/s': m('bare8').toFixed(0) }
])
process.stdout.write(`\nper image: decode ${m('decodeMs').toFixed(2)} ms, resize + normalise ${m('prepareMs').toFixed(2)} ms (${plan.intraOpThreads} thread${plan.intraOpThreads === 1 ? '' : 's'})\n`)
await mkdir(join(import.meta.dirname, 'results'), { recursive: true })
await writeFile(join(import.meta.dirname, 'results', 'detr-direct.json'), JSON.stringify({ model: ID, threads: plan.intraOpThreads, rounds: ROUNDS, date: new Date().toISOString(), medians: Object.fromEntries(Object.keys(rounds[0]!).map((k) => [k, m(k)])) }, null, 2) + '\n')
