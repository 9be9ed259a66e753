/**
 * The generated LM's folder as transformers.js 4.3.1 sees it, offline:
 * AutoTokenizer (byte-level BPE round trip, ChatML chat template) and
 * AutoModelForCausalLM (greedy generate() equal to the float64 reference,
 * alone and in a left-padded batch); and the generator's determinism.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildByteLevelVocab, generateLmModel, generateLmWeights, LM_SHAPES, lmModelFiles, lmSpecialIds } from '../../src/models/generate/index.ts'
import type { LmWeights } from '../../src/models/generate/index.ts'
import { referenceGreedy } from '../helpers/lm-reference.ts'

const ID = 'test/lm-tiny'
const SEED = 3
const NEW_TOKENS = 16

/** The few parts of transformers.js used here. */
interface Tok {
  encode(text: string): number[]
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string
  apply_chat_template(messages: Array<{ role: string, content: string }>, options: { tokenize: false, add_generation_prompt: boolean }): string
  (texts: string | string[], options?: { padding?: boolean }): { input_ids: unknown, attention_mask: { tolist(): Array<Array<bigint>> } }
  padding_side: string
}
interface Lm { generate(options: Record<string, unknown>): Promise<{ tolist(): Array<Array<bigint>> }>, dispose(): Promise<unknown> }

let root: string
let weights: LmWeights
let tok: Tok
let lm: Lm
const eos = new Set([lmSpecialIds(LM_SHAPES.tiny.vocabSize).imEnd, lmSpecialIds(LM_SHAPES.tiny.vocabSize).endOfText])

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ipfs-accelerate-lm-'))
  await generateLmModel({ size: 'tiny', seed: SEED, outDir: join(root, ID) })
  weights = generateLmWeights(LM_SHAPES.tiny, SEED)
  const tf = await import('@huggingface/transformers')
  tf.env.allowRemoteModels = false
  tf.env.allowLocalModels = true
  tf.env.localModelPath = root
  tok = await tf.AutoTokenizer.from_pretrained(ID) as unknown as Tok
  lm = await tf.AutoModelForCausalLM.from_pretrained(ID, { dtype: 'fp32', device: 'cpu', session_options: { intraOpNumThreads: 1 } }) as unknown as Lm
})

after(async () => {
  await lm?.dispose()
  await rm(root, { recursive: true, force: true })
})

test('the tokenizer round-trips any UTF-8 text exactly, through byte tokens where it must', () => {
  const texts = [
    'The quick brown fox jumps over the lazy dog.',
    'emoji 🙂🚀👍🏽 and flags 🇫🇷, CJK 敏捷的棕色狐狸 こんにちは, Cyrillic Привет',
    'decomposed e\u0301 vs composed é, zero\u200Bwidth, tabs\tand\r\nCRLF,   runs of   spaces  ',
    "it's we'll THEY'RE 3.14159 $42 #7 a+b=c",
    '\u0000\u0001 control bytes \u007F'
  ]
  for (const text of texts) {
    const ids = tok.encode(text)
    assert.equal(tok.decode(ids), text, JSON.stringify(text))
    for (const id of ids) assert.ok(id >= 0 && id < weights.shape.vocabSize - 3, `id ${id} is a BPE token`)
  }
  assert.deepEqual(tok.encode(''), [])
  assert.ok(tok.encode('the and of').length < 'the and of'.length, 'learned merges shorten common English')
})

test('the chat template renders ChatML, and its markers are single special tokens', () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi 👋' }]
  const text = tok.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true })
  assert.equal(text, '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi 👋<|im_end|>\n<|im_start|>assistant\n')
  const ids = tok.encode(text)
  const special = lmSpecialIds(weights.shape.vocabSize)
  assert.deepEqual(ids.filter((id) => id >= special.endOfText), [special.imStart, special.imEnd, special.imStart, special.imEnd, special.imStart])
  assert.equal(tok.decode(ids), text)
  assert.equal(tok.decode(ids, { skip_special_tokens: true }), 'system\nBe brief.\nuser\nHi 👋\nassistant\n')
})

/** The reference's greedy continuation, cut where generate() stops (an end-of-sequence id, included). */
function expected (prompt: number[]): number[] {
  const ref = referenceGreedy(weights, prompt, NEW_TOKENS)
  const stop = ref.findIndex((id) => eos.has(id))
  return stop === -1 ? ref : ref.slice(0, stop + 1)
}

const asNumbers = (row: bigint[]): number[] => row.map(Number)

test('generate() (greedy, KV cache) gives the float64 reference\'s tokens', async () => {
  for (const content of ['Hello there!', 'Write a poem about the sea.', '你好']) {
    const text = tok.apply_chat_template([{ role: 'user', content }], { tokenize: false, add_generation_prompt: true })
    const prompt = tok.encode(text)
    const out = await lm.generate({ ...tok(text), max_new_tokens: NEW_TOKENS, do_sample: false })
    const row = asNumbers(out.tolist()[0] ?? [])
    assert.deepEqual(row.slice(0, prompt.length), prompt)
    assert.deepEqual(row.slice(prompt.length), expected(prompt), content)
  }
})

test('generate() on a left-padded batch gives each prompt its own reference tokens', async () => {
  const texts = ['Hi', 'A much longer prompt, with several more tokens in it than the first one.']
  tok.padding_side = 'left'
  const inputs = tok(texts, { padding: true })
  const out = await lm.generate({ ...inputs, max_new_tokens: NEW_TOKENS, do_sample: false })
  const masks = inputs.attention_mask.tolist()
  const width = (masks[0] ?? []).length
  assert.ok(masks[0]?.[0] === 0n, 'the short prompt is padded on the left')
  out.tolist().forEach((row, r) => {
    const prompt = tok.encode(texts[r] as string)
    const want = expected(prompt)
    assert.deepEqual(asNumbers(row.slice(width - prompt.length, width)), prompt)
    // After a row's end-of-sequence id, generate() pads it while the other row goes on.
    assert.deepEqual(asNumbers(row.slice(width, width + want.length)), want, texts[r])
  })
})

test('the same seed gives byte-identical files; another seed other weights and the same tokenizer', async () => {
  const a = lmModelFiles('tiny', 5).files
  const b = lmModelFiles('tiny', 5).files
  const c = lmModelFiles('tiny', 6).files
  assert.deepEqual([...a.keys()].sort(), ['config.json', 'generation_config.json', 'onnx/model.onnx', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'])
  for (const [path, bytes] of a) assert.deepEqual(b.get(path), bytes, path)
  assert.notDeepEqual(c.get('onnx/model.onnx'), a.get('onnx/model.onnx'))
  assert.deepEqual(c.get('tokenizer.json'), a.get('tokenizer.json'))
  const written = await readFile(join(root, ID, 'tokenizer.json'))
  assert.deepEqual(new Uint8Array(written), lmModelFiles('tiny', SEED).files.get('tokenizer.json'))
})

test('config.json and generation_config.json carry what transformers.js reads', async () => {
  const config = JSON.parse(await readFile(join(root, ID, 'config.json'), 'utf8')) as Record<string, unknown>
  const s = LM_SHAPES.tiny
  assert.equal(config.model_type, 'qwen2')
  assert.equal(config.num_hidden_layers, s.numHiddenLayers)
  assert.equal(config.num_key_value_heads, s.numKeyValueHeads)
  assert.equal(config.head_dim, s.headDim)
  assert.equal(config.vocab_size, s.vocabSize)
  assert.equal(config.tie_word_embeddings, false)
  const gen = JSON.parse(await readFile(join(root, ID, 'generation_config.json'), 'utf8')) as Record<string, unknown>
  assert.deepEqual(gen.eos_token_id, [...eos])
})

test('the byte-level vocabulary: exact sizes, 256 bytes first, no duplicates, a prefix of the larger ones', () => {
  const small = buildByteLevelVocab(509)
  const large = buildByteLevelVocab(4093)
  assert.equal(small.tokens.length, 509)
  assert.equal(large.tokens.length, 4093)
  assert.equal(new Set(large.tokens).size, large.tokens.length)
  assert.deepEqual(large.tokens.slice(0, 509), small.tokens)
  assert.equal(large.merges.length, 4093 - 256)
  const known = new Set(large.tokens.slice(0, 256))
  for (const [a, b] of large.merges) {
    assert.ok(known.has(a) && known.has(b), `merge ${a} ${b} joins known tokens`)
    known.add(a + b)
  }
})
