/** `swarm-key generate`: write a new pre-shared key for a private swarm. */
import { join } from 'node:path'
import type { Command } from '../command.ts'
import { bool, str } from '../command.ts'
import { defaultDataDir } from '../../config/schema.ts'

const generateCommand: Command = {
  name: 'generate',
  summary: 'write a new swarm key (32 random bytes) for a private swarm',
  help: `Usage: ipfs-accelerate swarm-key generate [--out FILE] [--force] [--json]

Writes a new pre-shared key for a private swarm, in the IPFS swarm.key format
(three lines: /key/swarm/psk/1.0.0/, /base16/, 64 hex digits), with mode 0600.
Give every node a copy (over a channel you trust), then run each with
\`start --swarm-key FILE\` and submit with the same flag (\`submit embed
--swarm-key FILE\`): nodes without the key cannot connect to them, nor they
to nodes without it.

Options:
  --out FILE        where to write it (default <data-dir>/swarm.key)
  --data-dir DIR    the data dir for the default path (default
                    ~/.ipfs-accelerate; env IPFS_ACCELERATE_DATA_DIR)
  --force           replace an existing file (every node then needs the new key)
  --json            print {"path"} instead of a sentence
  -h, --help        this help

An existing file is never overwritten without --force (exit status 1,
ERR_EXISTS).
`,
  options: {
    out: { type: 'string' },
    'data-dir': { type: 'string' },
    force: { type: 'boolean' },
    json: { type: 'boolean' }
  },
  async run (args) {
    const { newSwarmKey, swarmKeyFingerprint, writeSwarmKey } = await import('../../p2p/trust/swarm-key.ts')
    const dataDir = str(args, 'data-dir') ?? process.env.IPFS_ACCELERATE_DATA_DIR ?? defaultDataDir()
    const key = newSwarmKey()
    const path = await writeSwarmKey(str(args, 'out') ?? join(dataDir, 'swarm.key'), key, { force: bool(args, 'force') === true })
    if (bool(args, 'json') === true) {
      process.stdout.write(JSON.stringify({ path }) + '\n')
    } else {
      process.stdout.write(`wrote a new swarm key to ${path} (mode 0600, fingerprint ${swarmKeyFingerprint(key)})\n`)
      process.stdout.write(`copy it to every node of the swarm, then: ipfs-accelerate start --swarm-key ${path}\n`)
    }
    return 0
  }
}

export const swarmKeyCommand: Command = {
  name: 'swarm-key',
  summary: 'make a key for a private swarm',
  help: 'Usage: ipfs-accelerate swarm-key <sub-command> [options]',
  options: {},
  subcommands: Object.freeze([generateCommand])
}
