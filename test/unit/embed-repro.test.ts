/**
 * Reproducible by default, on one node: through the real embed runner, the
 * same text alone and inside a batch of 64 varied-length texts gives
 * bit-identical vectors with every plan the node may choose without
 * --dtype (static int8 and fp32 on the generated tiny model), and the
 * check has teeth: dynamic q8, the opt-in, differs.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateBertModel } from '../../src/models/generate/index.ts'
import { loadCatalog } from '../../src/models/catalog.ts'
import { planCandidates } from '../../hardware/index.ts'
import { embedSkillset } from '../../skillsets/embed/index.ts'
import type { EmbedInput, EmbedOutput } from '../../skillsets/embed/index.ts'
import type { ExecutionPlan, ModelEntry, SkillsetRunner } from '../../src/interfaces/index.ts'
import { baseProfile } from '../fixtures/hardware/fakes.ts'

const WORDS = 'peers share vectors through content addressed blocks while each worker runs batches on its fastest device and gossip carries offers'.split(' ')

/** 64 texts of 1 to 60 words, deterministic. */
function mates (): string[] {
  let x = 99
  const rnd = (): number => { x = (x * 1103515245 + 12345) & 0x7fffffff; return x / 0x7fffffff }
  return Array.from({ length: 64 }, (_, i) => Array.from({ length: 1 + Math.floor(rnd() * 60) }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(' ') + ` ${i}`)
}

let root: string
let entry: ModelEntry
const runners: Array<SkillsetRunner<EmbedInput, EmbedOutput>> = []

before(async () => {
  entry = (await loadCatalog()).get('demo/tiny-random')
  root = await mkdtemp(join(tmpdir(), 'ia-repro-'))
  if (entry.source.kind !== 'generated' || entry.source.generator !== 'bert') throw new Error('demo/tiny-random is a generated BERT')
  await generateBertModel({ size: entry.source.size, seed: entry.source.seed, outDir: join(root, entry.id) })
})

after(async () => {
  for (const r of runners) await r.dispose()
  await rm(root, { recursive: true, force: true })
})

async function load (plan: ExecutionPlan): Promise<SkillsetRunner<EmbedInput, EmbedOutput>> {
  const r = await embedSkillset.load({ id: entry.id, localModelPath: root }, { ...plan, intraOpThreads: 2 })
  runners.push(r)
  return r
}

/** Bytes of text `i`'s vector alone and inside the batch of 64, for a few targets. */
async function aloneAndInBatch (runner: SkillsetRunner<EmbedInput, EmbedOutput>): Promise<Array<{ target: number, alone: Buffer, inBatch: Buffer }>> {
  const texts = mates()
  const [batch] = await runner.run([embedSkillset.parseInput({ texts })]) as [EmbedOutput]
  const out = []
  for (const target of [0, 7, 21, 40, 63]) {
    const [alone] = await runner.run([embedSkillset.parseInput({ texts: [texts[target] as string] })]) as [EmbedOutput]
    const bytes = (v: Float32Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength)
    out.push({ target, alone: bytes(alone.embeddings), inBatch: bytes(batch.embeddings.subarray(target * batch.dims, (target + 1) * batch.dims)) })
  }
  return out
}

test('default plans: a text alone and in a batch of 64 gives bit-identical vectors (static int8 and fp32)', { timeout: 60_000 }, async () => {
  const candidates = planCandidates(entry, baseProfile())
  assert.deepEqual(candidates.map((c) => c.dtype), ['int8', 'fp32'], 'what calibration may choose from on a VNNI CPU')
  for (const plan of candidates) {
    assert.equal(plan.reproducible, true)
    for (const r of await aloneAndInBatch(await load(plan))) {
      assert.ok(r.alone.equals(r.inBatch), `${plan.dtype}: text ${r.target} alone differs from in the batch`)
    }
  }
})

test('the check has teeth: dynamic q8 (the --dtype q8 opt-in) changes a text\'s vector with its batch-mates', { timeout: 60_000 }, async () => {
  const [plan] = planCandidates(entry, baseProfile(), { dtype: 'q8' }) as [ExecutionPlan]
  assert.equal(plan.reproducible, false)
  const results = await aloneAndInBatch(await load(plan))
  assert.ok(results.some((r) => !r.alone.equals(r.inBatch)), 'q8 vectors should depend on batch-mates')
})
