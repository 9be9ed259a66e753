/**
 * Incremental decoding of generated tokens into text, with stop sequences:
 * text is released only when it is whole UTF-8 (a character split across
 * tokens waits for its last byte) and cannot be the start of a stop
 * sequence. When a stop sequence appears, the text before it is released and
 * the rest (the stop sequence included) never is, as OpenAI does.
 */

export interface StopStep {
  /** Text released by this token (may be empty). */
  delta: string
  /** True when a stop sequence was found: generation ends. */
  stopped: boolean
}

export class StopMatcher {
  private readonly stops: readonly string[]
  private readonly decode: (ids: number[]) => string
  private readonly ids: number[] = []
  /** Characters of the decoded text released so far. */
  private released = 0
  private done = false

  /** `decode` turns the generated ids into text (the tokenizer's, special tokens skipped). */
  constructor (stops: readonly string[], decode: (ids: number[]) => string) {
    this.stops = stops.filter((s) => s.length > 0)
    this.decode = decode
  }

  /** Take one generated token. */
  push (id: number): StopStep {
    if (this.done) return { delta: '', stopped: true }
    this.ids.push(id)
    let text = this.decode(this.ids)
    // A trailing U+FFFD is a character still missing bytes: hold it back.
    let end = text.length
    while (end > this.released && text.charCodeAt(end - 1) === 0xfffd) end--
    text = text.slice(0, end)
    let hit = -1
    for (const s of this.stops) {
      const at = text.indexOf(s, Math.max(0, this.released - s.length + 1))
      if (at !== -1 && (hit === -1 || at < hit)) hit = at
    }
    if (hit !== -1) {
      this.done = true
      const delta = text.slice(this.released, Math.max(hit, this.released))
      this.released = Math.max(hit, this.released)
      return { delta, stopped: true }
    }
    const safe = end - this.heldBack(text)
    const delta = safe > this.released ? text.slice(this.released, safe) : ''
    if (safe > this.released) this.released = safe
    return { delta, stopped: false }
  }

  /** At the end (length or eos): the text still held back, which is no stop sequence after all. */
  flush (): string {
    if (this.done) return ''
    this.done = true
    const text = this.decode(this.ids)
    const delta = text.slice(this.released)
    this.released = text.length
    return delta
  }

  /** Characters at the end of `text` that could begin a stop sequence. */
  private heldBack (text: string): number {
    let hold = 0
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, text.length - this.released); n > hold; n--) {
        if (text.endsWith(s.slice(0, n))) { hold = n; break }
      }
    }
    return hold
  }
}
