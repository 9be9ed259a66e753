import type { Command } from '../command.ts'
import { COMMON_HELP, COMMON_OPTIONS, onePositional, print, withStore } from './models-common.ts'

export const modelsPinCommand: Command = {
  name: 'pin',
  summary: 'pin a model so gc keeps it',
  help: `Usage: ipfs-accelerate models pin ID|CID [options]

Pins a recorded model whose blocks are all here (pull it first otherwise).

Options:
${COMMON_HELP}
`,
  options: { ...COMMON_OPTIONS },
  allowPositionals: true,
  async run (args) {
    const ref = onePositional(args, 'id|cid', 'pin')
    const record = await withStore(args, {}, async (api, signal) => await api.pin(ref, { signal }))
    print(args, record, `pinned ${record.id} (${record.cid})`)
    return 0
  }
}

export const modelsUnpinCommand: Command = {
  name: 'unpin',
  summary: 'unpin a model (its blocks go at the next gc)',
  help: `Usage: ipfs-accelerate models unpin ID|CID [options]

Unpins a model. Its record stays (so \`models pull ID\` knows its CID); its
blocks are removed by the next \`models gc\` unless another pinned model
shares them.

Options:
${COMMON_HELP}
`,
  options: { ...COMMON_OPTIONS },
  allowPositionals: true,
  async run (args) {
    const ref = onePositional(args, 'id|cid', 'unpin')
    const record = await withStore(args, {}, async (api, signal) => await api.unpin(ref, { signal }))
    print(args, record, `unpinned ${record.id} (${record.cid}); \`models gc\` frees its blocks`)
    return 0
  }
}
