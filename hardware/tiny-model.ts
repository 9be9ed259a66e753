/**
 * The probe model: y = x + x on a float32 [2] tensor (opset 17, IR 8),
 * small enough to build in memory and to run on any execution provider.
 */
import onnxProto from 'onnx-proto'

const FLOAT = 1

export const PROBE_INPUT: readonly number[] = Object.freeze([1.5, -2])
export const PROBE_EXPECTED: readonly number[] = Object.freeze([3, -4])

export function tinyAddModel (): Uint8Array {
  const { onnx } = onnxProto
  const tensor = (name: string): onnxProto.onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimValue: PROBE_INPUT.length }] } } }
  })
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: 'ipfs-accelerate-hardware-probe',
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'probe',
      node: [{ opType: 'Add', input: ['x', 'x'], output: ['y'], name: 'add' }],
      input: [tensor('x')],
      output: [tensor('y')]
    }
  }).finish()
}
