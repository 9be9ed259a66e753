/**
 * The generated LLaVA-NeXT-shaped model on onnxruntime-node against an
 * independent float64 forward pass (test/helpers/llava-reference.ts for the
 * vision tower and projector, test/helpers/lm-reference.ts with `embeds`
 * for the decoder): one tile's features, a perturbed pixel that must move
 * them, the embedding table, a prompt of embeddings then cached steps; and
 * the files (layout, configs, tokenizer with `<image>`), their size and the
 * time it takes to generate them.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import ort from 'onnxruntime-node'
import { generateLlavaWeights, LLAVA_ONNX_FILES, LLAVA_SHAPES, llavaModelFiles, llavaSpecialIds, LM_IO } from '../../src/models/generate/index.ts'
import { mulberry32 } from '../../src/models/generate/prng.ts'
import { referenceTileFeatures } from '../helpers/llava-reference.ts'
import { argmax, emptyCache, referenceForward } from '../helpers/lm-reference.ts'

const SEED = 5
const shape = LLAVA_SHAPES.tiny
const w = generateLlavaWeights(shape, SEED)
const t0 = performance.now()
const { files } = llavaModelFiles('tiny', SEED)
const generateMs = performance.now() - t0
const session = async (path: string): Promise<ort.InferenceSession> => await ort.InferenceSession.create(files.get(path) as Uint8Array, { intraOpNumThreads: 1 })

function maxRelative (a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0
  let scale = 0
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs((a[i] as number) - (b[i] as number)))
    scale = Math.max(scale, Math.abs(b[i] as number))
  }
  return diff / scale
}

const T = shape.vision.imageSize
const rand = mulberry32(9)
const tile = Float32Array.from({ length: 3 * T * T }, () => rand() * 4 - 2)

test('vision encoder + projector: one tile\'s 16 features match the float64 reference; a pixel moved moves them', async () => {
  const s = await session(LLAVA_ONNX_FILES.visionEncoder)
  // Two tiles in one run: the reference tile, and a copy with one pixel changed.
  const other = tile.slice()
  other[5 * T + 7] = (other[5 * T + 7] as number) + 1
  const both = new Float32Array(2 * tile.length)
  both.set(tile, 0)
  both.set(other, tile.length)
  const out = await s.run({ pixel_values: new ort.Tensor('float32', both, [2, 3, T, T]) })
  const features = out.image_features as ort.Tensor
  const t = shape.text.hiddenSize
  assert.deepEqual(features.dims, [2, 16, t])
  const ref = referenceTileFeatures(w, tile)
  const flat = Float64Array.from(ref.flatMap((v) => [...v]))
  const data = features.data as Float32Array
  const err = maxRelative(data.subarray(0, 16 * t), flat)
  assert.ok(err < 1e-5, `vision features differ from the reference by ${err}`)
  assert.ok(maxRelative(data.subarray(16 * t), flat) > 1e-3, 'a changed pixel must change the features')
  assert.deepEqual([...(out.image_newline as ort.Tensor).data as Float32Array], [...w.imageNewline])
  await s.release()
})

test('embed_tokens and the decoder on inputs_embeds: a prompt of text and image features, then cached steps, match the reference', async () => {
  const embed = await session(LLAVA_ONNX_FILES.embedTokens)
  const decoder = await session(LLAVA_ONNX_FILES.decoder)
  const h = shape.text.hiddenSize
  const ids = [3, 77, 140, llavaSpecialIds(shape).image]
  const e = await embed.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]) })
  const embeds = (e.inputs_embeds as ort.Tensor).data as Float32Array
  assert.deepEqual([...embeds.subarray(h, 2 * h)], [...w.text.embedTokens.subarray(77 * h, 78 * h)])
  // The prompt: three text embeddings, then 5 "image features" (random rows, as a projector would give).
  const prompt: Float64Array[] = [0, 1, 2].map((i) => Float64Array.from(embeds.subarray(i * h, (i + 1) * h)))
  for (let i = 0; i < 5; i++) prompt.push(Float64Array.from({ length: h }, () => rand() * 2 - 1))
  const cache = emptyCache(w.text, 1)
  let past: Record<string, ort.Tensor> = {}
  const kvDims = [1, shape.text.numKeyValueHeads, 0, shape.text.headDim]
  for (let l = 0; l < shape.text.numHiddenLayers; l++) {
    past[LM_IO.pastKey(l)] = new ort.Tensor('float32', new Float32Array(0), kvDims)
    past[LM_IO.pastValue(l)] = new ort.Tensor('float32', new Float32Array(0), kvDims)
  }
  let chunk = prompt
  let length = 0
  const tokens: number[] = []
  for (let step = 0; step < 4; step++) {
    const n = chunk.length
    const feeds = {
      [LM_IO.inputsEmbeds]: new ort.Tensor('float32', Float32Array.from(chunk.flatMap((v) => [...v])), [1, n, h]),
      [LM_IO.attentionMask]: new ort.Tensor('int64', new BigInt64Array(length + n).fill(1n), [1, length + n]),
      [LM_IO.positionIds]: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(length + i)), [1, n]),
      ...past
    }
    const out = await decoder.run(feeds)
    const logits = (out.logits as ort.Tensor).data as Float32Array
    const ref = referenceForward(w.text, [chunk.map(() => 0)], [chunk.map((_, i) => length + i)], [new Array(length + n).fill(1)], cache, { embeds: [chunk] })[0] as Float64Array[]
    const last = ref[n - 1] as Float64Array
    const err = maxRelative(logits.subarray((n - 1) * shape.text.vocabSize), last)
    assert.ok(err < 1e-5, `step ${step}: logits differ from the reference by ${err}`)
    const next = argmax(last)
    assert.equal(argmax(logits.subarray((n - 1) * shape.text.vocabSize)), next)
    tokens.push(next)
    past = {}
    for (let l = 0; l < shape.text.numHiddenLayers; l++) {
      past[LM_IO.pastKey(l)] = out[LM_IO.presentKey(l)] as ort.Tensor
      past[LM_IO.pastValue(l)] = out[LM_IO.presentValue(l)] as ort.Tensor
    }
    length += n
    chunk = [Float64Array.from(w.text.embedTokens.subarray(next * h, (next + 1) * h))]
  }
  assert.equal(tokens.length, 4)
  await embed.release()
  await decoder.release()
})

test('files: the llava layout, configs that agree with each other, <image> in the tokenizer; small and fast', () => {
  assert.deepEqual([...files.keys()].sort(), ['config.json', 'generation_config.json', LLAVA_ONNX_FILES.decoder, LLAVA_ONNX_FILES.embedTokens, LLAVA_ONNX_FILES.visionEncoder, 'preprocessor_config.json', 'processor_config.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'].sort())
  const read = (p: string): Record<string, unknown> => JSON.parse(new TextDecoder().decode(files.get(p))) as Record<string, unknown>
  const config = read('config.json')
  const pre = read('preprocessor_config.json')
  const tok = read('tokenizer.json')
  const image = llavaSpecialIds(shape).image
  assert.equal(config.model_type, 'llava_next')
  assert.equal(config.image_token_index, image)
  assert.deepEqual(config.image_grid_pinpoints, pre.image_grid_pinpoints)
  assert.equal((config.text_config as Record<string, unknown>).model_type, 'qwen2')
  assert.equal((config.text_config as Record<string, unknown>).vocab_size, image + 1)
  assert.deepEqual(pre.crop_size, { height: 32, width: 32 })
  assert.ok((tok.added_tokens as Array<{ id: number, content: string }>).some((t) => t.id === image && t.content === '<image>'))
  const bytes = [...files.values()].reduce((n, b) => n + b.byteLength, 0)
  assert.ok(bytes < 2 * 1024 * 1024, `${bytes} bytes`)
  assert.ok(generateMs < 3000, `generated in ${generateMs} ms`)
  // Same seed, same bytes.
  assert.deepEqual(llavaModelFiles('tiny', SEED).files.get(LLAVA_ONNX_FILES.visionEncoder), files.get(LLAVA_ONNX_FILES.visionEncoder))
})

test('a tile\'s features have the same bits alone and in a batch of 23 tiles (what lets jobs share a vision run exactly)', async () => {
  const s = await session(LLAVA_ONNX_FILES.visionEncoder)
  const n = 23
  const r = mulberry32(3)
  const px = Float32Array.from({ length: n * 3 * T * T }, () => r() * 4 - 2)
  const all = (await s.run({ pixel_values: new ort.Tensor('float32', px, [n, 3, T, T]) })).image_features as ort.Tensor
  for (const t of [0, 7, 22]) {
    const one = (await s.run({ pixel_values: new ort.Tensor('float32', px.slice(t * 3 * T * T, (t + 1) * 3 * T * T), [1, 3, T, T]) })).image_features as ort.Tensor
    const per = (one.data as Float32Array).length
    assert.deepEqual(one.data, (all.data as Float32Array).slice(t * per, (t + 1) * per), `tile ${t}`)
  }
  await s.release()
})
