/**
 * Which files hold which weight format (transformers.js naming): one ONNX
 * file per session and dtype, external data beside it; a dtype is offered
 * only when every session has it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { dtypesOffered, filesOfDtype, parseOnnxFile } from '../../src/models/onnx-files.ts'

const llava = [
  'config.json', 'tokenizer.json', 'preprocessor_config.json',
  'onnx/vision_encoder.onnx', 'onnx/embed_tokens.onnx', 'onnx/decoder_model_merged.onnx', 'onnx/decoder_model_merged.onnx_data',
  'onnx/vision_encoder_q4.onnx', 'onnx/embed_tokens_q4.onnx', 'onnx/decoder_model_merged_q4.onnx',
  'onnx/vision_encoder_fp16.onnx', 'onnx/decoder_model_merged_fp16.onnx', 'onnx/decoder_model_merged_fp16.onnx_data', 'onnx/decoder_model_merged_fp16.onnx_data_1'
]

test('file names parse to a session and a dtype; longer suffixes win', () => {
  assert.deepEqual(parseOnnxFile('onnx/model.onnx'), { base: 'model', dtype: 'fp32' })
  assert.deepEqual(parseOnnxFile('onnx/model_quantized.onnx'), { base: 'model', dtype: 'q8' })
  assert.deepEqual(parseOnnxFile('onnx/decoder_model_merged_q4f16.onnx'), { base: 'decoder_model_merged', dtype: 'q4f16' })
  assert.deepEqual(parseOnnxFile('onnx/vision_encoder_q4.onnx'), { base: 'vision_encoder', dtype: 'q4' })
  assert.equal(parseOnnxFile('onnx/model.onnx_data'), undefined)
  assert.equal(parseOnnxFile('model.onnx'), undefined, 'only the onnx/ folder')
})

test('a dtype takes each session\'s file and its external data; a dtype missing a session is not offered', () => {
  assert.deepEqual(filesOfDtype(llava, 'fp32'), ['onnx/vision_encoder.onnx', 'onnx/embed_tokens.onnx', 'onnx/decoder_model_merged.onnx', 'onnx/decoder_model_merged.onnx_data'])
  assert.deepEqual(filesOfDtype(llava, 'q4'), ['onnx/vision_encoder_q4.onnx', 'onnx/embed_tokens_q4.onnx', 'onnx/decoder_model_merged_q4.onnx'])
  assert.deepEqual(filesOfDtype(llava, 'fp16'), [], 'fp16 has no embed_tokens file')
  assert.deepEqual(dtypesOffered(llava), ['fp32', 'q4'])
  assert.deepEqual(dtypesOffered([...llava, 'onnx/model_q4f16.onnx']), [], 'a stray session no dtype covers wholly: nothing is offered')
})

test('a single-session model offers each dtype it has a file for', () => {
  const lm = ['config.json', 'onnx/model.onnx', 'onnx/model.onnx_data', 'onnx/model_q4.onnx', 'onnx/model_quantized.onnx', 'onnx/model_fp16.onnx']
  assert.deepEqual(dtypesOffered(lm), ['fp32', 'fp16', 'q8', 'q4'])
  assert.deepEqual(filesOfDtype(lm, 'fp32'), ['onnx/model.onnx', 'onnx/model.onnx_data'])
  assert.deepEqual(dtypesOffered(['config.json']), [])
})

test('a stored model without the planned dtype\'s weights is refused with what to do', async () => {
  const { requirePlannedWeights } = await import('../../src/node/served-models.ts')
  const entry = { id: 'acme/lm', skillset: 'lm' as const, source: { kind: 'hub' as const, repo: 'acme/lm' }, dtypes: ['fp32' as const, 'q4' as const], sizeMB: 1 }
  const files = ['config.json', 'onnx/model_q4.onnx'].map((path) => ({ path }))
  requirePlannedWeights(entry, { files } as never, ['fp32', 'q4'])
  assert.throws(() => { requirePlannedWeights(entry, { files } as never, ['fp32']) }, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_MODEL_NOT_FOUND')
    assert.match(err.message, /holds q4 weights, and this host plans fp32: start with --dtype q4/)
    return true
  })
})
