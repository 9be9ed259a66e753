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

function defineError (name: string, code: string, defaultMessage: string): new (message?: string, options?: ErrorOptions) => AccelerateError {
  const cls = class extends AccelerateError {
    constructor (message: string = defaultMessage, options: ErrorOptions = {}) {
      super(code, message, options)
    }
  }
  Object.defineProperty(cls, 'name', { value: name })
  return cls
}

export const ConfigError = defineError('ConfigError', 'ERR_CONFIG', 'Invalid configuration: check the config file, IPFS_ACCELERATE_* variables and flags')
export const UsageError = defineError('UsageError', 'ERR_USAGE', 'Invalid command line: run with --help')
export const InvalidInputError = defineError('InvalidInputError', 'ERR_INVALID_INPUT', 'Invalid job input: check the input against the skillset schema')
export const InputTooLargeError = defineError('InputTooLargeError', 'ERR_INPUT_TOO_LARGE', 'Input too large: split it into smaller jobs')
export const ModelNotFoundError = defineError('ModelNotFoundError', 'ERR_MODEL_NOT_FOUND', 'Model not found: list known models with `ipfs-accelerate models list`')
export const ModelLoadError = defineError('ModelLoadError', 'ERR_MODEL_LOAD', 'Model failed to load: check its files, or regenerate it')
export const ModelIntegrityError = defineError('ModelIntegrityError', 'ERR_MODEL_INTEGRITY', 'Model file does not match its recorded hash: re-import or re-pull the model')
export const SkillsetNotFoundError = defineError('SkillsetNotFoundError', 'ERR_SKILLSET_NOT_FOUND', 'Unknown skillset')
export const NoWorkerError = defineError('NoWorkerError', 'ERR_NO_WORKER', 'No worker took the job: start a worker node (`npm start`) or pass --bootstrap with its address')
export const JobTimeoutError = defineError('JobTimeoutError', 'ERR_JOB_TIMEOUT', 'The job did not finish before its deadline: raise --timeout or check the worker logs')
export const JobFailedError = defineError('JobFailedError', 'ERR_JOB_FAILED', 'The worker failed the job')
export const QueueFullError = defineError('QueueFullError', 'ERR_QUEUE_FULL', 'The worker queue is full: retry later or add workers')
export const ShuttingDownError = defineError('ShuttingDownError', 'ERR_SHUTTING_DOWN', 'The node is shutting down: resubmit the job to another worker')
export const ProtocolError = defineError('ProtocolError', 'ERR_PROTOCOL', 'Malformed protocol message')
export const MessageTooLargeError = defineError('MessageTooLargeError', 'ERR_MESSAGE_TOO_LARGE', 'Protocol message over the size limit')
export const DeviceUnavailableError = defineError('DeviceUnavailableError', 'ERR_DEVICE_UNAVAILABLE', 'The requested device is not available on this host: run `ipfs-accelerate hardware` to see what is')
export const ProbeError = defineError('ProbeError', 'ERR_PROBE', 'A hardware probe failed')
export const StoreError = defineError('StoreError', 'ERR_STORE', 'Content store operation failed')
export const NotStartedError = defineError('NotStartedError', 'ERR_NOT_STARTED', 'Component not started: call start() first')

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
