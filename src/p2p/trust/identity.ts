/**
 * The node's libp2p identity, persisted as a protobuf-encoded Ed25519 key in
 * `<data-dir>/identity.key` (mode 0600), so the peer id survives restarts.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { ConfigError } from '../../errors.ts'
import { forComponent } from '../../logger.ts'

const log = forComponent('ipfs-accelerate:identity')
const MAX_KEY_BYTES = 16 * 1024

export async function loadOrCreateIdentity (dataDir: string): Promise<PrivateKey> {
  const file = join(dataDir, 'identity.key')
  let bytes: Buffer | undefined
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ConfigError(`cannot read the node identity ${file}: ${(err as Error).message}`, { cause: err })
    }
  }
  if (bytes !== undefined) {
    if (bytes.length > MAX_KEY_BYTES) throw new ConfigError(`${file} is not a libp2p private key (too large): move it away to create a new identity`)
    try {
      return privateKeyFromProtobuf(bytes)
    } catch (err) {
      throw new ConfigError(`${file} is not a libp2p private key: move it away to create a new identity`, { cause: err })
    }
  }
  await mkdir(dataDir, { recursive: true })
  const key = await generateKeyPair('Ed25519')
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
  await rename(tmp, file)
  log.info('created a new node identity', { file })
  return key
}
