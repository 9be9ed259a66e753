/**
 * A small builder of ONNX graphs over the plain-object form that `onnx-proto`
 * encodes. Names of intermediate values are generated from a prefix and a
 * counter, so the same calls always give the same bytes.
 */
import type { onnx } from 'onnx-proto'
import onnxProto from 'onnx-proto'

export const OPSET = 17
export const IR_VERSION = 8

/** ONNX TensorProto.DataType numbers used here. */
export const DT = Object.freeze({ FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9 })
const AT = Object.freeze({ FLOAT: 1, INT: 2, INTS: 7 })

export type AttrValue = number | number[] | { float: number }
export type Dim = number | string

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('the ONNX writer needs a little-endian host')
}

function bytesOf (data: Float32Array | BigInt64Array | Uint8Array | Int8Array | Int32Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

function attribute (name: string, v: AttrValue): onnx.IAttributeProto {
  if (Array.isArray(v)) return { name, type: AT.INTS, ints: v }
  if (typeof v === 'object') return { name, type: AT.FLOAT, f: v.float }
  return { name, type: AT.INT, i: v }
}

function valueInfo (name: string, elemType: number, dims: Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => typeof d === 'string' ? { dimParam: d } : { dimValue: d }) } } }
  }
}

export class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = []
  readonly initializers: onnx.ITensorProto[] = []
  readonly inputs: onnx.IValueInfoProto[] = []
  readonly outputs: onnx.IValueInfoProto[] = []
  private counter = 0
  private readonly constants = new Map<string, string>()

  input (name: string, elemType: number, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, elemType, dims))
    return name
  }

  output (name: string, elemType: number, dims: Dim[]): void {
    this.outputs.push(valueInfo(name, elemType, dims))
  }

  /** An initializer; its data is referenced, not copied. */
  tensor (name: string, dims: number[], data: Float32Array | BigInt64Array | Uint8Array | Int8Array | Int32Array): string {
    const dataType = data instanceof Float32Array
      ? DT.FLOAT
      : data instanceof BigInt64Array ? DT.INT64 : data instanceof Uint8Array ? DT.UINT8 : data instanceof Int8Array ? DT.INT8 : DT.INT32
    const n = dims.reduce((a, b) => a * b, 1)
    if (n !== data.length) throw new RangeError(`initializer ${name}: dims ${dims.join('x')} hold ${n} values, got ${data.length}`)
    this.initializers.push({ name, dims, dataType, rawData: bytesOf(data) })
    return name
  }

  /** A shared float scalar or int64 vector constant. */
  floatScalar (v: number): string {
    return this.constant(`f:${v}`, () => this.tensor(`const_f_${this.constants.size}`, [], new Float32Array([v])))
  }

  int64s (v: number[]): string {
    return this.constant(`i:${v.join(',')}`, () => this.tensor(`const_i_${this.constants.size}`, [v.length], BigInt64Array.from(v, (x) => BigInt(x))))
  }

  private constant (key: string, make: () => string): string {
    let name = this.constants.get(key)
    if (name === undefined) {
      name = make()
      this.constants.set(key, name)
    }
    return name
  }

  /** Add a node; returns its output names (fresh unless given). */
  node (opType: string, inputs: string[], opts: { attrs?: Record<string, AttrValue>, outputs?: string[], nOutputs?: number, domain?: string } = {}): string[] {
    const id = this.counter++
    const outputs = opts.outputs ?? Array.from({ length: opts.nOutputs ?? 1 }, (_, i) => `${opType}_${id}_${i}`)
    const n: onnx.INodeProto = { opType, name: `${opType}_${id}`, input: inputs, output: outputs }
    if (opts.domain !== undefined) n.domain = opts.domain
    if (opts.attrs !== undefined) n.attribute = Object.entries(opts.attrs).map(([k, v]) => attribute(k, v))
    this.nodes.push(n)
    return outputs
  }

  /** `node` for single-output ops. */
  op (opType: string, inputs: string[], attrs?: Record<string, AttrValue>, output?: string): string {
    const [out] = this.node(opType, inputs, { attrs, outputs: output === undefined ? undefined : [output] })
    return out as string
  }

  /** Encode the model (opset 17, IR 8). */
  encode (graphName: string, docString: string): Uint8Array {
    const model: onnx.IModelProto = {
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET }],
      producerName: 'ipfs-accelerate',
      producerVersion: '1',
      docString,
      graph: {
        name: graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs
      }
    }
    return onnxProto.onnx.ModelProto.encode(model).finish()
  }
}
