/**
 * The wire form of an embed output: the vectors as little-endian float32
 * bytes. `decodeEmbedOutput` checks what came off the wire before trusting it.
 */
import { z } from 'zod'
import { ProtocolError } from '../../src/errors.ts'

export interface EmbedOutput {
  /** count × dims values, row-major. */
  embeddings: Float32Array
  count: number
  dims: number
  /** Indices of texts longer than the model's token limit: embedded from their beginning only. */
  truncated?: number[]
}

export interface EmbedWireOutput {
  /** count × dims little-endian float32 values. */
  embeddings: Uint8Array
  count: number
  dims: number
  [key: string]: unknown
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

function checkShape (values: number, count: number, dims: number, what: string): void {
  if (values !== count * dims) throw new ProtocolError(`${what}: ${values} values are not ${count} × ${dims}`)
}

/** To the wire. On little-endian hosts the bytes share the vectors' memory. */
export function encodeEmbedOutput (out: EmbedOutput): EmbedWireOutput {
  checkShape(out.embeddings.length, out.count, out.dims, 'embed output')
  const e = out.embeddings
  const extra = out.truncated === undefined || out.truncated.length === 0 ? {} : { truncated: out.truncated }
  if (LITTLE_ENDIAN) return { embeddings: new Uint8Array(e.buffer, e.byteOffset, e.byteLength), count: out.count, dims: out.dims, ...extra }
  const bytes = new Uint8Array(e.length * 4)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < e.length; i++) view.setFloat32(i * 4, e[i] as number, true)
  return { embeddings: bytes, count: out.count, dims: out.dims, ...extra }
}

/** From the wire: validated, copied into fresh aligned memory. Throws ProtocolError. */
export function decodeEmbedOutput (wire: unknown, limits: { maxTexts: number, maxDims: number }): EmbedOutput {
  const schema = z.strictObject({
    embeddings: z.instanceof(Uint8Array),
    count: z.number().int().min(1).max(limits.maxTexts),
    dims: z.number().int().min(1).max(limits.maxDims),
    truncated: z.array(z.number().int().nonnegative()).max(limits.maxTexts).optional()
  })
  const parsed = schema.safeParse(wire)
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(output)'}: ${i.message}`).join('; ')
    throw new ProtocolError(`malformed embed output: ${problems}`, { cause: parsed.error })
  }
  const { embeddings: bytes, count, dims, truncated } = parsed.data
  if (truncated?.some((t) => t >= count) === true) throw new ProtocolError(`malformed embed output: a truncated-text index is not below ${count}`)
  if (bytes.byteLength !== count * dims * 4) {
    throw new ProtocolError(`malformed embed output: ${bytes.byteLength} bytes, expected ${count} × ${dims} float32 = ${count * dims * 4}`)
  }
  const embeddings = new Float32Array(count * dims)
  if (LITTLE_ENDIAN) {
    new Uint8Array(embeddings.buffer).set(bytes)
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    for (let i = 0; i < embeddings.length; i++) embeddings[i] = view.getFloat32(i * 4, true)
  }
  return { embeddings, count, dims, ...(truncated === undefined ? {} : { truncated }) }
}
