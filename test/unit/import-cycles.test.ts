// No import cycles among src/, skillsets/ and hardware/ files. A static scan
// of import and export-from statements (type-only ones too: a cycle of types
// still ties the two modules together for a reader); dynamic import() is not
// a statement and is left out. Also: src/p2p's rooms import one way.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const DIRS = ['src', 'skillsets', 'hardware']

function tsFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name)
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : tsFiles(p)
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : []
  })
}

// At a line's start: `import ... from '...'`, `export ... from '...'` (the
// clause may span lines) and `import '...'`.
const FROM = /^(?:import|export)\b[^;'"`]*?\bfrom\s*(['"])([^'"]+)\1/gm
const BARE = /^import\s*(['"])([^'"]+)\1/gm

/** Each scanned file → the scanned files it imports. */
function importGraph (root: string, dirs: string[]): Map<string, string[]> {
  const files = dirs.flatMap((d) => tsFiles(join(root, d)))
  const known = new Set(files)
  const graph = new Map<string, string[]>()
  for (const file of files) {
    const text = readFileSync(file, 'utf8')
    const deps = new Set<string>()
    for (const re of [FROM, BARE]) {
      for (const m of text.matchAll(re)) {
        const spec = m[2] as string
        if (!spec.startsWith('.')) continue
        const target = resolve(dirname(file), spec)
        if (known.has(target)) deps.add(target)
      }
    }
    graph.set(file, [...deps])
  }
  return graph
}

/** Each group of files that import one another, with one cycle among them (a path back to its start). */
function cycles (graph: Map<string, string[]>): Array<{ files: string[], cycle: string[] }> {
  // Tarjan's strongly connected components.
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const groups: string[][] = []
  const visit = (v: string): void => {
    index.set(v, next); low.set(v, next); next++
    stack.push(v); onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)) } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = []
      let w: string
      do { w = stack.pop()!; onStack.delete(w); group.push(w) } while (w !== v)
      if (group.length > 1 || (graph.get(v) ?? []).includes(v)) groups.push(group)
    }
  }
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v)
  return groups.map((group) => ({ files: group.sort(), cycle: shortestCycle(graph, group) }))
}

/** Within a group, a shortest path from its first file back to itself. */
function shortestCycle (graph: Map<string, string[]>, group: string[]): string[] {
  const inGroup = new Set(group)
  const start = [...group].sort()[0] as string
  const prev = new Map<string, string>()
  const queue = [start]
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i] as string
    for (const w of graph.get(v) ?? []) {
      if (!inGroup.has(w)) continue
      if (w === start) {
        const path = [start]
        for (let u: string | undefined = v; u !== undefined && u !== start; u = prev.get(u)) path.splice(1, 0, u)
        return [...path, start]
      }
      if (!prev.has(w)) { prev.set(w, v); queue.push(w) }
    }
  }
  return group
}

test('no import cycles among src/, skillsets/ and hardware/', () => {
  const rel = (f: string): string => relative(ROOT, f)
  const found = cycles(importGraph(ROOT, DIRS)).map(({ files, cycle }) => `${files.length} files (${files.map(rel).join(', ')}), e.g. ${cycle.map(rel).join(' → ')}`)
  assert.deepEqual(found, [], `import cycles:\n  ${found.join('\n  ')}`)
})

test('the scan sees multi-line and type-only imports', () => {
  const graph = importGraph(ROOT, DIRS)
  assert.ok(graph.size > 100, `only ${graph.size} files scanned`)
  const edges = [...graph.values()].reduce((n, d) => n + d.length, 0)
  assert.ok(edges > 300, `only ${edges} imports found`)
})

test('src/p2p\'s rooms import one way: jobs → swarm → trust → wire', () => {
  const order = ['wire', 'trust', 'swarm', 'jobs']
  const room = (f: string): number => order.indexOf(relative(join(ROOT, 'src/p2p'), f).split('/')[0] as string)
  const upward: string[] = []
  for (const [file, deps] of importGraph(ROOT, DIRS)) {
    if (room(file) < 0) continue
    for (const dep of deps) if (room(dep) > room(file)) upward.push(`${relative(ROOT, file)} → ${relative(ROOT, dep)}`)
  }
  assert.deepEqual(upward, [], `imports against the rooms' order (docs/architecture.md):\n  ${upward.join('\n  ')}`)
})
