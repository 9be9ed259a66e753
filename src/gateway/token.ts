/**
 * `<data-dir>/api.token`: the secret that the local HTTP API asks of every
 * private call (`Authorization: Bearer <token>`). 32 random bytes, base64url,
 * in a file only its owner can read (mode 0600). The node creates it at
 * start, or keeps the one there when it is valid (a regular file of ours,
 * closed to group and others, holding a well-formed token), so a CLI that
 * read it before a restart still works; anything else is replaced. The CLI
 * reads it from the same data dir: whoever can read the data dir owns the
 * node.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { lstat, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { IncomingMessage } from 'node:http'
import { ConfigError } from '../errors.ts'
import type { Logger } from '../logger.ts'

export const API_TOKEN_FILE = 'api.token'
const TOKEN_BYTES = 32
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/
const MAX_TOKEN_FILE_BYTES = 1024

export function apiTokenPath (dataDir: string): string {
  return join(dataDir, API_TOKEN_FILE)
}

/** Why the token file at `file` cannot be used as it is, or undefined when it can (then `token` is set). */
async function checkTokenFile (file: string): Promise<{ token?: string, problem?: string }> {
  let st
  try {
    st = await lstat(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { problem: 'none yet' }
    throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
  if (!st.isFile()) return { problem: 'not a regular file' }
  if (st.size > MAX_TOKEN_FILE_BYTES) return { problem: 'too large to be a token' }
  if (process.platform !== 'win32') {
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) return { problem: `owned by uid ${st.uid}, not this user` }
    if ((st.mode & 0o077) !== 0) return { problem: `mode ${(st.mode & 0o777).toString(8)}: readable by others` }
  }
  const token = (await readFile(file, 'utf8')).trim()
  if (!TOKEN_RE.test(token)) return { problem: 'not a well-formed token' }
  return { token }
}

/** The node's side: the token in `<data-dir>/api.token`, created (atomically, mode 0600) or replaced when unusable. */
export async function loadOrCreateApiToken (dataDir: string, log?: Pick<Logger, 'warn' | 'info'>): Promise<string> {
  const file = apiTokenPath(dataDir)
  const found = await checkTokenFile(file)
  if (found.token !== undefined) return found.token
  const token = randomBytes(TOKEN_BYTES).toString('base64url')
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await writeFile(tmp, token + '\n', { mode: 0o600, flag: 'wx' })
    await rename(tmp, file)
  } catch (err) {
    await unlink(tmp).catch(() => undefined) // best effort: the temporary file may not exist
    throw new ConfigError(`cannot write the API token ${file}: ${(err as Error).message}: check the data dir's permissions`, { cause: err })
  }
  if (found.problem === 'none yet') log?.info(`created the local API token ${file}`)
  else log?.warn(`replaced the local API token ${file} (${found.problem ?? 'unusable'})`)
  return token
}

/** The CLI's side: the running node's token, read from its data dir. */
export async function readApiToken (dataDir: string): Promise<string> {
  const file = apiTokenPath(dataDir)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new ConfigError(`no API token at ${file}: the node writes it when it starts; restart the node with this version`, { cause: err })
    if (code === 'EACCES' || code === 'EPERM') throw new ConfigError(`cannot read ${file}: run this command as the user that runs the node`, { cause: err })
    throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
  const token = text.slice(0, MAX_TOKEN_FILE_BYTES).trim()
  if (!TOKEN_RE.test(token)) throw new ConfigError(`${file} does not hold a valid API token: restart the node, which replaces it`)
  return token
}

function digest (s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** A request check: `Authorization: Bearer <token>`, compared in constant time (digests of equal length). */
export function bearerAuth (token: string): (req: IncomingMessage) => boolean {
  if (!TOKEN_RE.test(token)) throw new ConfigError('the API token is not well formed')
  return bearerSecretAuth(token)
}

/** The same check for any secret (an operator's API key for the `/v1` routes). */
export function bearerSecretAuth (secret: string): (req: IncomingMessage) => boolean {
  if (secret.length === 0) throw new ConfigError('an empty secret guards nothing')
  const want = digest(secret)
  return (req) => {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '')
    const got = digest(m?.[1] ?? '')
    return timingSafeEqual(got, want) && m !== null
  }
}
