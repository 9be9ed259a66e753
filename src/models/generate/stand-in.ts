/**
 * The folder of the stand-in skillset's model: no weights, only what the
 * node's plumbing expects of a Hugging Face-layout model (a config.json and
 * an `onnx/model.onnx`, here a placeholder that is not an ONNX graph). The
 * bytes depend on the seed only, so every host makes the same CID.
 */

const encoder = new TextEncoder()

/** The files of the stand-in model generated from `seed`, path → bytes. */
export function standInFiles (seed: number): Map<string, Uint8Array> {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`)
  return new Map([
    ['config.json', encoder.encode(JSON.stringify({ model_type: 'stand-in', seed }, null, 2) + '\n')],
    ['onnx/model.onnx', encoder.encode(`stand-in placeholder (seed ${seed}): not an ONNX graph; the stand-in skillset runs on timers and never reads it\n`)]
  ])
}
