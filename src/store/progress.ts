/**
 * Progress of a long transfer: bytes, rate and ETA. On a TTY one line is
 * redrawn in place (a bar); otherwise a plain line is written every few
 * seconds, so logs stay readable.
 */

export interface ProgressSink {
  write(text: string): unknown
  isTTY?: boolean
  columns?: number
}

export interface ProgressInit {
  out: ProgressSink
  label: string
  /** Force TTY (bar) or plain lines; default: `out.isTTY`. */
  tty?: boolean
  /** Plain-line interval (ms). */
  intervalMs?: number
  now?: () => number
}

export function formatBytes (n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(2)} GiB`
}

export function formatDuration (s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?'
  if (s < 10) return `${s.toFixed(1)}s`
  if (s < 60) return `${Math.round(s)}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

export class ProgressBar {
  private readonly init: Required<Omit<ProgressInit, 'tty'>> & { tty: boolean }
  private readonly started: number
  private readonly samples: Array<[number, number]> = []
  private lastDraw = Number.NEGATIVE_INFINITY
  private bytes = 0
  private total: number | undefined
  private finished = false

  constructor (init: ProgressInit) {
    this.init = { intervalMs: 2000, now: () => performance.now(), ...init, tty: init.tty ?? init.out.isTTY === true }
    this.started = this.init.now()
    this.samples.push([this.started, 0])
  }

  /** Bytes done so far (absolute) and, once known, the total. */
  update (bytes: number, total?: number): void {
    if (this.finished) return
    this.bytes = bytes
    if (total !== undefined) this.total = total
    const now = this.init.now()
    this.samples.push([now, bytes])
    while (this.samples.length > 2 && (this.samples[0] as [number, number])[0] < now - 5000) this.samples.shift()
    const gap = this.init.tty ? 100 : this.init.intervalMs
    if (now - this.lastDraw >= gap) {
      this.lastDraw = now
      this.draw(false)
    }
  }

  /** Draw the final state and end the line. */
  finish (): void {
    if (this.finished) return
    this.finished = true
    this.draw(true)
  }

  /** Bytes per second over the last few seconds (whole run at the end). */
  rate (final = false): number {
    const now = this.init.now()
    if (final) return this.bytes / Math.max((now - this.started) / 1000, 1e-3)
    const first = this.samples[0] as [number, number]
    const dt = (now - first[0]) / 1000
    return dt <= 0 ? 0 : (this.bytes - first[1]) / dt
  }

  line (final = false): string {
    const rate = this.rate(final)
    const total = this.total
    const pct = total !== undefined && total > 0 ? Math.min(100, (this.bytes / total) * 100) : undefined
    const size = total !== undefined ? `${formatBytes(this.bytes)} / ${formatBytes(total)}` : formatBytes(this.bytes)
    const eta = final
      ? `in ${formatDuration((this.init.now() - this.started) / 1000)}`
      : total !== undefined && rate > 0 ? `ETA ${formatDuration((total - this.bytes) / rate)}` : 'ETA ?'
    const head = pct !== undefined ? `${pct.toFixed(0).padStart(3)}%` : ''
    return `${this.init.label} ${head} ${size}  ${formatBytes(rate)}/s  ${eta}`.replace(/ {3,}/g, '  ')
  }

  private draw (final: boolean): void {
    const text = this.line(final)
    if (!this.init.tty) {
      this.init.out.write(text + '\n')
      return
    }
    const width = Math.max(10, Math.min(40, (this.init.out.columns ?? 100) - text.length - 4))
    const frac = this.total !== undefined && this.total > 0 ? Math.min(1, this.bytes / this.total) : 0
    const filled = Math.round(frac * width)
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`
    this.init.out.write(`\r\x1b[2K${bar} ${text}${final ? '\n' : ''}`)
  }
}
