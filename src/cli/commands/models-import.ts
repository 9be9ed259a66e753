import { resolve } from 'node:path'
import type { Command } from '../command.ts'
import { str } from '../command.ts'
import { UsageError } from '../../errors.ts'
import { SKILLSET_NAMES } from '../../interfaces/index.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { formatBytes } from '../../store/progress.ts'
import { COMMON_HELP, COMMON_OPTIONS, onePositional, print, progressFor, withStore } from './models-common.ts'

export const modelsImportCommand: Command = {
  name: 'import',
  summary: 'import a Hugging Face-layout folder into the store, pin and record it',
  help: `Usage: ipfs-accelerate models import DIR [--id ID] [--skillset S] [options]

Adds every file under DIR (config.json, tokenizer files, onnx/*.onnx, ...) to
the content store as a UnixFS directory (CIDv1, raw leaves, 1 MiB chunks, so
identical files share blocks across models and peers), pins it, records the
model (id, skillset, root CID, each file's size and sha256) and prints the
root CID.

Options:
  --id ID           the model's id (default: the folder's name)
  --skillset S      ${SKILLSET_NAMES.join(', ')}
${COMMON_HELP}
`,
  options: { ...COMMON_OPTIONS, id: { type: 'string' }, skillset: { type: 'string' } },
  allowPositionals: true,
  async run (args) {
    const dir = resolve(onePositional(args, 'dir', 'import'))
    const skillset = str(args, 'skillset')
    if (skillset !== undefined && !SKILLSET_NAMES.includes(skillset as SkillsetName)) throw new UsageError(`--skillset ${skillset}: expected one of ${SKILLSET_NAMES.join(', ')}`)
    const id = str(args, 'id')
    const progress = progressFor(args, 'import')
    const record = await withStore(args, {}, async (api, signal) => await api.importDir(dir, {
      signal,
      onProgress: progress.onProgress,
      ...(id === undefined ? {} : { id }),
      ...(skillset === undefined ? {} : { skillset: skillset as SkillsetName })
    }))
    progress.finish()
    print(args, record, `${record.cid}\nimported ${record.id}: ${record.files.length} files, ${formatBytes(record.size)}, pinned`)
    return 0
  }
}
