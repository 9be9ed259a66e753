import type { Command } from '../command.ts'
import { formatBytes } from '../../store/progress.ts'
import { COMMON_HELP, COMMON_OPTIONS, print, withStore } from './models-common.ts'

export const modelsListCommand: Command = {
  name: 'list',
  summary: 'list the models in the store',
  help: `Usage: ipfs-accelerate models list [options]

Lists the recorded models: id, skillset, root CID, size, files, whether pinned
and whether the blocks are here (gc removes unpinned models' blocks). An
import or pull under way shows as "pending"; one that a crash cut short shows
as "interrupted" (pull it again, or \`models gc\` frees its blocks).

Options:
${COMMON_HELP}
`,
  options: { ...COMMON_OPTIONS },
  async run (args) {
    const models = await withStore(args, {}, async (api) => await api.list())
    const lines = models.length === 0
      ? ['no models in the store: `models import DIR` or `models pull ID|CID`']
      : models.map((m) => `${m.id.padEnd(32)} ${(m.skillset ?? '-').padEnd(10)} ${m.cid}  ${formatBytes(m.size).padStart(10)}  ${String(m.files).padStart(4)} files  ${m.state === 'ready' ? (m.pinned ? 'pinned' : 'unpinned') : m.state}${m.local ? '' : ' (blocks gone)'}`)
    print(args, { models }, lines.join('\n'))
    return 0
  }
}
