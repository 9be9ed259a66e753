/**
 * One place for the project's errors. Every error has a stable `code` that
 * job results, HTTP errors and CLI exit messages carry, and a default message
 * that says what to do next.
 */

export interface ErrorOptions {
  cause?: unknown
}

export class AccelerateError extends Error {
  readonly code: string
  constructor (code: string, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.name = new.target.name
  }
}

export class ConfigError extends AccelerateError {
  constructor (message = 'Invalid configuration: check the config file, IPFS_ACCELERATE_* variables and flags', options: ErrorOptions = {}) {
    super('ERR_CONFIG', message, options)
  }
}

export class UsageError extends AccelerateError {
  constructor (message = 'Invalid command line: run with --help', options: ErrorOptions = {}) {
    super('ERR_USAGE', message, options)
  }
}

export class InvalidInputError extends AccelerateError {
  constructor (message = 'Invalid job input: check the input against the skillset schema', options: ErrorOptions = {}) {
    super('ERR_INVALID_INPUT', message, options)
  }
}

/** An HTTP request body with a field that is wrong (OpenAI-style APIs name it as `param`). */
export class InvalidRequestError extends AccelerateError {
  readonly param: string | null
  constructor (message = 'Invalid request body: check it against the API reference in the README', param: string | null = null, options: ErrorOptions = {}) {
    super('ERR_INVALID_INPUT', message, options)
    this.param = param
  }
}

export class InputTooLargeError extends AccelerateError {
  constructor (message = 'Input too large: split it into smaller jobs', options: ErrorOptions = {}) {
    super('ERR_INPUT_TOO_LARGE', message, options)
  }
}

export class ModelNotFoundError extends AccelerateError {
  constructor (message = 'Model not found: list known models with `ipfs-accelerate models list`', options: ErrorOptions = {}) {
    super('ERR_MODEL_NOT_FOUND', message, options)
  }
}

export class ModelLoadError extends AccelerateError {
  constructor (message = 'Model failed to load: check its files, or regenerate it', options: ErrorOptions = {}) {
    super('ERR_MODEL_LOAD', message, options)
  }
}

export class ModelIntegrityError extends AccelerateError {
  constructor (message = 'Model file does not match its recorded hash: re-import or re-pull the model', options: ErrorOptions = {}) {
    super('ERR_MODEL_INTEGRITY', message, options)
  }
}

export class SkillsetNotFoundError extends AccelerateError {
  constructor (message = 'Unknown skillset', options: ErrorOptions = {}) {
    super('ERR_SKILLSET_NOT_FOUND', message, options)
  }
}

export class NoWorkerError extends AccelerateError {
  constructor (message = 'No worker took the job: start a worker node (`npm start`) or pass --bootstrap with its address', options: ErrorOptions = {}) {
    super('ERR_NO_WORKER', message, options)
  }
}

export class JobTimeoutError extends AccelerateError {
  constructor (message = 'The job did not finish before its deadline: raise --timeout or check the worker logs', options: ErrorOptions = {}) {
    super('ERR_JOB_TIMEOUT', message, options)
  }
}

export class JobFailedError extends AccelerateError {
  constructor (message = 'The worker failed the job', options: ErrorOptions = {}) {
    super('ERR_JOB_FAILED', message, options)
  }
}

export class InferenceError extends AccelerateError {
  constructor (message = 'Inference failed: check the model files and the input; the worker log has the details', options: ErrorOptions = {}) {
    super('ERR_INFERENCE', message, options)
  }
}

export class InferenceStalledError extends AccelerateError {
  constructor (message = 'The inference run stalled: the worker replaced its inference thread; retry the job, on another worker if need be', options: ErrorOptions = {}) {
    super('ERR_INFERENCE_STALLED', message, options)
  }
}

export class JobCancelledError extends AccelerateError {
  constructor (message = 'The job was cancelled before it finished: submit it again if its result is still wanted', options: ErrorOptions = {}) {
    super('ERR_JOB_CANCELLED', message, options)
  }
}

export class QueueFullError extends AccelerateError {
  constructor (message = 'The worker queue is full: retry later or add workers', options: ErrorOptions = {}) {
    super('ERR_QUEUE_FULL', message, options)
  }
}

export class ShuttingDownError extends AccelerateError {
  constructor (message = 'The node is shutting down: resubmit the job to another worker', options: ErrorOptions = {}) {
    super('ERR_SHUTTING_DOWN', message, options)
  }
}

export class ProtocolError extends AccelerateError {
  constructor (message = 'Malformed protocol message', options: ErrorOptions = {}) {
    super('ERR_PROTOCOL', message, options)
  }
}

export class MessageTooLargeError extends AccelerateError {
  constructor (message = 'Protocol message over the size limit', options: ErrorOptions = {}) {
    super('ERR_MESSAGE_TOO_LARGE', message, options)
  }
}

export class DeviceUnavailableError extends AccelerateError {
  constructor (message = 'The requested device is not available on this host: run `ipfs-accelerate hardware` to see what is', options: ErrorOptions = {}) {
    super('ERR_DEVICE_UNAVAILABLE', message, options)
  }
}

export class ProbeError extends AccelerateError {
  constructor (message = 'A hardware probe failed', options: ErrorOptions = {}) {
    super('ERR_PROBE', message, options)
  }
}

export class StoreError extends AccelerateError {
  constructor (message = 'Content store operation failed', options: ErrorOptions = {}) {
    super('ERR_STORE', message, options)
  }
}

export class StoreLockedError extends AccelerateError {
  constructor (message = 'Another process is writing to this store: wait for it to finish, or talk to the running node through the CLI (it uses the node\'s API)', options: ErrorOptions = {}) {
    super('ERR_STORE_LOCKED', message, options)
  }
}

/** The blocks protocol refused a request: the peer serves as many as it allows. The client asks another peer. */
export class PeerBusyError extends AccelerateError {
  constructor (message = 'The peer is serving as many block requests as it allows: ask another peer, or retry later', options: ErrorOptions = {}) {
    super('ERR_PEER_BUSY', message, options)
  }
}

/** The blocks protocol refused a request: this peer used its byte budget. The client asks another peer. */
export class RateLimitedError extends AccelerateError {
  constructor (message = 'This peer has taken its share of the serving node\'s bandwidth for now: ask another peer, or retry later', options: ErrorOptions = {}) {
    super('ERR_RATE_LIMITED', message, options)
  }
}

/** A block request ran past the serving node's deadline for one request. The client asks again, in smaller parts or elsewhere. */
export class RequestDeadlineError extends AccelerateError {
  constructor (message = 'The block request ran past the serving node\'s deadline: ask for fewer blocks at once, or ask another peer', options: ErrorOptions = {}) {
    super('ERR_REQUEST_DEADLINE', message, options)
  }
}

/** A `has` request named more roots than a node answers at once. */
export class TooManyRootsError extends AccelerateError {
  constructor (message = 'Too many roots in one request: split it into smaller batches', options: ErrorOptions = {}) {
    super('ERR_TOO_MANY_ROOTS', message, options)
  }
}

export class ForbiddenError extends AccelerateError {
  constructor (message = 'Forbidden: the local API answers only its owner; use the CLI (`ipfs-accelerate models ...`) on the node\'s host', options: ErrorOptions = {}) {
    super('ERR_FORBIDDEN', message, options)
  }
}

export class UnauthorizedError extends AccelerateError {
  constructor (message = 'Missing or wrong API token: send `Authorization: Bearer <token>` with the token from `<data-dir>/api.token`', options: ErrorOptions = {}) {
    super('ERR_UNAUTHORIZED', message, options)
  }
}

export class UnsupportedMediaTypeError extends AccelerateError {
  constructor (message = 'Unsupported request body type: send the body as JSON with `Content-Type: application/json`', options: ErrorOptions = {}) {
    super('ERR_MEDIA_TYPE', message, options)
  }
}

export class ExistsError extends AccelerateError {
  constructor (message = 'The target already exists: choose a new or empty folder; nothing was overwritten', options: ErrorOptions = {}) {
    super('ERR_EXISTS', message, options)
  }
}

export class NotStartedError extends AccelerateError {
  constructor (message = 'Component not started: call start() first', options: ErrorOptions = {}) {
    super('ERR_NOT_STARTED', message, options)
  }
}

/** The code of any error, for results, HTTP bodies and exit messages. */
export function errorCode (err: unknown): string {
  if (err instanceof AccelerateError) return err.code
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code
  return 'ERR_INTERNAL'
}

export function errorMessage (err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}

/** A cached embedding that is not what its reader expects (model, dtype, width, values): dropped and treated as a miss. */
export class CacheEntryError extends AccelerateError {
  constructor (message = 'A cached embedding is not what this model computes: it was dropped and the text is computed again', options: ErrorOptions = {}) {
    super('ERR_CACHE_ENTRY', message, options)
  }
}

/**
 * A streaming job lost its worker after some partials were delivered, and
 * could not be resumed: it is not retried elsewhere (the caller has seen
 * part of one run's output). The message says how far it got.
 */
export class StreamBrokenError extends AccelerateError {
  readonly partials: number
  constructor (message = 'The stream broke after some partials and could not be resumed: submit the job again if its output is still wanted', options: ErrorOptions & { partials?: number } = {}) {
    super('ERR_STREAM_BROKEN', message, options)
    this.partials = options.partials ?? 0
  }
}
