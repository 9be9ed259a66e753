/**
 * `<data-dir>/node.json`: written by a running node, read by clients and the
 * CLI to find it. Validated on read; a file whose pid is gone is stale.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { ConfigError } from '../errors.ts'

const MAX_NODE_FILE_BYTES = 256 * 1024

export const nodeFileSchema = z.strictObject({
  version: z.literal(1),
  peerId: z.string().min(1).max(200),
  multiaddrs: z.array(z.string().max(300)).max(64),
  httpUrl: z.string().max(300).nullable(),
  pid: z.number().int().positive(),
  startedAt: z.string().max(64),
  skillsets: z.array(z.string().max(32)).max(16),
  models: z.array(z.strictObject({
    id: z.string().max(200),
    skillset: z.string().max(32),
    provider: z.string().max(32),
    dtype: z.string().max(16),
    device: z.string().max(32),
    randomWeights: z.boolean()
  })).max(256)
})
export type NodeFile = z.infer<typeof nodeFileSchema>

export function nodeFilePath (dataDir: string): string {
  return join(dataDir, 'node.json')
}

export async function writeNodeFile (dataDir: string, info: NodeFile): Promise<void> {
  const file = nodeFilePath(dataDir)
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(info, null, 2) + '\n')
  await rename(tmp, file)
}

export async function removeNodeFile (dataDir: string): Promise<void> {
  await rm(nodeFilePath(dataDir), { force: true })
}

export function pidAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The node.json of a live node in this data dir, or undefined when none runs. */
export async function readLiveNodeFile (dataDir: string): Promise<NodeFile | undefined> {
  const file = nodeFilePath(dataDir)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
  if (text.length > MAX_NODE_FILE_BYTES) throw new ConfigError(`${file} is too large to be a node file: remove it`)
  let parsed: NodeFile
  try {
    parsed = nodeFileSchema.parse(JSON.parse(text))
  } catch (err) {
    throw new ConfigError(`${file} is not a valid node file (${(err as Error).message.slice(0, 200)}): remove it if no node runs`, { cause: err })
  }
  return pidAlive(parsed.pid) ? parsed : undefined
}
