import type { Command } from '../command.ts'
import { modelsGenerateCommand } from './models-generate.ts'

/** `models <sub-command>`: one file per sub-command, listed here. */
export const modelsCommand: Command = {
  name: 'models',
  summary: 'generate, import, list, pull, pin, export models',
  help: 'Usage: ipfs-accelerate models <sub-command> [options]',
  options: {},
  subcommands: Object.freeze([modelsGenerateCommand])
}
