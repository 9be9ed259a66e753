/** Concurrency primitives of the store: a task limiter and an in-process read/write lock. */

/** Runs at most `limit` tasks at once; `run` waits for a free slot. */
export class Limiter {
  private active = 0
  private readonly waiters: Array<() => void> = []
  private readonly limit: number
  private readonly pending = new Set<Promise<void>>()
  private firstError: unknown
  constructor (limit: number) { this.limit = limit }

  /** Start `task` once a slot is free; its failure surfaces from `drain()`. */
  async run (task: () => Promise<void>): Promise<void> {
    if (this.firstError !== undefined) throw this.firstError
    while (this.active >= this.limit) await new Promise<void>((resolve) => { this.waiters.push(resolve) })
    this.active++
    const p = task().catch((err: unknown) => { this.firstError ??= err }).finally(() => {
      this.active--
      this.pending.delete(p)
      this.waiters.shift()?.()
    })
    this.pending.add(p)
  }

  async drain (): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending])
    if (this.firstError !== undefined) throw this.firstError
  }
}

/** An in-process read/write lock: many readers (imports, pulls) or one writer (gc). */
export class RwLock {
  private readers = 0
  private writer = false
  private readonly queue: Array<{ write: boolean, resolve: () => void }> = []

  async read<T> (fn: () => Promise<T>): Promise<T> {
    await this.acquire(false)
    try { return await fn() } finally { this.release(false) }
  }

  async write<T> (fn: () => Promise<T>): Promise<T> {
    await this.acquire(true)
    try { return await fn() } finally { this.release(true) }
  }

  private async acquire (write: boolean): Promise<void> {
    if (this.queue.length === 0 && !this.writer && (!write || this.readers === 0)) {
      if (write) this.writer = true
      else this.readers++
      return
    }
    await new Promise<void>((resolve) => { this.queue.push({ write, resolve }) })
  }

  private release (write: boolean): void {
    if (write) this.writer = false
    else this.readers--
    while (this.queue.length > 0) {
      const next = this.queue[0]
      if (next === undefined) break
      if (next.write) {
        if (this.readers > 0 || this.writer) break
        this.queue.shift()
        this.writer = true
        next.resolve()
        break
      }
      if (this.writer) break
      this.queue.shift()
      this.readers++
      next.resolve()
    }
  }
}
