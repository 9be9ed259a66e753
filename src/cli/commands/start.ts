import type { Command, ParsedArgs } from '../command.ts'
import { bool, str, strs } from '../command.ts'
import { defaultDataDir } from '../../config/schema.ts'
import { setLogLevel } from '../../logger.ts'

/** Flags as a config layer (only those given). */
export function startFlags (args: ParsedArgs): Record<string, unknown> {
  const flags: Record<string, unknown> = {}
  const dataDir = str(args, 'data-dir')
  if (dataDir !== undefined) flags.dataDir = dataDir
  if (strs(args, 'listen').length > 0) flags.listen = strs(args, 'listen')
  if (strs(args, 'bootstrap').length > 0) flags.bootstrap = strs(args, 'bootstrap')
  const mdns = bool(args, 'mdns')
  if (mdns !== undefined) flags.mdns = mdns
  const http = str(args, 'http')
  if (http !== undefined) flags.http = /^(off|false|none)$/i.test(http) ? false : http
  const apiKey = str(args, 'api-key')
  if (apiKey !== undefined) flags.apiKey = apiKey
  const models = str(args, 'models')
  if (models !== undefined) flags.models = models.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  const device = str(args, 'device')
  if (device !== undefined) flags.device = device
  const dtype = str(args, 'dtype')
  if (dtype !== undefined) flags.dtype = dtype
  const embedCache = bool(args, 'embed-cache')
  if (embedCache !== undefined) flags.store = { embeddingCache: embedCache }
  const logLevel = str(args, 'log-level')
  if (logLevel !== undefined) flags.logLevel = logLevel
  const swarmKey = str(args, 'swarm-key')
  if (swarmKey !== undefined) flags.swarmKey = swarmKey
  if (strs(args, 'allow-peer').length > 0) flags.allowPeers = strs(args, 'allow-peer')
  if (strs(args, 'trusted-peer').length > 0) flags.trustedPeers = strs(args, 'trusted-peer')
  return flags
}

export const startCommand: Command = {
  name: 'start',
  summary: 'run a worker node until SIGINT/SIGTERM',
  help: `Usage: ipfs-accelerate start [options]

Runs a worker node: joins the libp2p swarm, serves the configured models and
takes the inference jobs clients offer it (on job links, or over gossipsub,
which reaches workers a client does not know yet), until SIGINT or SIGTERM;
then it finishes (or fails, with a clear error) the jobs it holds and closes
cleanly. When ready it prints its multiaddrs and writes <data-dir>/node.json.

Options:
  --data-dir DIR        where identity, models and the block store live
                        (default ~/.ipfs-accelerate; env IPFS_ACCELERATE_DATA_DIR)
  --listen MULTIADDR    address to listen on, repeatable
                        (default /ip4/0.0.0.0/tcp/4101)
  --bootstrap MULTIADDR peer to join at start, repeatable
  --no-mdns             do not discover peers on the LAN by mDNS
  --http HOST:PORT      HTTP gateway address, or "off" (default 127.0.0.1:8080):
                        /healthz, /readyz, the OpenAI-compatible API under /v1
                        (embeddings, chat/completions, completions, models,
                        detections) for jobs on this node or the swarm, and
                        the local store API
  --api-key KEY         require \`Authorization: Bearer KEY\` on /v1 (16+
                        characters; env IPFS_ACCELERATE_API_KEY or config
                        apiKey keep it out of \`ps\`); without one, /v1
                        answers any client that calls it by the --http
                        address (a warning when that is beyond loopback)
  --models ID,...       models to serve (default: per skillset, the real model
                        models.json marks onlineDefault where this store holds
                        it, the hub answers or a trusted peer gives it, else
                        the generated demo model, with a warning)
  --device DEV          auto, cpu, cuda, cuda:N, tensorrt, tensorrt:N or webgpu
                        (default auto)
  --dtype DTYPE         weight format: auto, fp32, fp16, int8, q8, ... (default
                        auto: the hardware plan chooses among the model's
                        reproducible dtypes; q8, faster but batch-dependent,
                        only when named; the model must offer it)
  --no-embed-cache      compute every embedding: do not look in this node's or
                        peers' embedding caches, and store nothing there
  --swarm-key FILE      join the private swarm of this pre-shared key (a
                        swarm.key file: \`ipfs-accelerate swarm-key generate\`):
                        only peers with the same key can connect
                        (env IPFS_ACCELERATE_SWARM_KEY)
  --allow-peer ID       take jobs only from this peer id, repeatable (default:
                        any peer's); others get ERR_FORBIDDEN
  --trusted-peer ID     believe this peer's model manifests (pulls by id) and
                        ask it for cached embeddings, repeatable (default: no
                        peer; pulls by CID work with any peer)
  --config FILE         a JSON or YAML config file (env IPFS_ACCELERATE_CONFIG)
  --log-level LEVEL     error, warn, info or debug (default info)
  --json                print the ready line as one JSON object
  -h, --help            this help

Settings merge as: config file < IPFS_ACCELERATE_* environment < flags.
`,
  options: {
    'data-dir': { type: 'string' },
    listen: { type: 'string', multiple: true },
    bootstrap: { type: 'string', multiple: true },
    mdns: { type: 'boolean' },
    http: { type: 'string' },
    'api-key': { type: 'string' },
    models: { type: 'string' },
    device: { type: 'string' },
    dtype: { type: 'string' },
    'embed-cache': { type: 'boolean' },
    'swarm-key': { type: 'string' },
    'allow-peer': { type: 'string', multiple: true },
    'trusted-peer': { type: 'string', multiple: true },
    config: { type: 'string' },
    'log-level': { type: 'string' },
    json: { type: 'boolean' }
  },
  async run (args) {
    // Number CUDA devices as nvidia-smi does, before ONNX Runtime loads.
    process.env.CUDA_DEVICE_ORDER ??= 'PCI_BUS_ID'
    const { loadConfig } = await import('../../config/load.ts')
    const { WorkerNode } = await import('../../node/worker-node.ts')
    const config = await loadConfig({ file: str(args, 'config'), flags: startFlags(args) })
    setLogLevel(config.logLevel)
    const node = new WorkerNode(config)
    let signals = 0
    const done = new Promise<void>((resolve) => {
      const onSignal = (sig: string): void => {
        signals++
        if (signals > 1) {
          process.stderr.write(`${sig} again: exiting now without a clean stop\n`)
          process.exit(130)
        }
        process.stderr.write(`${sig}: stopping (finishing the jobs in hand; press Ctrl-C again to exit at once)\n`)
        node.stop().then(resolve, (err: unknown) => {
          process.stderr.write(`error during stop: ${(err as Error).message}\n`)
          process.exitCode = 1
          resolve()
        })
      }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
    })
    const info = await node.start()
    if (bool(args, 'json') === true) {
      process.stdout.write(JSON.stringify({ ready: true, ...info }) + '\n')
    } else {
      process.stdout.write(`ipfs-accelerate worker ${info.peerId} ready\n`)
      for (const a of info.multiaddrs) process.stdout.write(`  listening on ${a}\n`)
      if (info.httpUrl !== null) process.stdout.write(`  http ${info.httpUrl}/healthz, OpenAI-compatible API ${info.httpUrl}/v1\n`)
      for (const m of info.models) process.stdout.write(`  serving ${m.skillset} ${m.id} on ${m.device} (${m.provider}, ${m.dtype})${m.randomWeights ? ' [random weights]' : ''}\n`)
      process.stdout.write(`Submit a job from another terminal: npx ipfs-accelerate submit embed --text "hello world"${config.dataDir === defaultDataDir() ? '' : ` --data-dir ${config.dataDir}`}\n`)
    }
    await done
    return Number(process.exitCode ?? 0)
  }
}
