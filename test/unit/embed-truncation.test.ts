/**
 * Texts past the model's token limit are embedded from their beginning, and
 * the output says which ones, through the wire form too.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateBertModel } from '../../src/models/generate/index.ts'
import { embedSkillset } from '../../skillsets/embed/index.ts'
import type { EmbedRunner } from '../../skillsets/embed/index.ts'

const ID = 'test/tiny-trunc'
let root: string
let runner: EmbedRunner

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ia-trunc-'))
  await generateBertModel({ size: 'tiny', seed: 3, outDir: join(root, ID) })
  runner = await embedSkillset.load({ id: ID, localModelPath: root }, { modelId: ID, device: 'cpu', provider: 'cpu', dtype: 'fp32', intraOpThreads: 1, reasons: [], fallbacks: [] })
})
after(async () => {
  await runner.dispose()
  await rm(root, { recursive: true, force: true })
})

test('long texts are flagged per input, short ones are not', async () => {
  const long = 'the swarm shares model weights and embeddings '.repeat(40) // far past the tiny model's 128 tokens
  const [a, b, c] = await runner.run([
    embedSkillset.parseInput({ texts: ['short text', long] }),
    embedSkillset.parseInput({ texts: [long + ' again'] }),
    embedSkillset.parseInput({ texts: ['only short ones'] })
  ])
  assert.deepEqual(a!.truncated, [1])
  assert.deepEqual(b!.truncated, [0])
  assert.equal(c!.truncated, undefined)
  const back = embedSkillset.decodeOutput(embedSkillset.encodeOutput(a!))
  assert.deepEqual(back.truncated, [1])
  assert.deepEqual([...back.embeddings], [...a!.embeddings])
})

test('a truncated index outside the output is a protocol error', () => {
  const wire = embedSkillset.encodeOutput({ embeddings: new Float32Array(4), count: 1, dims: 4, truncated: [0] })
  assert.throws(() => embedSkillset.decodeOutput({ ...wire, truncated: [1] }), { code: 'ERR_PROTOCOL' })
})
