import type { Command } from '../command.ts'
import { modelsGenerateCommand } from './models-generate.ts'
import { modelsImportCommand } from './models-import.ts'
import { modelsListCommand } from './models-list.ts'
import { modelsPullCommand } from './models-pull.ts'
import { modelsPinCommand, modelsUnpinCommand } from './models-pin.ts'
import { modelsGcCommand } from './models-gc.ts'
import { modelsExportCommand } from './models-export.ts'
import { modelsVerifyCommand } from './models-verify.ts'

/** `models <sub-command>`: one file per sub-command, listed here. */
export const modelsCommand: Command = {
  name: 'models',
  summary: 'generate, import, list, pull, pin, unpin, gc, export, verify models',
  help: 'Usage: ipfs-accelerate models <sub-command> [options]',
  options: {},
  subcommands: Object.freeze([
    modelsGenerateCommand,
    modelsImportCommand,
    modelsListCommand,
    modelsPullCommand,
    modelsPinCommand,
    modelsUnpinCommand,
    modelsGcCommand,
    modelsExportCommand,
    modelsVerifyCommand
  ])
}
