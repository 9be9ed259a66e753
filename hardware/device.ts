/**
 * `--device` values: auto | cpu | cuda | cuda:N | tensorrt | tensorrt:N |
 * webgpu. Validated once at
 * the edge (flags, config); the plan takes the parsed form.
 */
import { ConfigError } from '../src/errors.ts'

export type DeviceSpec =
  | { kind: 'auto' }
  | { kind: 'cpu' }
  | { kind: 'cuda', index?: number }
  /** TensorRT on a CUDA device (it needs the CUDA device too). */
  | { kind: 'tensorrt', index?: number }
  | { kind: 'webgpu' }

export const DEVICE_SPEC_HELP = 'auto, cpu, cuda, cuda:N (N = CUDA device number, 0-based), tensorrt, tensorrt:N or webgpu'

/** Parse and validate a device spec; throws ConfigError naming what is allowed. */
export function parseDeviceSpec (value: string): DeviceSpec {
  const s = value.trim().toLowerCase()
  if (s === 'auto' || s === 'cpu' || s === 'webgpu') return { kind: s }
  if (s === 'cuda' || s === 'tensorrt') return { kind: s }
  const m = /^(cuda|tensorrt):(\d{1,3})$/.exec(s)
  if (m !== null) return { kind: m[1] === 'cuda' ? 'cuda' : 'tensorrt', index: Number(m[2]) }
  throw new ConfigError(`invalid device ${JSON.stringify(value)}: use ${DEVICE_SPEC_HELP}`)
}

export function formatDeviceSpec (spec: DeviceSpec): string {
  return (spec.kind === 'cuda' || spec.kind === 'tensorrt') && spec.index !== undefined ? `${spec.kind}:${spec.index}` : spec.kind
}
