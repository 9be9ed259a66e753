/**
 * Errors as OpenAI's API writes them: `{ error: { message, type, param,
 * code } }` with the HTTP status a client library maps to its own error
 * classes (400 BadRequest, 401 Authentication, 403 PermissionDenied, 404
 * NotFound, 413, 429 RateLimit, 5xx InternalServer). The table maps each
 * stable `ERR_*` code of the node to one of those; the message keeps the
 * node's own, which says what to do next.
 */
import type { ServerResponse } from 'node:http'
import { AccelerateError, errorCode, errorMessage, InvalidRequestError } from '../../errors.ts'
import type { Refusal } from '../guard.ts'

export type OpenAiErrorType = 'invalid_request_error' | 'authentication_error' | 'permission_error' | 'not_found_error' | 'rate_limit_error' | 'server_error' | 'timeout_error'

export interface OpenAiErrorBody {
  error: { message: string, type: OpenAiErrorType, param: string | null, code: string | null }
}

interface Mapping { status: number, type: OpenAiErrorType, code: string }

const BY_CODE: Readonly<Record<string, Mapping>> = Object.freeze({
  ERR_INVALID_INPUT: { status: 400, type: 'invalid_request_error', code: 'invalid_input' },
  ERR_USAGE: { status: 400, type: 'invalid_request_error', code: 'invalid_request' },
  ERR_INPUT_TOO_LARGE: { status: 413, type: 'invalid_request_error', code: 'request_too_large' },
  ERR_MESSAGE_TOO_LARGE: { status: 413, type: 'invalid_request_error', code: 'request_too_large' },
  ERR_UNAUTHORIZED: { status: 401, type: 'authentication_error', code: 'invalid_api_key' },
  ERR_FORBIDDEN: { status: 403, type: 'permission_error', code: 'forbidden' },
  ERR_MEDIA_TYPE: { status: 415, type: 'invalid_request_error', code: 'unsupported_media_type' },
  ERR_MODEL_NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'model_not_found' },
  ERR_NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'unknown_url' },
  ERR_METHOD: { status: 405, type: 'invalid_request_error', code: 'method_not_allowed' },
  ERR_SKILLSET_NOT_FOUND: { status: 501, type: 'server_error', code: 'not_implemented' },
  ERR_QUEUE_FULL: { status: 429, type: 'rate_limit_error', code: 'no_capacity' },
  ERR_PEER_BUSY: { status: 429, type: 'rate_limit_error', code: 'no_capacity' },
  ERR_RATE_LIMITED: { status: 429, type: 'rate_limit_error', code: 'no_capacity' },
  ERR_NO_WORKER: { status: 503, type: 'server_error', code: 'no_worker' },
  ERR_SHUTTING_DOWN: { status: 503, type: 'server_error', code: 'shutting_down' },
  ERR_NOT_STARTED: { status: 503, type: 'server_error', code: 'not_ready' },
  ERR_JOB_TIMEOUT: { status: 504, type: 'timeout_error', code: 'timeout' }
})

const FALLBACK: Mapping = { status: 500, type: 'server_error', code: 'job_failed' }

/** The OpenAI-style status and body of any error (a node error by its code; anything else is a 500). */
export function openAiError (err: unknown, param: string | null = err instanceof InvalidRequestError ? err.param : null): { status: number, body: OpenAiErrorBody } {
  const m = BY_CODE[errorCode(err)] ?? FALLBACK
  const code = m === FALLBACK && err instanceof AccelerateError ? err.code.replace(/^ERR_/, '').toLowerCase() : m.code
  return { status: m.status, body: { error: { message: errorMessage(err), type: m.type, param, code } } }
}

export function sendOpenAiError (res: ServerResponse, err: unknown, headers: Record<string, string> = {}): void {
  const { status, body } = openAiError(err)
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** A guard's refusal (401, 403, 415), or an unknown path or method under /v1, in OpenAI's shape. */
export function sendRefusal (res: ServerResponse, refusal: Pick<Refusal, 'error' | 'headers'>): void {
  sendOpenAiError(res, refusal.error, refusal.headers)
}
