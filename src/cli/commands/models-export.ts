import { resolve } from 'node:path'
import type { Command } from '../command.ts'
import { UsageError } from '../../errors.ts'
import { formatBytes } from '../../store/progress.ts'
import { COMMON_HELP, COMMON_OPTIONS, print, progressFor, withStore } from './models-common.ts'

export const modelsExportCommand: Command = {
  name: 'export',
  summary: 'write a model\'s files out to a folder',
  help: `Usage: ipfs-accelerate models export ID|CID DIR [options]

Writes the model's files under DIR in their Hugging Face layout. DIR must be
new or empty: nothing there is ever overwritten. Each file is created
exclusively and checked against its recorded sha256; a failed export removes
what it wrote.

Options:
${COMMON_HELP}
`,
  options: { ...COMMON_OPTIONS },
  allowPositionals: true,
  async run (args) {
    const [ref, dirArg] = args.positionals
    if (args.positionals.length !== 2 || ref === undefined || dirArg === undefined) throw new UsageError('expected ID|CID and DIR: ipfs-accelerate models export ID|CID DIR')
    const dir = resolve(dirArg)
    const progress = progressFor(args, 'export')
    const result = await withStore(args, {}, async (api, signal) => await api.exportTo(ref, dir, { signal, onProgress: progress.onProgress }))
    progress.finish()
    print(args, { ...result, dir }, `wrote ${result.files} files, ${formatBytes(result.bytes)} to ${dir}`)
    return 0
  }
}
