import type { Command } from './command.ts'
import { parseCommandArgs } from './command.ts'
import { AccelerateError, errorCode, errorMessage, UsageError } from '../errors.ts'
import { startCommand } from './commands/start.ts'
import { submitCommand } from './commands/submit.ts'
import { hardwareCommand } from './commands/hardware.ts'
import { modelsCommand } from './commands/models.ts'
import { swarmKeyCommand } from './commands/swarm-key.ts'
import { statusCommand } from './commands/status.ts'

export const COMMANDS: readonly Command[] = Object.freeze([startCommand, submitCommand, hardwareCommand, modelsCommand, swarmKeyCommand, statusCommand])

function topHelp (): string {
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`)
  return `ipfs-accelerate: a GPU-aware distributed inference worker node

Usage: ipfs-accelerate <command> [options]

Commands:
${lines.join('\n')}

Options:
  -h, --help     this help
  -v, --version  print the version

Run \`ipfs-accelerate <command> --help\` for a command's options.
`
}

function subHelp (cmd: Command, path: string): string {
  const subs = cmd.subcommands ?? []
  return `${cmd.help.trimEnd()}\n\nSub-commands:\n${subs.map((s) => `  ${s.name.padEnd(10)} ${s.summary}`).join('\n')}\n\nRun \`ipfs-accelerate ${path} <sub-command> --help\` for its options.\n`
}

async function dispatch (cmd: Command, argv: string[], path: string): Promise<number> {
  if (cmd.subcommands !== undefined && cmd.subcommands.length > 0) {
    const [name, ...rest] = argv
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      process.stdout.write(subHelp(cmd, path))
      return name === undefined ? 2 : 0
    }
    const sub = cmd.subcommands.find((s) => s.name === name)
    if (sub === undefined) throw new UsageError(`unknown sub-command \`${path} ${name}\`: run \`ipfs-accelerate ${path} --help\``)
    return await dispatch(sub, rest, `${path} ${name}`)
  }
  const args = parseCommandArgs({ ...cmd, name: path }, argv)
  if (args.values.help === true) {
    process.stdout.write(cmd.help.trimEnd() + '\n')
    return 0
  }
  if (cmd.run === undefined) throw new UsageError(`\`${path}\` does nothing by itself: run \`ipfs-accelerate ${path} --help\``)
  return await cmd.run(args)
}

/** Run the CLI; returns the exit code. Errors become one line on stderr. */
export async function main (argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(topHelp())
    return name === undefined ? 2 : 0
  }
  if (name === '--version' || name === '-v') {
    const pkg = await import('../../package.json', { with: { type: 'json' } })
    process.stdout.write(`${pkg.default.version}\n`)
    return 0
  }
  const cmd = COMMANDS.find((c) => c.name === name)
  try {
    if (cmd === undefined) throw new UsageError(`unknown command \`${name}\`: run \`ipfs-accelerate --help\``)
    return await dispatch(cmd, rest, name)
  } catch (err) {
    const code = errorCode(err)
    process.stderr.write(`error ${code}: ${errorMessage(err)}\n`)
    if (!(err instanceof AccelerateError) && process.env.IPFS_ACCELERATE_LOG_LEVEL === 'debug') {
      process.stderr.write(`${(err as Error).stack ?? ''}\n`)
    }
    return err instanceof UsageError ? 2 : 1
  }
}
