/**
 * llava-next in a real inference thread, its files served from the content
 * store (no copy on disk: the thread reads config, processor config,
 * tokenizer and all three ONNX sessions through the store reader that
 * transformers.js sees as its custom cache), giving the tokens the same
 * model gives loaded from a folder.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import type { ExecutionPlan } from '../../src/interfaces/index.ts'
import { generateLlavaModel } from '../../src/models/generate/index.ts'
import { InferenceThread } from '../../src/scheduler/thread.ts'
import { llavaNextSkillset } from '../../skillsets/llava-next/index.ts'
import type { LmOutput, LmPartial } from '../../skillsets/lm/index.ts'
import { photo } from '../helpers/images.ts'
import { silentLog } from '../helpers/p2p-nodes.ts'
import { startStore, tempDir } from '../helpers/store-fixtures.ts'

const ID = 'demo/llava-next-random'
const plan: ExecutionPlan = { modelId: ID, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] }

test('an inference thread runs llava-next from the store and gives the tokens of a folder-loaded runner', async () => {
  const root = await tempDir('ia-llava-')
  const dir = join(root, ID)
  await generateLlavaModel({ size: 'tiny', seed: 42, outDir: dir })
  const input = llavaNextSkillset.parseInput({ image: photo('rocket.webp'), prompt: 'Where is it going?', max_new_tokens: 10 })

  const local = await llavaNextSkillset.loadStreaming({ id: ID, localModelPath: root }, plan)
  const expected = await local.start(input, { signal: new AbortController().signal, emit: async () => {} })
  await local.dispose()

  const store = await startStore(join(await tempDir(), 'store'))
  await store.models.importDir(dir, { id: ID, skillset: 'llava-next' })
  const { blocksDir, cid, files } = await store.models.locate(ID)
  // An empty folder: every file must come from the store.
  const thread = new InferenceThread({ skillset: 'llava-next', model: { id: ID, localModelPath: await tempDir('ia-empty-'), store: { blocksDir, cid, files } }, plan }, silentLog)
  try {
    await thread.start()
    const partials: LmPartial[] = []
    const { output } = await thread.startJob(input, { signal: new AbortController().signal, emit: async (p) => { partials.push(p as LmPartial) } })
    assert.deepEqual((output as LmOutput).tokens, expected.tokens)
    assert.equal(partials.map((p) => p.text).join(''), (output as LmOutput).text)
  } finally {
    await thread.stop()
    await store.stop()
  }
})
