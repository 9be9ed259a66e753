import type { Command } from '../command.ts'
import { bool, str } from '../command.ts'
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
  --id ID           record the model under this id
  --skillset S      ${SKILLSET_NAMES.join(', ')}
  --timeout SECS    give up after this long
  --catalog FILE    models.json to resolve ids with (default: the bundled one)
${COMMON_HELP}
`,
  options: { ...COMMON_OPTIONS, bootstrap: { type: 'string', multiple: true }, mdns: { type: 'boolean' }, id: { type: 'string' }, skillset: { type: 'string' }, timeout: { type: 'string' }, catalog: { type: 'string' } },
  allowPositionals: true,
  async run (args) {
    const ref = onePositional(args, 'id|cid', 'pull')
    const skillset = str(args, 'skillset')
    if (skillset !== undefined && !SKILLSET_NAMES.includes(skillset as SkillsetName)) throw new UsageError(`--skillset ${skillset}: expected one of ${SKILLSET_NAMES.join(', ')}`)
    const id = str(args, 'id')
    const peers = bootstrapOf(args)
    const progress = progressFor(args, 'pull')
    const result = await withStore(args, { network: { bootstrap: peers, mdns: bool(args, 'mdns') === true } }, async (api, signal) => await api.pull(ref, {
      signal,
      peers,
      onProgress: progress.onProgress,
      ...(id === undefined ? {} : { id }),
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
