/** Small helpers shared by the benchmarks. */

export function median (xs: number[]): number {
  return percentile(xs, 0.5)
}

export function percentile (xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const i = (s.length - 1) * p
  const lo = Math.floor(i)
  const hi = Math.ceil(i)
  return s[lo]! + (s[hi]! - s[lo]!) * (i - lo)
}

export function printTable (rows: Array<Record<string, string>>): void {
  if (rows.length === 0) return
  const cols = Object.keys(rows[0]!)
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(width[i]!)).join('  ')
  process.stdout.write(line(cols) + '\n' + line(width.map((w) => '-'.repeat(w))) + '\n')
  for (const r of rows) process.stdout.write(line(cols.map((c) => r[c] ?? '')) + '\n')
}

/** Deterministic English-like texts of 8-40 words. */
export function benchTexts (n: number): string[] {
  const words = 'the a swarm of worker nodes shares model weights and embeddings through content addressed blocks while each host runs inference on its best execution provider gossip carries offers bids and leases travel on direct streams batching wins back the bus cost of every job'.split(' ')
  let x = 12345
  const rnd = (): number => { x = (x * 1103515245 + 12345) & 0x7fffffff; return x / 0x7fffffff }
  return Array.from({ length: n }, () => Array.from({ length: 8 + Math.floor(rnd() * 32) }, () => words[Math.floor(rnd() * words.length)]).join(' '))
}
