import type { Command } from '../command.ts'
import { COMMON_HELP, COMMON_OPTIONS, print, withStore } from './models-common.ts'

export const modelsGcCommand: Command = {
  name: 'gc',
  summary: 'delete blocks no pinned model or cached embedding uses',
  help: `Usage: ipfs-accelerate models gc [options]

Deletes every block of the store that is not part of a pinned model and not
held by the embedding cache (which keeps itself under store.cacheBudgetMB).

Options:
${COMMON_HELP}
`,
  options: { ...COMMON_OPTIONS },
  async run (args) {
    const result = await withStore(args, {}, async (api, signal) => await api.gc({ signal }))
    print(args, result, `deleted ${result.deletedBlocks} blocks`)
    return 0
  }
}
