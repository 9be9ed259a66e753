/**
 * Which files of a Hugging Face-layout model hold which weight format, by
 * transformers.js's naming: each ONNX session is `onnx/<base><suffix>.onnx`
 * (`model`, or `vision_encoder`, `embed_tokens`, `decoder_model_merged` for
 * a vision-language model), the suffix names the dtype (none for fp32,
 * `_fp16`, `_quantized` for q8, `_q4`, ...), and weights past 2 GB sit in
 * external data files beside it (`<file>_data`, `<file>_data_1`, ...).
 *
 * A hub download takes the planned dtype's files from the repo's listing; a
 * stored model offers a dtype when it holds that dtype's file for every
 * session the model has.
 */
import type { Dtype } from '../interfaces/index.ts'
import { DTYPES } from '../interfaces/index.ts'

/** transformers.js's file-name suffix for each dtype (its DEFAULT_DTYPE_SUFFIX_MAPPING). */
export const DTYPE_SUFFIX: Readonly<Record<Dtype, string>> = Object.freeze({
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4'
})

const ONNX_RE = /^onnx\/([A-Za-z0-9._-]+)\.onnx$/
const DATA_RE = /^(onnx\/[A-Za-z0-9._-]+\.onnx)_data(_[0-9]+)?$/
/** Longest suffixes first, so that `_q4f16` is not read as `_q4`... of `f16`. */
const BY_SUFFIX = [...DTYPES].filter((d) => DTYPE_SUFFIX[d] !== '').sort((a, b) => DTYPE_SUFFIX[b].length - DTYPE_SUFFIX[a].length)

/** An ONNX file's session base and dtype: `onnx/vision_encoder_q4.onnx` → vision_encoder, q4. */
export function parseOnnxFile (path: string): { base: string, dtype: Dtype } | undefined {
  const m = ONNX_RE.exec(path)
  if (m === null) return undefined
  const stem = m[1] as string
  for (const d of BY_SUFFIX) {
    const suffix = DTYPE_SUFFIX[d]
    if (stem.endsWith(suffix) && stem.length > suffix.length) return { base: stem.slice(0, -suffix.length), dtype: d }
  }
  return { base: stem, dtype: 'fp32' }
}

/** The sessions (ONNX bases) a model has, from any dtype's files. */
export function sessionBases (paths: Iterable<string>): Set<string> {
  const out = new Set<string>()
  for (const p of paths) {
    const f = parseOnnxFile(p)
    if (f !== undefined) out.add(f.base)
  }
  return out
}

/**
 * The files of one dtype: its ONNX file for each session, and their external
 * data files, in listing order. Empty when the dtype lacks a session.
 */
export function filesOfDtype (paths: readonly string[], dtype: Dtype): string[] {
  const bases = sessionBases(paths)
  const onnx = paths.filter((p) => parseOnnxFile(p)?.dtype === dtype)
  if (bases.size === 0 || new Set(onnx.map((p) => parseOnnxFile(p)?.base)).size !== bases.size) return []
  const chosen = new Set(onnx)
  const data = paths.filter((p) => {
    const m = DATA_RE.exec(p)
    return m !== null && chosen.has(m[1] as string)
  })
  return [...onnx, ...data]
}

/** The dtypes a folder offers: those with a file for every session. */
export function dtypesOffered (paths: readonly string[]): Dtype[] {
  return DTYPES.filter((d) => filesOfDtype(paths, d).length > 0)
}
