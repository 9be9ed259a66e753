/**
 * Downloading a model from the Hugging Face hub, once, into a staging folder
 * in the Hugging Face layout (the node then imports it into its content
 * store and serves it to peers). Only the files the node needs: config,
 * tokenizer files, and the ONNX file of the planned dtype. Streams to disk
 * with a size bound, a stall timeout and progress; a partial download never
 * takes a file's final name.
 */
import { createWriteStream } from 'node:fs'
import { mkdir, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Dtype } from '../interfaces/index.ts'
import { ModelNotFoundError, StoreError, errorMessage } from '../errors.ts'

/** The hub's address; IPFS_ACCELERATE_HUB_URL points elsewhere (a mirror, or a test server). */
export function hubUrl (env: NodeJS.ProcessEnv = process.env): string {
  return (env.IPFS_ACCELERATE_HUB_URL ?? 'https://huggingface.co').replace(/\/+$/, '')
}

/** transformers.js's file name for each dtype. */
export const ONNX_FILE: Readonly<Record<Dtype, string>> = Object.freeze({
  fp32: 'onnx/model.onnx',
  fp16: 'onnx/model_fp16.onnx',
  q8: 'onnx/model_quantized.onnx',
  int8: 'onnx/model_int8.onnx',
  uint8: 'onnx/model_uint8.onnx',
  q4: 'onnx/model_q4.onnx',
  q4f16: 'onnx/model_q4f16.onnx',
  bnb4: 'onnx/model_bnb4.onnx'
})

const REQUIRED = ['config.json', 'tokenizer.json', 'tokenizer_config.json']
const OPTIONAL = ['special_tokens_map.json', 'generation_config.json', 'preprocessor_config.json']
const MAX_FILE_BYTES = 32 * 1024 ** 3
const STALL_MS = 60_000

export interface HubDownload {
  repo: string
  revision?: string
  dtype: Dtype
  /** Folder to write the files into (created). */
  dest: string
  baseUrl?: string
  signal?: AbortSignal
  onProgress?: (p: { file: string, bytes: number, totalBytes?: number }) => void
}

async function fetchFile (url: string, file: string, required: boolean, d: HubDownload): Promise<boolean> {
  const stall = new AbortController()
  let timer = setTimeout(() => { stall.abort(new Error(`no data for ${STALL_MS / 1000} s`)) }, STALL_MS)
  const signal = AbortSignal.any([stall.signal, ...(d.signal === undefined ? [] : [d.signal])])
  let res: Response
  try {
    res = await fetch(url, { signal, redirect: 'follow' })
  } catch (err) {
    clearTimeout(timer)
    throw new StoreError(`cannot reach the model hub for ${d.repo} (${url}): ${errorMessage((err as Error).cause ?? err)}: this host is offline, so pull the model from a peer or import it`, { cause: err })
  }
  if (res.status === 404 && !required) { clearTimeout(timer); return false }
  if (!res.ok || res.body === null) {
    clearTimeout(timer)
    if (res.status === 404 || res.status === 401) throw new ModelNotFoundError(`the hub has no ${file} for ${d.repo} (HTTP ${res.status}): check the model id and the dtype (${d.dtype})`)
    throw new StoreError(`the hub answered HTTP ${res.status} for ${url}: retry later`)
  }
  const total = Number(res.headers.get('content-length') ?? NaN)
  if (total > MAX_FILE_BYTES) throw new StoreError(`${file} of ${d.repo} is ${total} bytes, over the ${MAX_FILE_BYTES}-byte limit`)
  const out = join(d.dest, file)
  const part = `${out}.part`
  await mkdir(dirname(out), { recursive: true })
  let bytes = 0
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>)
  body.on('data', (chunk: Buffer) => {
    bytes += chunk.byteLength
    clearTimeout(timer)
    timer = setTimeout(() => { stall.abort(new Error(`no data for ${STALL_MS / 1000} s`)) }, STALL_MS)
    if (bytes > MAX_FILE_BYTES) body.destroy(new StoreError(`${file} of ${d.repo} passed the ${MAX_FILE_BYTES}-byte limit`))
    d.onProgress?.({ file, bytes, ...(Number.isFinite(total) ? { totalBytes: total } : {}) })
  })
  try {
    await pipeline(body, createWriteStream(part))
  } catch (err) {
    await rm(part, { force: true })
    throw new StoreError(`downloading ${file} of ${d.repo} failed: ${errorMessage(err)}: retry`, { cause: err })
  } finally {
    clearTimeout(timer)
  }
  if (Number.isFinite(total) && bytes !== total) {
    await rm(part, { force: true })
    throw new StoreError(`${file} of ${d.repo} ended after ${bytes} of ${total} bytes: retry`)
  }
  await rename(part, out)
  return true
}

/** Download the files a node needs to run `repo` with `dtype`; returns the folder. */
export async function downloadFromHub (d: HubDownload): Promise<string> {
  const base = `${d.baseUrl ?? hubUrl()}/${d.repo}/resolve/${encodeURIComponent(d.revision ?? 'main')}`
  await mkdir(d.dest, { recursive: true })
  for (const file of [...REQUIRED, ONNX_FILE[d.dtype]]) await fetchFile(`${base}/${file}`, file, true, d)
  for (const file of OPTIONAL) await fetchFile(`${base}/${file}`, file, false, d)
  return d.dest
}
