import type { Command } from '../command.ts'
import { bool, str, strs } from '../command.ts'
import { peerIdSchema } from '../../config/schema.ts'
import { UsageError } from '../../errors.ts'
import { SKILLSET_NAMES } from '../../interfaces/index.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { formatBytes } from '../../store/progress.ts'
import { bootstrapOf, COMMON_HELP, COMMON_OPTIONS, onePositional, print, progressFor, withStore } from './models-common.ts'

export const modelsPullCommand: Command = {
  name: 'pull',
  summary: 'fetch a model from peers by id or CID, verify and pin it',
  help: `Usage: ipfs-accelerate models pull ID|CID [--bootstrap MULTIADDR]... [options]

Fetches a model's DAG from peers: the peers named with --bootstrap, peers that
advertised it, and connected peers, each asked whether it holds the model. The
DAG streams over /ipfs-accelerate/blocks/1.0.0, split across the peers that
hold it; every block is checked against its CID as it lands. Bitswap is the
fallback (its use and the reason are logged). Then the model is pinned and
recorded, with each file's sha256. A model already whole here is not fetched
again. An ID is resolved from the store's records, models.json, or the peers.

Options:
  --bootstrap MA    a peer to fetch from (/ip4/.../tcp/.../p2p/<id>), repeatable
  --mdns            also find peers on the LAN by mDNS
  --trusted-peer ID a peer whose manifest is believed when ID names the model
                    (repeatable; default none: an ID resolves only through
                    the store's records and models.json); by CID any peer serves
  --swarm-key FILE  the private swarm's key file (env IPFS_ACCELERATE_SWARM_KEY)
                    (with a node running on the data dir, the node pulls, and
                    its own --trusted-peer and --swarm-key apply)
  --max-mb N        refuse a model larger than N MB (default 65536; with a
                    node running on the data dir, its store.maxPullMB); the
                    disk must also have room
  --id ID           record the model under this id
  --skillset S      ${SKILLSET_NAMES.join(', ')}
  --timeout SECS    give up after this long
  --catalog FILE    models.json to resolve ids with (default: the bundled one)
${COMMON_HELP}
`,
  options: { ...COMMON_OPTIONS, bootstrap: { type: 'string', multiple: true }, mdns: { type: 'boolean' }, 'trusted-peer': { type: 'string', multiple: true }, 'swarm-key': { type: 'string' }, 'max-mb': { type: 'string' }, id: { type: 'string' }, skillset: { type: 'string' }, timeout: { type: 'string' }, catalog: { type: 'string' } },
  allowPositionals: true,
  async run (args) {
    const ref = onePositional(args, 'id|cid', 'pull')
    const skillset = str(args, 'skillset')
    if (skillset !== undefined && !SKILLSET_NAMES.includes(skillset as SkillsetName)) throw new UsageError(`--skillset ${skillset}: expected one of ${SKILLSET_NAMES.join(', ')}`)
    const id = str(args, 'id')
    const maxMb = str(args, 'max-mb')
    if (maxMb !== undefined && !/^[1-9][0-9]{0,8}$/.test(maxMb)) throw new UsageError(`--max-mb ${maxMb}: expected a whole number of MB from 1 to 999999999`)
    const peers = bootstrapOf(args)
    const trustedPeers = strs(args, 'trusted-peer').map((p) => {
      const parsed = peerIdSchema.safeParse(p)
      if (!parsed.success) throw new UsageError(`--trusted-peer: ${parsed.error.issues[0]?.message ?? 'not a peer id'}`)
      return parsed.data
    })
    const swarmKey = str(args, 'swarm-key') ?? process.env.IPFS_ACCELERATE_SWARM_KEY
    const progress = progressFor(args, 'pull')
    const result = await withStore(args, { network: { bootstrap: peers, mdns: bool(args, 'mdns') === true, trustedPeers, ...(swarmKey === undefined ? {} : { swarmKey }) } }, async (api, signal) => await api.pull(ref, {
      signal,
      peers,
      onProgress: progress.onProgress,
      ...(id === undefined ? {} : { id }),
      ...(maxMb === undefined ? {} : { maxBytes: Number(maxMb) * 1024 * 1024 }),
      ...(skillset === undefined ? {} : { skillset: skillset as SkillsetName })
    }))
    progress.finish()
    const { record, fetched } = result
    const text = fetched.via === 'none'
      ? `${record.cid}\n${record.id}: already whole here; nothing fetched`
      : `${record.cid}\npulled ${record.id}: ${fetched.blocks} blocks, ${formatBytes(fetched.bytes)} from ${Object.keys(fetched.byPeer).length || 'bitswap'} peer(s) in ${(fetched.ms / 1000).toFixed(2)} s (${(fetched.bytes / 1e6 / Math.max(fetched.ms / 1000, 1e-3)).toFixed(1)} MB/s, via ${fetched.via}); pinned`
    print(args, result, text)
    return 0
  }
}
