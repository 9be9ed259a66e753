/**
 * What the CLI asks of a model store, and a client for a running node's
 * store routes (http-api.ts) that offers the same calls. ModelStore itself
 * satisfies `ModelStoreApi` when the CLI opens the store in-process.
 */
import { AccelerateError, StoreError } from '../../errors.ts'
import type { SkillsetName } from '../../interfaces/index.ts'
import { STORE_API_PREFIX } from './http-api.ts'
import type { ModelSummary, PullOptions, PullResult, StoreProgress } from '../models/model-store.ts'
import type { ModelRecord } from '../models/records.ts'

export interface ApiCallOptions {
  signal?: AbortSignal
  onProgress?: (p: StoreProgress) => void
}

export interface ModelStoreApi {
  importDir(dir: string, options?: ApiCallOptions & { id?: string, skillset?: SkillsetName }): Promise<ModelRecord>
  list(): Promise<ModelSummary[]>
  pull(ref: string, options?: PullOptions): Promise<PullResult>
  pin(ref: string, options?: ApiCallOptions): Promise<ModelRecord>
  unpin(ref: string, options?: ApiCallOptions): Promise<ModelRecord>
  verify(ref: string, options?: ApiCallOptions): Promise<ModelRecord>
  exportTo(ref: string, dir: string, options?: ApiCallOptions): Promise<{ files: number, bytes: number }>
  gc(options?: ApiCallOptions): Promise<{ deletedBlocks: number }>
}

function remoteError (body: unknown, fallback: string): Error {
  const e = (body as { error?: { code?: unknown, message?: unknown } } | undefined)?.error ?? (body as { code?: unknown, message?: unknown })
  const code = typeof e?.code === 'string' ? e.code : 'ERR_INTERNAL'
  const message = typeof e?.message === 'string' ? e.message : fallback
  return new AccelerateError(code, message)
}

export interface StoreApiClientInit {
  /** The node's API token (`<data-dir>/api.token`, see src/gateway/token.ts). */
  token: string
}

export class StoreApiClient implements ModelStoreApi {
  readonly baseUrl: string
  readonly #token: string

  constructor (baseUrl: string, init: StoreApiClientInit) {
    this.baseUrl = baseUrl.replace(/\/+$/, '')
    this.#token = init.token
  }

  async list (): Promise<ModelSummary[]> {
    const res = await this.fetch(STORE_API_PREFIX, { method: 'GET' })
    const body = await res.json() as { models?: ModelSummary[] }
    if (!res.ok || body.models === undefined) throw remoteError(body, `HTTP ${res.status}`)
    return body.models
  }

  async importDir (dir: string, options: ApiCallOptions & { id?: string, skillset?: SkillsetName } = {}): Promise<ModelRecord> {
    return await this.call('import', { dir, ...(options.id === undefined ? {} : { id: options.id }), ...(options.skillset === undefined ? {} : { skillset: options.skillset }) }, options) as ModelRecord
  }

  async pull (ref: string, options: PullOptions = {}): Promise<PullResult> {
    if (options.bitswapOnly === true) throw new StoreError('bitswap-only pulls are not offered through the node API')
    return await this.call('pull', {
      ref,
      ...(options.peers === undefined || options.peers.length === 0 ? {} : { peers: options.peers }),
      ...(options.id === undefined ? {} : { id: options.id }),
      ...(options.skillset === undefined ? {} : { skillset: options.skillset }),
      ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes })
    }, options) as PullResult
  }

  async pin (ref: string, options: ApiCallOptions = {}): Promise<ModelRecord> { return await this.call('pin', { ref }, options) as ModelRecord }
  async unpin (ref: string, options: ApiCallOptions = {}): Promise<ModelRecord> { return await this.call('unpin', { ref }, options) as ModelRecord }
  async verify (ref: string, options: ApiCallOptions = {}): Promise<ModelRecord> { return await this.call('verify', { ref }, options) as ModelRecord }
  async exportTo (ref: string, dir: string, options: ApiCallOptions = {}): Promise<{ files: number, bytes: number }> { return await this.call('export', { ref, dir }, options) as { files: number, bytes: number } }
  async gc (options: ApiCallOptions = {}): Promise<{ deletedBlocks: number }> { return await this.call('gc', {}, options) as { deletedBlocks: number } }

  private async fetch (path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${this.baseUrl}${path}`, { ...init, headers: { ...init.headers as Record<string, string> | undefined, authorization: `Bearer ${this.#token}` } })
    } catch (err) {
      throw new StoreError(`cannot reach the node at ${this.baseUrl}: ${(err as Error).message}`, { cause: err })
    }
  }

  /** POST a body; read NDJSON progress lines until the result or error line. */
  private async call (verb: string, body: unknown, options: ApiCallOptions): Promise<unknown> {
    const res = await this.fetch(`${STORE_API_PREFIX}/${verb}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      ...(options.signal === undefined ? {} : { signal: options.signal })
    })
    if (!res.ok || res.body === null) throw remoteError(await res.json().catch(() => undefined), `HTTP ${res.status} from ${verb}`)
    const decoder = new TextDecoder()
    let buf = ''
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk, { stream: true })
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (text.trim() === '') continue
        const msg = JSON.parse(text) as { type?: string, result?: unknown, code?: string, message?: string } & StoreProgress
        if (msg.type === 'progress') {
          options.onProgress?.({ phase: msg.phase, bytes: msg.bytes, ...(msg.totalBytes === undefined ? {} : { totalBytes: msg.totalBytes }) })
        } else if (msg.type === 'result') {
          return msg.result
        } else if (msg.type === 'error') {
          throw remoteError(msg, `${verb} failed`)
        }
      }
    }
    throw new StoreError(`the node ended the ${verb} answer without a result`)
  }
}
