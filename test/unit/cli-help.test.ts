/**
 * Every `--help` names only flags its command accepts, and every flag a
 * command accepts is in its help; the README's command lines name only
 * flags their command accepts.
 *
 * The commands are walked from src/cli/main.ts's COMMANDS (sub-commands
 * included), and each help is what `main([...path, '--help'])` prints, run
 * in this process. What a command accepts is its `options` spec plus
 * `--help`/`-h` (parseCommandArgs adds them); `--no-X` is accepted for a
 * boolean X (parseArgs' allowNegative). The top level accepts `--help` and
 * `--version` (main()).
 *
 * Which command a flag is checked against: a backtick span or a line that
 * starts with a command (`ipfs-accelerate start --x`, `npx ipfs-accelerate
 * ...`, `Usage: ipfs-accelerate ...`, or in a span a command name first:
 * `start --x`, `models pull --x`) is checked against that command, so a
 * help may point at another command's flag by writing it with its command;
 * any other flag in a help is checked against the command whose help it
 * is. In the README only the first kind is checked (its prose names flags
 * of many commands). A shell pipe (` | jq ...`) ends a command line.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import type { Command, OptionSpec } from '../../src/cli/command.ts'
import { COMMANDS, main } from '../../src/cli/main.ts'

/** The top level as main() parses it: `--help`/`-h`, `--version`/`-v`, then a command. */
const ROOT: Command = { name: 'ipfs-accelerate', summary: '', help: '', options: { version: { type: 'boolean', short: 'v' } }, subcommands: COMMANDS }

interface Node { path: string[], cmd: Command }

function walk (cmd: Command, path: string[] = []): Node[] {
  return [{ path, cmd }, ...(cmd.subcommands ?? []).flatMap((s) => walk(s, [...path, s.name]))]
}

const name = (path: string[]): string => path.length === 0 ? 'ipfs-accelerate' : path.join(' ')

/** What `main(argv)` writes to stdout, and its exit code; strings only (the test runner's own writes pass through). */
async function run (argv: string[]): Promise<{ code: number, out: string }> {
  const write = process.stdout.write
  let out = ''
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]): boolean => {
    if (typeof chunk !== 'string') return (write as (...a: unknown[]) => boolean).call(process.stdout, chunk, ...rest)
    out += chunk
    return true
  }) as typeof process.stdout.write
  try {
    return { code: await main(argv), out }
  } finally {
    process.stdout.write = write
  }
}

/** Whether `flag` (`--x`, `--no-x`, `-x`) is one `cmd` parses. */
function accepts (cmd: Command, flag: string): boolean {
  const options: OptionSpec = { ...cmd.options, help: { type: 'boolean', short: 'h' } }
  if (!flag.startsWith('--')) return Object.values(options).some((o) => o.short === flag.slice(1))
  const long = flag.slice(2)
  if (Object.hasOwn(options, long)) return true
  return long.startsWith('no-') && options[long.slice(3)]?.type === 'boolean'
}

const FLAG = /(?:^|[^\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])/g
const flagsIn = (text: string): string[] => [...text.matchAll(FLAG)].map((m) => m[1] as string)

/** A piece of text and the command its flags belong to (undefined: none named). */
interface Segment { text: string, command: Node | undefined }

/** The command a piece of text starts with (`ipfs-accelerate models pull ...`, or in a span `models pull ...`), walked as deep as its words go. */
function commandOf (text: string, span: boolean, nodes: Node[]): Node | undefined {
  const words = text.trim().replace(/^(Usage:|\$)\s*/, '').replace(/^npx\s+/, '').split(/\s+/)
  if (words[0] === 'ipfs-accelerate') words.shift()
  else if (!span || !COMMANDS.some((c) => c.name === words[0])) return undefined
  let node = nodes[0] as Node
  for (const w of words) {
    const sub = node.cmd.subcommands?.find((s) => s.name === w)
    if (sub === undefined) break
    node = nodes.find((n) => n.cmd === sub) as Node
  }
  return node
}

/** A text cut into backtick spans and the lines around them, each with the command it names, if any. */
function segments (text: string, nodes: Node[]): Segment[] {
  const out: Segment[] = []
  const cut = (s: string): string => s.split(/\s\|\s+(?!-)/)[0] as string
  const rest = text.replace(/```[^\n]*\n([\s\S]*?)```/g, (_, block: string) => {
    for (const line of block.split('\n')) out.push({ text: cut(line), command: commandOf(line, false, nodes) })
    return ''
  }).replace(/`([^`]+)`/g, (_, span: string) => {
    out.push({ text: cut(span), command: commandOf(span, true, nodes) })
    return ' '
  })
  for (const line of rest.split('\n')) out.push({ text: cut(line), command: commandOf(line, false, nodes) })
  return out
}

/** Problems with one help text, each once: flags it names that their command does not accept, and accepted flags it leaves out. */
function helpProblems (node: Node, help: string, nodes: Node[]): string[] {
  const problems: string[] = []
  const own = new Set<string>()
  for (const seg of segments(help, nodes)) {
    const target = seg.command ?? node
    for (const flag of flagsIn(seg.text)) {
      if (target === node) own.add(flag)
      if (!accepts(target.cmd, flag)) problems.push(`\`${name(node.path)} --help\` names ${flag}, which \`${name(target.path)}\` does not accept`)
    }
  }
  // A command with sub-commands and no options of its own prints a list of them: it need not name --help.
  const listOnly = (node.cmd.subcommands?.length ?? 0) > 0 && Object.keys(node.cmd.options).length === 0
  const options: OptionSpec = listOnly ? {} : { ...node.cmd.options, help: { type: 'boolean', short: 'h' } }
  for (const [long, o] of Object.entries(options)) {
    if (!own.has(`--${long}`) && !(o.type === 'boolean' && own.has(`--no-${long}`))) problems.push(`\`${name(node.path)}\` accepts --${long}, which its --help does not name`)
    if (o.short !== undefined && !own.has(`-${o.short}`)) problems.push(`\`${name(node.path)}\` accepts -${o.short}, which its --help does not name`)
  }
  return [...new Set(problems)]
}

const nodes = walk(ROOT)

test('every command\'s --help names only flags that command accepts, and every flag it accepts', async () => {
  const t0 = performance.now()
  const problems: string[] = []
  for (const node of nodes) {
    const { code, out } = await run([...node.path, '--help'])
    assert.equal(code, 0, `${name(node.path)} --help exits ${code}`)
    assert.ok(out.length > 0, `${name(node.path)} --help prints nothing`)
    problems.push(...helpProblems(node, out, nodes))
  }
  assert.deepEqual(problems, [])
  // Every command of the tree was seen (the walk is not a hand-kept list): each top-level and sub-command.
  assert.ok(nodes.some((n) => n.path.join(' ') === 'models pull') && nodes.some((n) => n.path.join(' ') === 'submit llava-next'), nodes.map((n) => name(n.path)).join(', '))
  assert.ok(performance.now() - t0 < 1000, `the helps took ${Math.round(performance.now() - t0)} ms`)
})

test('the rule has teeth: a help that names a flag its command lacks, or leaves one out, is caught', () => {
  const start = nodes.find((n) => n.path.join(' ') === 'start') as Node
  const gen = nodes.find((n) => n.path.join(' ') === 'swarm-key generate') as Node
  assert.deepEqual(helpProblems(gen, gen.cmd.help.replaceAll('--force', '--forse'), nodes), [
    '`swarm-key generate --help` names --forse, which `swarm-key generate` does not accept',
    '`swarm-key generate` accepts --force, which its --help does not name'
  ])
  // Another command's flag counts when written with its command, not without.
  assert.deepEqual(helpProblems(gen, `${gen.cmd.help}\nthen run \`ipfs-accelerate start --swarm-key FILE\`, or \`start --no-mdns\``, nodes), [])
  assert.deepEqual(helpProblems(gen, `${gen.cmd.help}\nthen start each with --swarm-key FILE`, nodes), ['`swarm-key generate --help` names --swarm-key, which `swarm-key generate` does not accept'])
  assert.deepEqual(helpProblems(gen, `${gen.cmd.help}\n\`start --swarm-keys FILE\``, nodes), ['`swarm-key generate --help` names --swarm-keys, which `start` does not accept'])
  // --no-X only for a boolean X.
  assert.deepEqual(helpProblems(start, `${start.cmd.help}\n  --no-models`, nodes), ['`start --help` names --no-models, which `start` does not accept'])
})

test('the README\'s command lines name only flags their command accepts', async () => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
  const checked = segments(readme, nodes).filter((s) => s.command !== undefined)
  const problems = checked.flatMap((s) => flagsIn(s.text).filter((f) => !accepts((s.command as Node).cmd, f)).map((f) => `README: \`${s.text.trim().slice(0, 60)}\` names ${f}, which \`${name((s.command as Node).path)}\` does not accept`))
  assert.deepEqual(problems, [])
  // The command table's rows are among what was checked.
  assert.ok(checked.filter((s) => /^ipfs-accelerate \S/.test(s.text)).length >= 15, `${checked.length} command lines checked`)
})
