/**
 * Which weight formats keep results reproducible, and what a quantized
 * session needs on CPUs without VNNI.
 *
 * Reproducible here means batch-independent: a text's vector is the same
 * bits whether it runs alone or among any batch-mates. A dynamically
 * quantized graph (onnxruntime's quantize_dynamic, what hub exports such as
 * Xenova's model_quantized/int8/uint8 files are) takes each activation's
 * scale from the min/max of the whole batch tensor, so it is not. Float
 * graphs and statically quantized ones (fixed activation scales) are: on
 * this project's CPU provider a text's fp32 and static int8 vectors were
 * bit-identical alone, in a batch of 64 and padded to 400 words
 * (bench/repro.ts, docs/performance.md). A catalog entry says which of its
 * dtypes are batch-independent (`reproducibleDtypes`); absent, only its
 * float ones are.
 */
import type { Dtype, ModelEntry } from '../src/interfaces/index.ts'
import type { CpuInfo } from './types.ts'

/** Float weight formats: no quantized activations, so nothing taken from batch-mates. */
const FLOAT_DTYPES: readonly Dtype[] = Object.freeze(['fp32', 'fp16'])
/** Formats whose matrix products run ONNX Runtime's 8-bit integer kernels (u8 activations × s8/u8 weights). */
const EIGHT_BIT_DTYPES: readonly Dtype[] = Object.freeze(['q8', 'int8', 'uint8'])
/** x86 features with a non-saturating u8 × s8 dot product. */
const VNNI_FLAGS: readonly string[] = Object.freeze(['avx512_vnni', 'avx_vnni', 'amx_int8'])

/** ONNX Runtime's session config key that makes x86 use u8 × u8 kernels (onnxruntime_session_options_config_keys.h, kOrtSessionOptionsAvx2PrecisionMode). */
export const X64_QUANT_PRECISION_KEY = 'session.x64quantprecision'

/** The dtypes of a model whose results do not depend on batch-mates. */
export function reproducibleDtypes (entry: Pick<ModelEntry, 'dtypes' | 'reproducibleDtypes'>): Dtype[] {
  const listed = entry.reproducibleDtypes ?? FLOAT_DTYPES
  return entry.dtypes.filter((d) => listed.includes(d))
}

export function isReproducible (entry: Pick<ModelEntry, 'dtypes' | 'reproducibleDtypes'>, dtype: Dtype): boolean {
  return reproducibleDtypes(entry).includes(dtype)
}

/** Why a dtype's results depend on batch-mates, for reasons and logs. */
export function batchDependenceReason (entry: Pick<ModelEntry, 'id' | 'reproducibleDtypes'>, dtype: Dtype): string {
  const source = entry.reproducibleDtypes === undefined ? 'the catalog lists no reproducible quantized dtype for it, and hub exports are dynamically quantized' : `the catalog lists only ${entry.reproducibleDtypes.join(', ')} as reproducible`
  return `${entry.id} ${dtype} depends on batch-mates (${source}): dynamic quantization scales each activation over the whole batch, so a text's vector changes with the texts it is batched with`
}

/**
 * The u8s8 guard: on x86-64 without VNNI (SSE4.1, AVX2, AVX-512 without
 * VNNI), ONNX Runtime's u8 × s8 kernels add pairs of products into 16 bits
 * with saturation, so large activations × weights come out wrong.
 * `session.x64quantprecision=1` makes it convert s8 weights to u8 at load
 * and run its exact (slower) u8 × u8 kernels. Returns the session config
 * entries to set and why, or undefined where none are needed.
 */
export function quantSessionConfig (cpu: Pick<CpuInfo, 'arch' | 'flags'>, dtype: Dtype): { config: Record<string, string>, reason: string } | undefined {
  if (!EIGHT_BIT_DTYPES.includes(dtype) || cpu.arch !== 'x64') return undefined
  if (VNNI_FLAGS.some((f) => cpu.flags.includes(f))) return undefined
  const isa = cpu.flags.includes('avx512bw') ? 'AVX-512 without VNNI' : cpu.flags.includes('avx2') ? 'AVX2 without VNNI' : 'no AVX2 nor VNNI'
  return {
    config: { [X64_QUANT_PRECISION_KEY]: '1' },
    reason: `${X64_QUANT_PRECISION_KEY}=1: the CPU has ${isa}, where ONNX Runtime's u8 x s8 int8 kernels can saturate 16-bit sums; this makes it run exact u8 x u8 kernels instead (slower, not measured on such a CPU here)`
  }
}
