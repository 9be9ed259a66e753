/**
 * A deterministic byte-level BPE vocabulary (GPT-2 / Qwen2 style): the 256
 * byte tokens (id = byte value, written in GPT-2's printable byte alphabet),
 * then merges learned from a fixed corpus (BPE_CORPUS), then merges made by a
 * fixed rule until the vocabulary has the size asked for. Nothing depends on
 * the host or on the seed.
 *
 * Learning: the corpus is split with Qwen2's pre-tokenizer pattern, each
 * piece becomes byte symbols, and the most frequent adjacent pair is merged
 * again and again (ties: the smaller pair as a string) while some pair
 * appears at least twice.
 *
 * Filling: learned tokens t0, t1, ... (in merge order) are joined pairwise,
 * ti + tj, by increasing i + j, then i, skipping strings already in the
 * vocabulary. Such tokens are rarely produced by encoding, but every id the
 * model can write decodes to bytes.
 */
import { BPE_CORPUS } from './corpus.ts'

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 upwards. */
export const BYTE_TO_CHAR: readonly string[] = Object.freeze((() => {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
  const out: string[] = []
  let n = 0
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(printable(b) ? b : 256 + n++))
  return out
})())

/** Qwen2's pre-tokenizer pattern, as written in its tokenizer.json (Oniguruma syntax). */
export const QWEN2_SPLIT_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/** The same pattern in JavaScript syntax (the case-insensitive group spelled out). */
const SPLIT = /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu

const encoder = new TextEncoder()

/** A text piece as byte symbols. */
function byteSymbols (piece: string): string[] {
  return Array.from(encoder.encode(piece), (byte) => BYTE_TO_CHAR[byte] as string)
}

export type Merge = readonly [string, string]

/** Merges learned from `corpus` (all of them: until no pair appears twice). */
export function learnMerges (corpus: string = BPE_CORPUS): Merge[] {
  const counts = new Map<string, number>()
  for (const piece of corpus.match(SPLIT) ?? []) counts.set(piece, (counts.get(piece) ?? 0) + 1)
  const words = [...counts].map(([piece, count]) => ({ symbols: byteSymbols(piece), count }))
  const merges: Merge[] = []
  for (;;) {
    const pairs = new Map<string, number>()
    for (const w of words) {
      for (let i = 0; i + 1 < w.symbols.length; i++) {
        const key = `${w.symbols[i] as string} ${w.symbols[i + 1] as string}`
        pairs.set(key, (pairs.get(key) ?? 0) + w.count)
      }
    }
    let best: string | undefined
    let bestCount = 1
    for (const [key, c] of pairs) {
      if (c > bestCount || (c === bestCount && best !== undefined && key < best)) {
        best = key
        bestCount = c
      }
    }
    if (best === undefined) return merges
    // Byte symbols are never a space (GPT-2 writes it Ġ), so the key splits unambiguously.
    const [a, b] = best.split(' ') as [string, string]
    merges.push([a, b])
    for (const w of words) {
      const s = w.symbols
      if (s.length < 2) continue
      const out: string[] = []
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(a + b)
          i++
        } else {
          out.push(s[i] as string)
        }
      }
      w.symbols = out
    }
  }
}

export interface ByteLevelVocab {
  /** token string → id, for the 256 bytes and every merge, in id order */
  tokens: string[]
  merges: Merge[]
}

let learned: Merge[] | undefined

/** A vocabulary of exactly `size` tokens (bytes + merges), learned merges first. */
export function buildByteLevelVocab (size: number): ByteLevelVocab {
  if (!Number.isSafeInteger(size) || size < 256) throw new RangeError(`a byte-level vocabulary needs at least 256 tokens, asked for ${size}`)
  learned ??= learnMerges()
  const tokens = [...BYTE_TO_CHAR]
  const seen = new Set(tokens)
  const merges: Merge[] = []
  const add = (m: Merge): void => {
    const t = m[0] + m[1]
    if (tokens.length >= size || seen.has(t)) return
    seen.add(t)
    tokens.push(t)
    merges.push(m)
  }
  for (const m of learned) add(m)
  const base = tokens.slice(256)
  for (let sum = 0; tokens.length < size; sum++) {
    if (sum > 2 * base.length) throw new RangeError(`cannot fill a byte-level vocabulary of ${size} tokens`)
    for (let i = Math.max(0, sum - base.length + 1); i <= Math.min(sum, base.length - 1) && tokens.length < size; i++) {
      add([base[i] as string, base[sum - i] as string])
    }
  }
  return { tokens, merges }
}
