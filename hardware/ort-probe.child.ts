/**
 * Child process of providers.ts. Prints, one JSON line each:
 *   {"type":"backends","backends":[{"name":"cpu","bundled":true},...]}
 *   {"type":"probe","provider":"cpu","ok":true,"ms":12}
 * for each provider named on the command line, in order. It runs apart
 * because session creation is a blocking native call that may hang (a
 * GPU driver), crash, or print native noise (Dawn, CUDA loaders) to stderr.
 */
import * as ort from 'onnxruntime-node'
import { PROBE_EXPECTED, PROBE_INPUT, tinyAddModel } from './tiny-model.ts'

const emit = (o: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(o) + '\n') }

emit({ type: 'backends', backends: ort.listSupportedBackends() })
const model = tinyAddModel()
for (const provider of process.argv.slice(2)) {
  const t = performance.now()
  const ms = (): number => Math.round(performance.now() - t)
  try {
    const session = await ort.InferenceSession.create(model, { executionProviders: [provider], logSeverityLevel: 3 })
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from(PROBE_INPUT), [PROBE_INPUT.length]) })
    const got = Array.from(out.y?.data as Float32Array)
    await session.release()
    const ok = got.length === PROBE_EXPECTED.length && got.every((v, i) => v === PROBE_EXPECTED[i])
    emit(ok ? { type: 'probe', provider, ok, ms: ms() } : { type: 'probe', provider, ok, error: `probe session ran but computed ${JSON.stringify(got)} instead of ${JSON.stringify(PROBE_EXPECTED)}`, ms: ms() })
  } catch (err) {
    emit({ type: 'probe', provider, ok: false, error: err instanceof Error ? err.message : String(err), ms: ms() })
  }
}
