/**
 * Contracts shared by the rooms of the project. `hardware/` and `skillsets/`
 * depend on these types only, never on libp2p or Helia.
 */

/**
 * `stand-in` is a timer-only skillset for tests and benchmarks
 * (skillsets/stand-in); `stand-in-stream` is its streaming twin
 * (skillsets/stand-in-stream), so the platform's streaming path is tested
 * without a language model.
 */
export type SkillsetName = 'embed' | 'lm' | 'llava-next' | 'detr' | 'stand-in' | 'stand-in-stream'
export const SKILLSET_NAMES: readonly SkillsetName[] = Object.freeze(['embed', 'lm', 'llava-next', 'detr', 'stand-in', 'stand-in-stream'])

/** Weight formats a model may offer (transformers.js dtype names). */
export type Dtype = 'fp32' | 'fp16' | 'q8' | 'int8' | 'uint8' | 'q4' | 'q4f16' | 'bnb4'
export const DTYPES: readonly Dtype[] = Object.freeze(['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'bnb4'])

/** ONNX Runtime execution providers this project knows. */
export type ProviderName = 'cuda' | 'tensorrt' | 'webgpu' | 'cpu'

/** Where a model's files come from. */
export type ModelSource =
  | { kind: 'generated', generator: 'bert', size: 'tiny' | 'minilm', seed: number }
  /** A Qwen2-shaped decoder LM with a KV cache (src/models/generate/lm). */
  | { kind: 'generated', generator: 'qwen2', size: 'tiny' | 'small' | 'bench', seed: number }
  /** A DETR-shaped object detector (src/models/generate/detr). */
  | { kind: 'generated', generator: 'detr', size: 'tiny' | 'bench', seed: number }
  /** A LLaVA-NeXT-shaped vision-language model: vision encoder, embed_tokens, decoder with a KV cache (src/models/generate/llava). */
  | { kind: 'generated', generator: 'llava-next', size: 'tiny', seed: number }
  /** A placeholder folder for the stand-in skillset (no weights); `size` never set, kept so code reading `source.size` still types. */
  | { kind: 'generated', generator: 'stand-in', seed: number, size?: undefined }
  | { kind: 'hub', repo: string, revision?: string }

/** One entry of models.json. */
export interface ModelEntry {
  id: string
  skillset: SkillsetName
  source: ModelSource
  /** Weight formats the model offers, e.g. ['fp32', 'q8']. */
  dtypes: Dtype[]
  /** Approximate size of the fp32 weights in MB, for memory planning. */
  sizeMB: number
  /** Root CID of the model's UnixFS directory, where known. */
  cid?: string
  description?: string
  /** Served by default when the hub is unreachable (the generated demo model). */
  offlineDefault?: boolean
  /** Served by default where the hub answers, or a peer holds it (a hub model; src/node/default-models.ts). */
  onlineDefault?: boolean
  /**
   * The dtypes whose results do not depend on batch-mates (float weights, or
   * static quantization with fixed activation scales); absent: the float
   * ones (fp32, fp16). Dynamically quantized files (hub q8/int8/uint8
   * exports) are not. Only these are planned unless --dtype names another
   * (hardware/dtype-policy.ts).
   */
  reproducibleDtypes?: Dtype[]
}

/** How one model runs on this host: device, provider, dtype and why. */
export interface ExecutionPlan {
  modelId: string
  /** 'cpu', 'cuda:0', 'webgpu', ... */
  device: string
  provider: ProviderName
  dtype: Dtype
  /** intra-op threads for ONNX Runtime sessions. */
  intraOpThreads: number
  /** GPU index for cuda/tensorrt plans. */
  gpuIndex?: number
  /**
   * Whether a text's result is the same alone and in any batch (the dtype is
   * one of the model's reproducibleDtypes). Absent: not planned by
   * hardware/plan.ts (tests, hand-made plans).
   */
  reproducible?: boolean
  /** ONNX Runtime session config entries the runner sets (e.g. session.x64quantprecision); absent: none. */
  sessionConfig?: Record<string, string>
  /** Human-readable reasons for each choice. */
  reasons: string[]
  /** Providers that were preferred but could not be used, with why. */
  fallbacks: Array<{ provider: ProviderName, reason: string }>
}

/** The short form of a host's hardware that goes into adverts. */
export interface HardwareSummary {
  cpu: { model: string, physicalCores: number, logicalCores: number, flags: string[] }
  memoryTotalMB: number
  gpus: Array<{ vendor: string, name: string, memoryTotalMB: number, memoryFreeMB?: number }>
  providers: ProviderName[]
}

/** A model as the inference thread sees it: where its Hugging Face-layout files are. */
export interface ModelLocation {
  id: string
  /** Directory that holds `<id>/config.json`, ... (transformers.js localModelPath). */
  localModelPath: string
  /**
   * The model's blocks in the content store: when set, the inference thread
   * serves its files to transformers.js from the store (verified), and
   * localModelPath holds no copy.
   */
  store?: { blocksDir: string, cid: string, files: Array<{ path: string, size: number, sha256: string, cid: string }> }
}

/** What a skillset's runner does inside an inference thread. */
export interface SkillsetRunner<I = unknown, O = unknown> {
  /**
   * Run a batch of compatible inputs; returns one output per input, in
   * order. An Error in an input's place (a broken image, say) fails that
   * input's job only, with the error's code; throwing fails the whole batch.
   */
  run(inputs: I[]): Promise<Array<O | Error>>
  dispose(): Promise<void>
}

/**
 * What a streaming runner gets with each job (issue 9: `lm`, then
 * `llava-next`). The platform numbers partials, carries them to the client
 * in order, and applies flow control through `emit`.
 */
export interface JobContext<P = unknown> {
  /**
   * Aborted when the job ends early: its client cancelled or went away, its
   * lease expired, or the worker is shutting down. The runner stops the
   * job's work at its next step and rejects with `signal.reason`.
   */
  readonly signal: AbortSignal
  /**
   * Send a partial output (for `lm`: the tokens of one step). Resolves when
   * the consumer has room for more: a runner awaits it before the job's next
   * step, so a slow reader pauses its job (and only its job) instead of
   * buffering without bound. Rejects when the job was aborted.
   */
  emit(partial: P): Promise<void>
}

/**
 * A runner for a skillset whose jobs are long and yield partial output. It
 * takes jobs one at a time and schedules their work itself: jobs join and
 * leave between steps (step-level, "continuous" batching), so one long job
 * does not hold up the others.
 */
export interface StreamingRunner<I = unknown, O = unknown, P = unknown> {
  /** Run one job to its end; resolves with its final output. Many jobs run at once. */
  start(input: I, ctx: JobContext<P>): Promise<O>
  dispose(): Promise<void>
}

/** What the node hands a skillset's `load` besides the model and the plan. */
export interface SkillsetLoadOptions {
  /**
   * The node's whole configuration, for a skillset that reads its own block
   * of it (the stand-in reads `standIn`). Given to in-process skillsets;
   * inference threads do not receive it.
   */
  nodeConfig?: Readonly<Record<string, unknown>>
  /**
   * For a streaming runner: the KV-cache tokens it may hold at once. The
   * node's StreamingQueue admits jobs against the same budget
   * (scheduler.kvBudgetTokens), so the two agree. Inference threads get it.
   */
  kvBudgetTokens?: number
  /** For an image skillset (detr, llava-next): the node's image limits (config `images`), applied when the thread decodes. Inference threads get it. */
  images?: ImageLimits
}

/** Bounds on one image as a job input (config `images`; defaults in skillsets/image/limits.ts). */
export interface ImageLimits {
  /** Encoded bytes of one image. */
  maxBytes: number
  /** Width × height of one decoded image: a decompression bomb (a small file that claims a huge canvas) is refused before it is decoded. */
  maxPixels: number
  /** Width or height of one image, in pixels. */
  maxSide: number
}

/** An image as a job carries it: its encoded bytes inline, or a UnixFS file in the content store (`{ cid, size }`) the worker fetches from the client. */
export type ImageSource = { bytes: Uint8Array } | { cid: string, size: number }

/**
 * The images of a skillset's input, for the worker: it lists them, fetches
 * those given by CID (from the client, through the content store), and
 * gives the input back with every image inline before the job is queued.
 */
export interface ImageInputs<I> {
  /** The input's images, in order. */
  list(input: I): ImageSource[]
  /** The input with its images replaced by these bytes, in the order of `list`. */
  withBytes(input: I, bytes: Uint8Array[]): I
}

/**
 * A skillset: validates its inputs at the boundary, says which inputs can be
 * batched together, and loads a runner inside an inference thread.
 */
export interface Skillset<I = unknown, O = unknown> {
  readonly name: SkillsetName
  /**
   * True for a skillset whose runner does no blocking work (timers only, like
   * the stand-in): it runs on the main thread (scheduler LocalRunner), not in
   * a worker thread. Absent means a worker thread.
   */
  readonly inProcess?: true
  /** Parse and validate an untrusted job input; throws InvalidInputError. */
  parseInput(raw: unknown): I
  /** Inputs with equal keys may run in one batch. */
  batchKey(input: I): string
  /** Rough cost of one input, used to cap batch sizes (e.g. number of texts). */
  cost(input: I): number
  /** Load the model; runs inside an inference thread (on the main thread when `inProcess`). */
  load(model: ModelLocation, plan: ExecutionPlan, options?: SkillsetLoadOptions): Promise<SkillsetRunner<I, O>>
  /**
   * A synthetic job input of about `n` cost units, in wire form (parseInput
   * accepts it), for measuring throughput at start-up. Absent: the model is
   * not measured.
   */
  sampleInput?(n: number): unknown
  /** For a skillset whose inputs carry images: where they are, so the worker can fetch those sent by CID. */
  readonly images?: ImageInputs<I>
  /** Convert an output to its wire form (binary-safe) and back. */
  encodeOutput(output: O): Record<string, unknown>
  decodeOutput(wire: unknown): O
}

/**
 * A skillset whose jobs stream (`lm`, `llava-next`): `loadStreaming` gives a
 * StreamingRunner instead of a batch runner, and partial outputs have a wire
 * form of their own. `cost` is the job's KV-cache tokens (prompt plus
 * max new tokens), which the runner admits against its cache budget.
 */
export interface StreamingSkillset<I = unknown, O = unknown, P = unknown> extends Omit<Skillset<I, O>, 'load' | 'batchKey'> {
  readonly streaming: true
  loadStreaming(model: ModelLocation, plan: ExecutionPlan, options?: SkillsetLoadOptions): Promise<StreamingRunner<I, O, P>>
  encodePartial(partial: P): Record<string, unknown>
  decodePartial(wire: unknown): P
}

/** Either kind of skillset, as the registry (skillsets/index.ts) holds them. */
export type AnySkillset = Skillset | StreamingSkillset

/** Whether a skillset streams (its jobs take the streaming path of the scheduler and the wire). */
export function isStreamingSkillset (s: AnySkillset): s is StreamingSkillset {
  return 'streaming' in s && s.streaming === true
}
