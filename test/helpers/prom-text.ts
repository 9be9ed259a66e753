/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for
 * tests: it throws on anything a scraper would reject or that hides a bug
 * (a sample before its TYPE, a family split in two, a duplicate series, a
 * histogram whose buckets are not cumulative or lack +Inf, a _count that is
 * not the +Inf bucket).
 */

export interface Sample { name: string, labels: Record<string, string>, value: number }
export interface Family { name: string, type: string, help: string | undefined, samples: Sample[] }

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])
const SUFFIXES: Readonly<Record<string, readonly string[]>> = { histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] }

function parseValue (s: string, line: number): number {
  if (s === '+Inf') return Infinity
  if (s === '-Inf') return -Infinity
  if (s === 'NaN') return NaN
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`line ${line}: ${JSON.stringify(s)} is not a sample value`)
  return Number(s)
}

/** `{a="x",b="y"}` from position i of text: the labels and where they end. */
function parseLabels (text: string, line: number): { labels: Record<string, string>, rest: string } {
  const labels: Record<string, string> = {}
  let i = 1
  while (text[i] !== '}') {
    const eq = text.indexOf('=', i)
    if (eq < 0) throw new Error(`line ${line}: a label without =`)
    const name = text.slice(i, eq)
    if (!LABEL.test(name)) throw new Error(`line ${line}: bad label name ${JSON.stringify(name)}`)
    if (name in labels) throw new Error(`line ${line}: label ${name} twice`)
    if (text[eq + 1] !== '"') throw new Error(`line ${line}: label ${name}'s value is not quoted`)
    let v = ''
    let j = eq + 2
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        const e = text[++j]
        if (e === 'n') v += '\n'
        else if (e === '\\' || e === '"') v += e
        else throw new Error(`line ${line}: bad escape \\${e ?? ''} in label ${name}`)
      } else v += text[j]
    }
    if (j >= text.length) throw new Error(`line ${line}: label ${name}'s value is not closed`)
    labels[name] = v
    i = j + 1
    if (text[i] === ',') i++
    else if (text[i] !== '}') throw new Error(`line ${line}: expected , or } after label ${name}`)
  }
  return { labels, rest: text.slice(i + 1) }
}

/** The family a sample name belongs to, given the TYPE lines seen. */
function familyOf (name: string, families: Map<string, Family>): Family | undefined {
  const exact = families.get(name)
  if (exact !== undefined && exact.type !== 'histogram') return exact
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue
    const f = families.get(name.slice(0, -suffix.length))
    if (f !== undefined && (SUFFIXES[f.type] ?? []).includes(suffix)) return f
  }
  return undefined
}

export function parsePrometheusText (text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const series = new Set<string>()
  const closed = new Set<string>()
  let current: string | undefined
  text.split('\n').forEach((raw, idx) => {
    const line = idx + 1
    if (raw.trim() === '') return
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(raw)
    if (meta !== null) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string | undefined]
      if (!NAME.test(name)) throw new Error(`line ${line}: bad metric name ${JSON.stringify(name)}`)
      const f = families.get(name) ?? { name, type: 'untyped', help: undefined, samples: [] }
      if (f.samples.length > 0) throw new Error(`line ${line}: ${kind} of ${name} after its samples`)
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`line ${line}: a second HELP for ${name}`)
        f.help = rest ?? ''
      } else {
        if (families.has(name) && f.type !== 'untyped') throw new Error(`line ${line}: a second TYPE for ${name}`)
        if (rest === undefined || !TYPES.has(rest)) throw new Error(`line ${line}: unknown type ${JSON.stringify(rest)}`)
        f.type = rest
      }
      families.set(name, f)
      return
    }
    if (raw.startsWith('#')) return
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$/.exec(raw)
    if (m === null) throw new Error(`line ${line}: not a sample: ${JSON.stringify(raw)}`)
    const name = m[1]!
    const { labels, rest } = m[2]!.startsWith('{') ? parseLabels(m[2]!, line) : { labels: {}, rest: m[2]! }
    const parts = rest.trim().split(/ +/)
    if (!rest.startsWith(' ') || parts.length < 1 || parts.length > 2) throw new Error(`line ${line}: expected one value (and a timestamp) after the labels`)
    const value = parseValue(parts[0]!, line)
    const f = familyOf(name, families)
    if (f === undefined) throw new Error(`line ${line}: sample ${name} has no TYPE before it`)
    if (current !== f.name) {
      if (closed.has(f.name)) throw new Error(`line ${line}: the samples of ${f.name} are not together`)
      if (current !== undefined) closed.add(current)
      current = f.name
    }
    const key = `${name}{${Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`
    if (series.has(key)) throw new Error(`line ${line}: duplicate series ${key}`)
    series.add(key)
    f.samples.push({ name, labels, value })
  })
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f)
  return families
}

/** Per label set: buckets by ascending le, cumulative, ending at +Inf = _count; a _sum. */
function checkHistogram (f: Family): void {
  const groups = new Map<string, { buckets: Array<[number, number]>, count?: number, sum?: number }>()
  for (const s of f.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)))
    const g = groups.get(key) ?? { buckets: [] }
    groups.set(key, g)
    if (s.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${f.name}: a bucket without le`)
      g.buckets.push([parseValue(le, 0), s.value])
    } else if (s.name.endsWith('_count')) g.count = s.value
    else g.sum = s.value
  }
  for (const [key, g] of groups) {
    if (g.buckets.length === 0 || g.count === undefined || g.sum === undefined) throw new Error(`${f.name}${key}: buckets, _sum and _count are not all there`)
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i]![0] > g.buckets[i - 1]![0])) throw new Error(`${f.name}${key}: bucket bounds not ascending`)
      if (g.buckets[i]![1] < g.buckets[i - 1]![1]) throw new Error(`${f.name}${key}: buckets not cumulative`)
    }
    const last = g.buckets.at(-1)!
    if (last[0] !== Infinity) throw new Error(`${f.name}${key}: no +Inf bucket`)
    if (last[1] !== g.count) throw new Error(`${f.name}${key}: +Inf bucket ${last[1]} is not _count ${g.count}`)
  }
}

/** The samples of a family whose labels include `labels`. */
export function samples (families: Map<string, Family>, family: string, name: string, labels: Record<string, string> = {}): Sample[] {
  const f = families.get(family)
  if (f === undefined) throw new Error(`no metric family ${family}`)
  return f.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
}
