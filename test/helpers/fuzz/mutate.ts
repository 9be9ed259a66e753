/**
 * A seeded, structure-aware mutator for the fuzz tests: it takes valid
 * messages (plain values that encode to CBOR, or bytes) and makes malformed
 * ones by
 *   - value mutations: a field of the wrong type or out of range, a key
 *     dropped, an unknown key added, a huge or deeply nested value;
 *   - byte mutations of the encoding: bit flips, truncation, extension,
 *     random splices, a CBOR header of another major type, a declared
 *     length far past the data, nesting depth bombs, duplicate map keys;
 *   - fully random bytes.
 * The same seed gives the same inputs on every run and host, so a failure
 * can be replayed with `bench/fuzz.ts --seed`.
 */
import { encode } from 'cborg'
import { mulberry32 } from '../../../src/models/generate/prng.ts'

export type Mutation =
  | 'wrong-type' | 'drop-key' | 'extra-key' | 'huge-value' | 'deep-value'
  | 'bit-flip' | 'truncate' | 'extend' | 'splice' | 'cbor-type' | 'huge-length' | 'depth-bomb' | 'dup-key'
  | 'random'

export const VALUE_MUTATIONS: readonly Mutation[] = ['wrong-type', 'drop-key', 'extra-key', 'huge-value', 'deep-value']
export const BYTE_MUTATIONS: readonly Mutation[] = ['bit-flip', 'truncate', 'extend', 'splice', 'cbor-type', 'huge-length', 'depth-bomb', 'dup-key']

export interface FuzzInput { kind: Mutation, bytes: Uint8Array }

type Plain = Record<string, unknown>

const utf8 = new TextEncoder()

export class Fuzzer {
  private readonly rnd: () => number

  constructor (seed: number) {
    this.rnd = mulberry32(seed)
  }

  /** An integer in [0, n). */
  int (n: number): number { return Math.floor(this.rnd() * n) }
  chance (p: number): boolean { return this.rnd() < p }
  pick<T> (xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from an empty list')
    return xs[this.int(xs.length)] as T
  }

  bytes (n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = this.int(256)
    return out
  }

  /** A length skewed to small values, at most `max`. */
  size (max: number): number {
    return Math.min(max, Math.floor(2 ** (this.rnd() * Math.log2(max + 1))))
  }

  /** A value of some other type or range than a field expects. */
  weird (): unknown {
    const table: Array<() => unknown> = [
      () => null,
      () => true,
      () => -1,
      () => 0,
      () => 2 ** 53 + 2,
      () => -(2 ** 63),
      () => 1.5,
      () => Number.NaN,
      () => Number.POSITIVE_INFINITY,
      () => '',
      () => 'x'.repeat(this.size(100_000)),
      () => '\u0000\uffff\ud7ff' + String.fromCharCode(...Array.from({ length: 8 }, () => this.int(0xd7ff))),
      () => '../../../etc/passwd',
      () => this.bytes(this.size(4096)),
      () => [],
      () => Array.from({ length: this.size(64) }, () => this.int(1000)),
      () => ({}),
      () => JSON.parse('{"__proto__":{"polluted":true}}') as unknown,
      () => ({ constructor: { prototype: { polluted: true } } })
    ]
    return this.pick(table)()
  }

  /** A mutated copy of a plain value (objects and arrays recursed into; a few changes). */
  mutateValue (base: unknown, kind: Mutation): unknown {
    const copy = structuredClone(base)
    if (typeof copy !== 'object' || copy === null || copy instanceof Uint8Array) return this.weird()
    const paths = objectPaths(copy)
    const [parent, key] = this.pick(paths)
    switch (kind) {
      case 'wrong-type':
        setAt(parent, key, this.weird())
        break
      case 'drop-key':
        if (Array.isArray(parent)) parent.splice(Number(key), 1)
        else delete (parent as Plain)[key]
        break
      case 'extra-key':
        setAt(parent, this.pick(['x', 'extra', 'v2', 'jobId', 't', '__proto__', 'constructor', 'a'.repeat(100)]), this.weird())
        break
      case 'huge-value':
        setAt(parent, key, this.pick<() => unknown>([
          () => 'z'.repeat(300_000),
          () => new Uint8Array(300_000),
          () => Array.from({ length: 20_000 }, (_, i) => i),
          () => Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i])),
          () => 2 ** 64
        ])())
        break
      case 'deep-value': {
        let v: unknown = 1
        const depth = 50 + this.int(400)
        for (let i = 0; i < depth; i++) v = this.chance(0.5) ? [v] : { a: v }
        setAt(parent, key, v)
        break
      }
      default:
        throw new Error(`not a value mutation: ${kind}`)
    }
    return copy
  }

  /** A mutated copy of an encoding. */
  mutateBytes (valid: Uint8Array, kind: Mutation): Uint8Array {
    const b = Uint8Array.from(valid)
    switch (kind) {
      case 'bit-flip': {
        const flips = 1 + this.int(8)
        for (let i = 0; i < flips && b.byteLength > 0; i++) {
          const at = this.int(b.byteLength)
          b[at] = (b[at] as number) ^ (1 << this.int(8))
        }
        return b
      }
      case 'truncate':
        return b.subarray(0, this.int(Math.max(1, b.byteLength)))
      case 'extend':
        return concat(b, this.bytes(1 + this.size(4096)))
      case 'splice': {
        const at = this.int(b.byteLength + 1)
        return concat(b.subarray(0, at), this.bytes(1 + this.size(64)), b.subarray(at + this.int(16)))
      }
      case 'cbor-type':
        // the body's first byte as another major type, or a lone break/undefined/tag
        return this.chance(0.5) ? concat(Uint8Array.of(this.pick([0x00, 0x20, 0x40, 0x60, 0x80, 0xc0, 0xe0]) | (b[0] ?? 0) & 0x1f), b.subarray(1)) : concat(Uint8Array.of(this.pick([0xff, 0xf7, 0xc2, 0xd8, 0x9f, 0xbf, 0x5f, 0x7f])), b)
      case 'huge-length':
        // a map, array, byte or text string that claims up to 2^64-1 entries or bytes
        return concat(Uint8Array.of(this.pick([0x5b, 0x7b, 0x9b, 0xbb, 0x5a, 0x9a, 0xba])), Uint8Array.from({ length: 8 }, () => 0xff), b)
      case 'depth-bomb': {
        const depth = this.pick([1000, 20_000, 200_000])
        const bomb = new Uint8Array(depth).fill(this.pick([0x81, 0x9f, 0xa1, 0xd8]))
        if (bomb[0] === 0xd8) for (let i = 1; i < depth; i += 2) bomb[i] = 0x2a
        return concat(bomb, b)
      }
      case 'dup-key':
        // the same map twice over: a map of 2 entries with equal keys, then the message
        return concat(Uint8Array.of(0xa2, 0x61, 0x74, 0x01, 0x61, 0x74, 0x02), b)
      default:
        throw new Error(`not a byte mutation: ${kind}`)
    }
  }

  /** One malformed-looking input made from one of `valid` (values encoded with CBOR). */
  input (valid: readonly unknown[]): FuzzInput {
    const r = this.rnd()
    if (r < 0.08) return { kind: 'random', bytes: this.bytes(this.size(8192)) }
    const base = this.pick(valid)
    if (r < 0.5) {
      const kind = this.pick(VALUE_MUTATIONS)
      return { kind, bytes: encode(this.mutateValue(base, kind)) }
    }
    const kind = this.pick(BYTE_MUTATIONS)
    return { kind, bytes: this.mutateBytes(encode(base), kind) }
  }
}

/** Every (container, key) in a value, the root's own keys included. */
function objectPaths (root: object): Array<[object, string]> {
  const out: Array<[object, string]> = []
  const walk = (o: object, depth: number): void => {
    if (depth > 8) return
    for (const k of Object.keys(o)) {
      out.push([o, k])
      const v = (o as Plain)[k]
      if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) walk(v, depth + 1)
    }
  }
  walk(root, 0)
  if (out.length === 0) out.push([root, 'x'])
  return out
}

/** Set an own property (`__proto__` included, as CBOR and JSON decoders make it). */
function setAt (parent: object, key: string, v: unknown): void {
  Object.defineProperty(parent, key, { value: v, enumerable: true, writable: true, configurable: true })
}

export function concat (...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.byteLength }
  return out
}

export function varint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) { out.push((n % 0x80) | 0x80); n = Math.floor(n / 0x80) }
  out.push(n)
  return Uint8Array.from(out)
}

export const text = (s: string): Uint8Array => utf8.encode(s)

/** A tally of inputs by what was done to them and what came of them. */
export class Tally {
  readonly kinds: Partial<Record<Mutation, number>> = {}
  sent = 0
  /** Mutated inputs that happened to be valid (not counted as malformed, not sent where noted). */
  validByChance = 0
  rejected = 0
  resets = 0
  answered = 0
  timeouts = 0

  count (kind: Mutation): void {
    this.sent++
    this.kinds[kind] = (this.kinds[kind] ?? 0) + 1
  }
}
