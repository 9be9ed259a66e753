/**
 * Per-tensor asymmetric uint8 quantization of weights, as onnxruntime's
 * quantize_dynamic does it (weight_type=QUInt8): the range always includes 0,
 * so 0 is exact; value ≈ (q - zeroPoint) × scale.
 */

export interface QuantizedUint8 { values: Uint8Array, scale: number, zeroPoint: number }

export function quantizeUint8 (data: Float32Array): QuantizedUint8 {
  let min = 0
  let max = 0
  for (const v of data) {
    if (v < min) min = v
    if (v > max) max = v
  }
  const scale = Math.fround(max > min ? (max - min) / 255 : 1)
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-min / scale)))
  const values = new Uint8Array(data.length)
  for (let i = 0; i < data.length; i++) {
    values[i] = Math.min(255, Math.max(0, Math.round((data[i] as number) / scale) + zeroPoint))
  }
  return { values, scale, zeroPoint }
}

export interface QuantizedInt8 { values: Int8Array, scale: number, zeroPoint: 0 }

/** Per-tensor symmetric int8 (quantize_dynamic's weight_type=QInt8): value ≈ q × scale. */
export function quantizeInt8 (data: Float32Array): QuantizedInt8 {
  let absMax = 0
  for (const v of data) if (Math.abs(v) > absMax) absMax = Math.abs(v)
  const scale = Math.fround(absMax > 0 ? absMax / 127 : 1)
  const values = new Int8Array(data.length)
  for (let i = 0; i < data.length; i++) values[i] = Math.min(127, Math.max(-127, Math.round((data[i] as number) / scale)))
  return { values, scale, zeroPoint: 0 }
}
