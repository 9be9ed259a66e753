import { parseArgs } from 'node:util'
import type { ParseArgsConfig } from 'node:util'
import { UsageError } from '../errors.ts'

export type OptionSpec = NonNullable<ParseArgsConfig['options']>

/** One CLI command: its help text, its options and what it does. */
export interface Command {
  name: string
  summary: string
  /** Full help text printed by --help. */
  help: string
  options: OptionSpec
  /** Whether positional arguments are allowed. */
  allowPositionals?: boolean
  /** Sub-commands (e.g. `submit embed`, `models list`). */
  subcommands?: readonly Command[]
  run?(args: ParsedArgs): Promise<number>
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>
  positionals: string[]
}

/** Parse argv against a command's options; unknown options are a UsageError. */
export function parseCommandArgs (cmd: Command, argv: string[]): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: cmd.allowPositionals ?? false,
      allowNegative: true,
      strict: true
    })
    return { values: values as ParsedArgs['values'], positionals }
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]} (see \`ipfs-accelerate ${cmd.name} --help\`)`, { cause: err })
  }
}

export function str (args: ParsedArgs, key: string): string | undefined {
  const v = args.values[key]
  return typeof v === 'string' ? v : undefined
}

export function strs (args: ParsedArgs, key: string): string[] {
  const v = args.values[key]
  if (v === undefined) return []
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string')
  return typeof v === 'string' ? [v] : []
}

export function bool (args: ParsedArgs, key: string): boolean | undefined {
  const v = args.values[key]
  return typeof v === 'boolean' ? v : undefined
}
