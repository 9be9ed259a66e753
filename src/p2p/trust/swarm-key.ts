/**
 * Private swarms: a libp2p pre-shared key in the IPFS `swarm.key` format
 *
 *     /key/swarm/psk/1.0.0/
 *     /base16/
 *     <64 hex digits: 32 random bytes>
 *
 * Every connection of a node started with one is wrapped in XSalsa20 under
 * that key (`@libp2p/pnet`) before noise: a peer without the same key
 * cannot complete a handshake, so it cannot join, offer, bid or fetch.
 * The file is read strictly (size, format, file type); one readable by
 * group or others is used, with a warning. The key itself is never logged:
 * only a fingerprint (the first 8 bytes of its sha256, in hex), so
 * operators can tell whether two nodes hold the same key.
 */
import { createHash, randomBytes } from 'node:crypto'
import { chmod, mkdir, open, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import type { ConnectionProtector } from '@libp2p/interface'
import { preSharedKey } from '@libp2p/pnet'
import { ConfigError, errorMessage, ExistsError } from '../../errors.ts'
import { forComponent } from '../../logger.ts'

const log = forComponent('ipfs-accelerate:swarm-key')

export const SWARM_KEY_HEADER = '/key/swarm/psk/1.0.0/'
export const SWARM_KEY_CODEC = '/base16/'
export const SWARM_KEY_BYTES = 32
/** A well-formed file is 95 bytes (96 with a newline at the end; 98 with CRLF). */
const MAX_SWARM_KEY_FILE_BYTES = 256
const HOW = 'make one with `ipfs-accelerate swarm-key generate` and give every node of the swarm a copy'

export interface SwarmKey {
  /** The 32 key bytes. */
  key: Uint8Array
  /** Where it was read from (absolute). */
  path: string
  /** First 8 bytes of sha256(key), hex: safe to log and compare. */
  fingerprint: string
}

/** A new random key. */
export function newSwarmKey (): Uint8Array {
  return new Uint8Array(randomBytes(SWARM_KEY_BYTES))
}

/** The key as a swarm.key file's text (with a newline at the end). */
export function formatSwarmKey (key: Uint8Array): string {
  if (key.byteLength !== SWARM_KEY_BYTES) throw new ConfigError(`a swarm key is ${SWARM_KEY_BYTES} bytes, not ${key.byteLength}`)
  return `${SWARM_KEY_HEADER}\n${SWARM_KEY_CODEC}\n${Buffer.from(key).toString('hex')}\n`
}

export function swarmKeyFingerprint (key: Uint8Array): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16)
}

/**
 * Parse a swarm.key file's bytes; every problem is a ConfigError that says
 * what is wrong and how to make a good one. Lines may end in LF or CRLF; one
 * newline may end the file; nothing else is allowed.
 */
export function parseSwarmKey (bytes: Uint8Array, origin = 'the swarm key'): Uint8Array {
  const bad = (what: string): ConfigError => new ConfigError(`${origin} is not a swarm key: ${what}; expected three lines: ${SWARM_KEY_HEADER}, ${SWARM_KEY_CODEC}, then 64 hex digits: ${HOW}`)
  if (bytes.byteLength > MAX_SWARM_KEY_FILE_BYTES) throw bad(`it is ${bytes.byteLength} bytes, over ${MAX_SWARM_KEY_FILE_BYTES}`)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch (err) {
    throw new ConfigError(`${origin} is not a swarm key: it is not text (a binary /bin/ key is not supported); ${HOW}`, { cause: err })
  }
  const lines = text.split(/\r?\n/)
  if (lines.length === 4 && lines[3] === '') lines.pop()
  if (lines.length !== 3) throw bad(`it has ${lines.length} line(s)`)
  const [header, codec, hex] = lines as [string, string, string]
  if (header !== SWARM_KEY_HEADER) throw bad(`its first line is ${JSON.stringify(header.slice(0, 40))}`)
  if (codec !== SWARM_KEY_CODEC) throw bad(`its second line is ${JSON.stringify(codec.slice(0, 40))} (only ${SWARM_KEY_CODEC} keys are supported)`)
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw bad(`its third line is ${hex.length} characters, not 64 hex digits`)
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

/** Read and check a swarm.key file; warn when group or others may read it. */
export async function readSwarmKey (path: string): Promise<SwarmKey> {
  const file = resolve(path)
  const fix = `pass --swarm-key with the path of a swarm.key file (${HOW})`
  const handle = await open(file, 'r').catch((err: unknown) => {
    throw new ConfigError(`cannot read the swarm key ${file}: ${errorMessage(err)}: ${fix}`, { cause: err })
  })
  let bytes: Buffer
  try {
    const info = await handle.stat()
    if (!info.isFile()) throw new ConfigError(`the swarm key ${file} is not a regular file: ${fix}`)
    if (info.size > MAX_SWARM_KEY_FILE_BYTES) throw new ConfigError(`the swarm key ${file} is ${info.size} bytes, over ${MAX_SWARM_KEY_FILE_BYTES}: it is not a swarm key; ${HOW}`)
    if ((info.mode & 0o077) !== 0) log.warn(`the swarm key ${file} is readable by ${(info.mode & 0o070) !== 0 ? 'its group' : ''}${(info.mode & 0o070) !== 0 && (info.mode & 0o007) !== 0 ? ' and ' : ''}${(info.mode & 0o007) !== 0 ? 'others' : ''}: anyone who reads it can join the swarm; run \`chmod 600 ${file}\``, { mode: (info.mode & 0o777).toString(8) })
    const buf = Buffer.alloc(MAX_SWARM_KEY_FILE_BYTES + 1)
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0)
    bytes = buf.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
  const key = parseSwarmKey(bytes, `the swarm key ${file}`)
  return { key, path: file, fingerprint: swarmKeyFingerprint(key) }
}

/**
 * Write a new key to `path` with mode 0600. An existing file is an
 * ExistsError unless `force`; then it is replaced in one rename.
 */
export async function writeSwarmKey (path: string, key: Uint8Array, options: { force?: boolean } = {}): Promise<string> {
  const file = resolve(path)
  const text = formatSwarmKey(key)
  await mkdir(dirname(file), { recursive: true })
  if (options.force !== true) {
    try {
      await writeFile(file, text, { mode: 0o600, flag: 'wx' })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ExistsError(`${file} exists already: nothing was overwritten; pass --force to replace it (every node of the swarm then needs the new key), or --out another path`, { cause: err })
      throw new ConfigError(`cannot write the swarm key ${file}: ${errorMessage(err)}`, { cause: err })
    }
    await chmod(file, 0o600)
    return file
  }
  const existing = await stat(file).catch(() => undefined) // absent: nothing to replace
  if (existing !== undefined && !existing.isFile()) throw new ExistsError(`${file} exists and is not a regular file: pass --out another path`)
  const tmp = `${file}.${process.pid}.tmp`
  try {
    await writeFile(tmp, text, { mode: 0o600, flag: 'wx' })
    await chmod(tmp, 0o600)
    await rename(tmp, file)
  } catch (err) {
    await unlink(tmp).catch(() => undefined) // best effort: the temp file may not exist
    throw new ConfigError(`cannot write the swarm key ${file}: ${errorMessage(err)}`, { cause: err })
  }
  return file
}

/** libp2p's `connectionProtector` for a key. */
export function swarmProtector (key: Uint8Array): () => ConnectionProtector {
  return preSharedKey({ psk: new TextEncoder().encode(formatSwarmKey(key)) })
}
