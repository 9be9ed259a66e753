/**
 * A minimal PNG writer (8-bit grey or RGB, one IDAT chunk) for synthetic
 * images: the detr skillset's sample input and the tests' broken images.
 * Decoding is sharp's job (decode.ts), never this module's.
 */
import { crc32, deflateSync } from 'node:zlib'

export const PNG_SIGNATURE: Readonly<Uint8Array> = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)

/** One chunk: length, type, data, CRC-32 of type and data. */
export function pngChunk (type: string, data: Uint8Array): Buffer {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.byteLength)
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body) >>> 0)
  return Buffer.concat([len, body, crc])
}

/** The 13 bytes of an IHDR chunk for an 8-bit image (colour type 0 = grey, 2 = RGB). */
export function pngHeader (width: number, height: number, colourType: 0 | 2): Buffer {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8
  ihdr[9] = colourType
  return ihdr
}

/** A PNG of `rows`: each row is its filter byte (0) then width × channels samples. */
export function encodePng (width: number, height: number, colourType: 0 | 2, rows: Uint8Array): Uint8Array {
  const stride = width * (colourType === 2 ? 3 : 1) + 1
  if (rows.byteLength !== stride * height) throw new RangeError(`PNG rows: ${rows.byteLength} bytes, expected ${height} rows of ${stride}`)
  return new Uint8Array(Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', pngHeader(width, height, colourType)), pngChunk('IDAT', deflateSync(rows, { level: 9 })), pngChunk('IEND', new Uint8Array(0))]))
}
