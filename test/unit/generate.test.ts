import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  BERT_SHAPES, buildBertOnnx, buildVocab, ensureGeneratedModel, generateBertModel, generateBertWeights, MANIFEST_FILE, modelDir,
  parameterCount, SPECIAL_IDS
} from '../../src/models/generate/index.ts'
import { mulberry32, normalArray } from '../../src/models/generate/prng.ts'
import { activationRanges } from '../../src/models/generate/activation-ranges.ts'
import type { ModelEntry } from '../../src/interfaces/index.ts'

async function withTmp (fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ipfs-accelerate-gen-'))
  try { await fn(dir) } finally { await rm(dir, { recursive: true, force: true }) }
}

const FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'onnx/model.onnx', 'onnx/model_int8.onnx', 'onnx/model_quantized.onnx', MANIFEST_FILE]

test('the PRNG is a fixed sequence for a seed', () => {
  const a = mulberry32(1)
  assert.deepEqual([a(), a(), a()], [0.6270739405881613, 0.002735721180215478, 0.5274470399599522])
  const n = normalArray(100_000, 3, 0, 1)
  const mean = n.reduce((s, v) => s + v, 0) / n.length
  const variance = n.reduce((s, v) => s + (v - mean) ** 2, 0) / n.length
  assert.ok(Math.abs(mean) < 0.01 && Math.abs(variance - 1) < 0.02, `mean ${mean} variance ${variance}`)
})

test('same seed gives byte-identical files; another seed other weights, same tokenizer', async () => {
  await withTmp(async (dir) => {
    const a = await generateBertModel({ size: 'tiny', seed: 7, outDir: join(dir, 'a') })
    const b = await generateBertModel({ size: 'tiny', seed: 7, outDir: join(dir, 'b') })
    const c = await generateBertModel({ size: 'tiny', seed: 8, outDir: join(dir, 'c') })
    assert.deepEqual(a.files, b.files)
    for (const f of FILES) {
      assert.deepEqual(await readFile(join(dir, 'a', f)), await readFile(join(dir, 'b', f)), f)
    }
    const sha = (m: typeof a, path: string): string | undefined => m.files.find((f) => f.path === path)?.sha256
    assert.notEqual(sha(a, 'onnx/model.onnx'), sha(c, 'onnx/model.onnx'))
    assert.notEqual(sha(a, 'onnx/model_quantized.onnx'), sha(c, 'onnx/model_quantized.onnx'))
    assert.equal(sha(a, 'tokenizer.json'), sha(c, 'tokenizer.json'))
    assert.equal(a.parameters, parameterCount(BERT_SHAPES.tiny))
  })
})

test('weights regenerate identically from the seed and differ across seeds', () => {
  const a = generateBertWeights(BERT_SHAPES.tiny, 7)
  const b = generateBertWeights(BERT_SHAPES.tiny, 7)
  const c = generateBertWeights(BERT_SHAPES.tiny, 8)
  assert.deepEqual(a, b)
  assert.notDeepEqual(a.layers[1]?.query.weight, c.layers[1]?.query.weight)
  assert.equal(a.layers.length, 2)
  assert.equal(a.layers[0]?.intermediate.weight.length, 32 * 64)
  assert.deepEqual(Array.from(a.wordEmbeddings.subarray(0, 32)), Array(32).fill(0))
})

test('config.json has the BERT shape', async () => {
  await withTmp(async (dir) => {
    await generateBertModel({ size: 'tiny', seed: 1, outDir: dir, dtypes: ['fp32'] })
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))
    assert.equal(config.model_type, 'bert')
    assert.equal(config.hidden_size, 32)
    assert.equal(config.num_hidden_layers, 2)
    assert.equal(config.vocab_size, 1000)
    await assert.rejects(stat(join(dir, 'onnx/model_quantized.onnx')), { code: 'ENOENT' })
  })
})

test('minilm has all-MiniLM-L6-v2\'s parameter count', () => {
  assert.equal(parameterCount(BERT_SHAPES.minilm), 22_565_376)
})

test('the vocabulary: exact size, specials first, no duplicates, every ASCII symbol', () => {
  for (const size of [BERT_SHAPES.tiny.vocabSize, BERT_SHAPES.minilm.vocabSize]) {
    const vocab = buildVocab(size)
    assert.equal(vocab.length, size)
    assert.equal(new Set(vocab).size, size)
    assert.deepEqual([vocab[SPECIAL_IDS.pad], vocab[SPECIAL_IDS.unk], vocab[SPECIAL_IDS.cls], vocab[SPECIAL_IDS.sep], vocab[SPECIAL_IDS.mask]], ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'])
    for (let c = 33; c < 127; c++) assert.ok(vocab.includes(String.fromCharCode(c).toLowerCase()), String.fromCharCode(c))
    for (const w of ['the', '##ing', '##s', 'network']) assert.ok(vocab.includes(w), w)
  }
  assert.throws(() => buildVocab(50), RangeError)
})

test('ensureGeneratedModel writes once, atomically, and repairs an incomplete model', async () => {
  await withTmp(async (root) => {
    const entry: ModelEntry = { id: 'demo/tiny-random', skillset: 'embed', source: { kind: 'generated', generator: 'bert', size: 'tiny', seed: 7 }, dtypes: ['fp32', 'q8'], sizeMB: 1 }
    const dir = await ensureGeneratedModel(entry, root)
    assert.equal(dir, join(root, 'demo', 'tiny-random'))
    assert.deepEqual((await readdir(join(root, 'demo'))), ['tiny-random'])
    const mtime = (await stat(join(dir, 'onnx/model.onnx'))).mtimeMs
    assert.equal(await ensureGeneratedModel(entry, root), dir)
    assert.equal((await stat(join(dir, 'onnx/model.onnx'))).mtimeMs, mtime, 'a complete model is left alone')

    await writeFile(join(dir, 'onnx/model.onnx'), 'truncated')
    await ensureGeneratedModel(entry, root)
    assert.ok((await stat(join(dir, 'onnx/model.onnx'))).size > 100_000, 'a damaged model is regenerated')

    await ensureGeneratedModel({ ...entry, source: { ...entry.source, seed: 8 } as ModelEntry['source'] }, root)
    const manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8'))
    assert.equal(manifest.seed, 8, 'another seed regenerates')
    assert.deepEqual((await readdir(join(root, 'demo'))), ['tiny-random'], 'no temporary or old directories are left')

    await assert.rejects(ensureGeneratedModel({ ...entry, source: { kind: 'hub', repo: 'x/y' } }, root), { code: 'ERR_MODEL_LOAD' })
  })
})

test('modelDir keeps ids inside the models root', () => {
  assert.equal(modelDir('/m', 'a/b'), '/m/a/b')
  assert.throws(() => modelDir('/m', '../x'), { code: 'ERR_MODEL_LOAD' })
  assert.throws(() => modelDir('/m', 'a/../../x'), { code: 'ERR_MODEL_LOAD' })
})

test('the int8 graph is statically quantized: fixed QuantizeLinear scales from a seeded float64 pass, no DynamicQuantizeLinear', async () => {
  const { default: onnxProto } = await import('onnx-proto')
  const weights = generateBertWeights(BERT_SHAPES.tiny, 7)
  const ops = (dtype: 'q8' | 'int8'): string[] => onnxProto.onnx.ModelProto.decode(buildBertOnnx(weights, dtype)).graph?.node?.map((n) => n.opType ?? '') ?? []
  const int8 = ops('int8')
  assert.equal(int8.filter((o) => o === 'DynamicQuantizeLinear').length, 0)
  // One QuantizeLinear per distinct linear input: qkv, context, intermediate, output, per layer.
  assert.equal(int8.filter((o) => o === 'QuantizeLinear').length, 4 * BERT_SHAPES.tiny.numHiddenLayers)
  assert.equal(int8.filter((o) => o === 'MatMulInteger').length, 6 * BERT_SHAPES.tiny.numHiddenLayers)
  assert.equal(ops('q8').filter((o) => o === 'DynamicQuantizeLinear').length, 6 * BERT_SHAPES.tiny.numHiddenLayers)
  // The ranges come from the weights alone: the same on every run (and host), scales with 4 significant bits.
  const ranges = activationRanges(weights)
  assert.deepEqual(ranges, activationRanges(generateBertWeights(BERT_SHAPES.tiny, 7)))
  for (const layer of ranges) {
    for (const q of Object.values(layer)) {
      assert.ok(q.min <= 0 && q.max > 0 && q.scale > 0 && q.zeroPoint >= 0 && q.zeroPoint <= 255, JSON.stringify(q))
      const mantissa = q.scale / 2 ** Math.floor(Math.log2(q.scale))
      assert.equal(mantissa * 8, Math.round(mantissa * 8), `scale ${q.scale} has at most 4 significant bits`)
      assert.ok((255 - q.zeroPoint) * q.scale >= q.max - q.scale && q.zeroPoint * q.scale >= -q.min - q.scale, `the range fits the uint8 grid: ${JSON.stringify(q)}`)
    }
  }
})
