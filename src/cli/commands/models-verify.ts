import type { Command } from '../command.ts'
import { COMMON_HELP, COMMON_OPTIONS, onePositional, print, progressFor, withStore } from './models-common.ts'

export const modelsVerifyCommand: Command = {
  name: 'verify',
  summary: 'check every file of a model against its recorded sha256',
  help: `Usage: ipfs-accelerate models verify ID|CID [options]

Checks every block of the model against its CID and every file against the
sha256 in its record. A block that fails its CID check (disk corruption) is
deleted, so that \`models pull ID\` fetches it again from a peer. Exits with
ERR_MODEL_INTEGRITY naming each bad or missing block with its file, and each
file that differs.

Options:
${COMMON_HELP}
`,
  options: { ...COMMON_OPTIONS },
  allowPositionals: true,
  async run (args) {
    const ref = onePositional(args, 'id|cid', 'verify')
    const progress = progressFor(args, 'verify')
    const record = await withStore(args, {}, async (api, signal) => await api.verify(ref, { signal, onProgress: progress.onProgress }))
    progress.finish()
    print(args, { id: record.id, cid: record.cid, files: record.files.length, ok: true }, `${record.id}: all ${record.files.length} files match their sha256`)
    return 0
  }
}
