/**
 * Downloading a model from the Hugging Face hub, once, into a staging folder
 * in the Hugging Face layout (the node then imports it into its content
 * store and serves it to peers). Only the files the node needs: the
 * skillset's config, tokenizer and processor files, and the planned dtype's
 * ONNX file for each session with its external data (onnx-files.ts).
 *
 * A download names one commit: the revision asked for (default `main`) is
 * resolved to its commit first (`/api/models/REPO/revision/REV?blobs=true`),
 * every file is fetched from that commit, and each is checked against the
 * size and hash the hub states for it (sha256 for LFS files, the git blob
 * sha1 for the rest). Streams to disk with a size bound, a stall timeout and
 * progress; a partial or mismatched download never takes a file's final name.
 */
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { z } from 'zod'
import type { Dtype, SkillsetName } from '../interfaces/index.ts'
import { ModelIntegrityError, ModelNotFoundError, StoreError, errorMessage } from '../errors.ts'
import { DTYPE_SUFFIX, dtypesOffered, filesOfDtype, sessionBases } from './onnx-files.ts'

/** The hub's address; IPFS_ACCELERATE_HUB_URL points elsewhere (a mirror, or a test server). */
export function hubUrl (env: NodeJS.ProcessEnv = process.env): string {
  return (env.IPFS_ACCELERATE_HUB_URL ?? 'https://huggingface.co').replace(/\/+$/, '')
}

/**
 * The files besides weights each skillset needs (required) or uses when the
 * repo has them (optional). A DETR repo has no tokenizer; a vision-language
 * one has both a tokenizer and an image processor.
 */
const SUPPORT_FILES: Readonly<Record<SkillsetName, { required: readonly string[], optional: readonly string[] }>> = Object.freeze({
  embed: { required: ['config.json', 'tokenizer.json', 'tokenizer_config.json'], optional: ['special_tokens_map.json'] },
  lm: { required: ['config.json', 'tokenizer.json', 'tokenizer_config.json'], optional: ['special_tokens_map.json', 'generation_config.json', 'chat_template.jinja', 'chat_template.json'] },
  'llava-next': { required: ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json'], optional: ['special_tokens_map.json', 'generation_config.json', 'processor_config.json', 'chat_template.jinja', 'chat_template.json'] },
  detr: { required: ['config.json', 'preprocessor_config.json'], optional: [] },
  'stand-in': { required: ['config.json'], optional: [] },
  'stand-in-stream': { required: ['config.json'], optional: [] }
})

const MAX_FILE_BYTES = 32 * 1024 ** 3
const MAX_INFO_BYTES = 16 * 1024 * 1024
const STALL_MS = 60_000

/** A commit: 40 lowercase hex digits. */
export const COMMIT_RE = /^[0-9a-f]{40}$/

const siblingSchema = z.object({
  rfilename: z.string().min(1).max(1024),
  size: z.number().int().nonnegative().optional(),
  blobId: z.string().regex(/^[0-9a-f]{40}$/).optional(),
  lfs: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() }).optional()
})
const revisionInfoSchema = z.object({
  sha: z.string().regex(COMMIT_RE, 'a 40-hex commit'),
  siblings: z.array(siblingSchema).max(100_000)
})

/** What the hub states about a file at a commit: what the download is checked against. */
export interface HubFile {
  path: string
  size?: number
  /** sha256 of the content (LFS files). */
  sha256?: string
  /** git blob sha1 (sha1 of `blob <size>\0<content>`) for files kept in git itself. */
  gitSha1?: string
}

export interface HubDownload {
  repo: string
  /** Decides which files besides the weights are needed (default embed). */
  skillset?: SkillsetName
  /** A commit, branch or tag (default `main`); resolved to a commit before anything is fetched. */
  revision?: string
  dtype: Dtype
  /** Folder to write the files into (created). */
  dest: string
  baseUrl?: string
  signal?: AbortSignal
  onProgress?: (p: { file: string, bytes: number, totalBytes?: number }) => void
}

export interface HubDownloadResult {
  dir: string
  /** The commit every file came from. */
  revision: string
  files: HubFile[]
}

function withStall (d: HubDownload): { signal: AbortSignal, poke: () => void, done: () => void } {
  const stall = new AbortController()
  const arm = (): NodeJS.Timeout => setTimeout(() => { stall.abort(new Error(`no data for ${STALL_MS / 1000} s`)) }, STALL_MS)
  let timer = arm()
  return {
    signal: AbortSignal.any([stall.signal, ...(d.signal === undefined ? [] : [d.signal])]),
    poke: () => { clearTimeout(timer); timer = arm() },
    done: () => { clearTimeout(timer) }
  }
}

async function hubFetch (url: string, d: HubDownload, signal: AbortSignal): Promise<Response> {
  try {
    return await fetch(url, { signal, redirect: 'follow' })
  } catch (err) {
    throw new StoreError(`cannot reach the model hub for ${d.repo} (${url}): ${errorMessage((err as Error).cause ?? err)}: this host is offline, so pull the model from a peer or import it`, { cause: err })
  }
}

/** Where the hub lists a repo's files at a revision, with their sizes and hashes. */
export function revisionInfoUrl (repo: string, revision: string, baseUrl: string = hubUrl()): string {
  return `${baseUrl}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`
}

/** Resolve `revision` to a commit and list what the hub states about each file there. */
export async function resolveRevision (d: HubDownload): Promise<{ revision: string, files: Map<string, HubFile> }> {
  const rev = d.revision ?? 'main'
  const url = revisionInfoUrl(d.repo, rev, d.baseUrl)
  const stall = withStall(d)
  try {
    const res = await hubFetch(url, d, stall.signal)
    if (res.status === 404 || res.status === 401) throw new ModelNotFoundError(`the hub has no ${d.repo} at revision ${rev} (HTTP ${res.status}): check the model's repo and revision in models.json`)
    if (!res.ok) throw new StoreError(`the hub answered HTTP ${res.status} for ${url}: retry later`)
    const text = await res.text()
    if (text.length > MAX_INFO_BYTES) throw new StoreError(`the hub's file list for ${d.repo} is over ${MAX_INFO_BYTES} bytes`)
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch (err) {
      throw new StoreError(`the hub's answer for ${d.repo}@${rev} is not JSON: ${errorMessage(err)}`, { cause: err })
    }
    const parsed = revisionInfoSchema.safeParse(raw)
    if (!parsed.success) throw new StoreError(`the hub's answer for ${d.repo}@${rev} is not a revision with files: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
    if (COMMIT_RE.test(rev) && parsed.data.sha !== rev) throw new ModelIntegrityError(`asked the hub for commit ${rev} of ${d.repo}, it answered with ${parsed.data.sha}`)
    const files = new Map<string, HubFile>()
    for (const s of parsed.data.siblings) {
      files.set(s.rfilename, {
        path: s.rfilename,
        ...(s.lfs !== undefined ? { size: s.lfs.size, sha256: s.lfs.sha256 } : {}),
        ...(s.lfs === undefined && s.size !== undefined ? { size: s.size } : {}),
        ...(s.lfs === undefined && s.blobId !== undefined ? { gitSha1: s.blobId } : {})
      })
    }
    return { revision: parsed.data.sha, files }
  } finally {
    stall.done()
  }
}

async function fetchFile (base: string, file: HubFile, d: HubDownload): Promise<void> {
  const url = `${base}/${file.path}`
  const stall = withStall(d)
  try {
    const res = await hubFetch(url, d, stall.signal)
    if (!res.ok || res.body === null) {
      if (res.status === 404 || res.status === 401) throw new ModelNotFoundError(`the hub lists ${file.path} of ${d.repo} but did not serve it (HTTP ${res.status}): retry later`)
      throw new StoreError(`the hub answered HTTP ${res.status} for ${url}: retry later`)
    }
    const total = file.size ?? Number(res.headers.get('content-length') ?? NaN)
    if (total > MAX_FILE_BYTES) throw new StoreError(`${file.path} of ${d.repo} is ${total} bytes, over the ${MAX_FILE_BYTES}-byte limit`)
    const out = join(d.dest, file.path)
    const part = `${out}.part`
    await mkdir(dirname(out), { recursive: true })
    const sha256 = createHash('sha256')
    const sha1 = createHash('sha1')
    if (file.gitSha1 !== undefined && file.size !== undefined) sha1.update(`blob ${file.size}\0`)
    let bytes = 0
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>)
    body.on('data', (chunk: Buffer) => {
      bytes += chunk.byteLength
      stall.poke()
      if (bytes > Math.min(MAX_FILE_BYTES, Number.isFinite(total) ? total : MAX_FILE_BYTES)) {
        body.destroy(new StoreError(`${file.path} of ${d.repo} passed the ${Number.isFinite(total) ? `${total} bytes the hub states` : `${MAX_FILE_BYTES}-byte limit`}`))
        return
      }
      sha256.update(chunk)
      if (file.gitSha1 !== undefined) sha1.update(chunk)
      d.onProgress?.({ file: file.path, bytes, ...(Number.isFinite(total) ? { totalBytes: total } : {}) })
    })
    try {
      await pipeline(body, createWriteStream(part))
    } catch (err) {
      await rm(part, { force: true })
      throw new StoreError(`downloading ${file.path} of ${d.repo} failed: ${errorMessage(err)}: retry`, { cause: err })
    }
    const problem = Number.isFinite(total) && bytes !== total
      ? `ended after ${bytes} of ${total} bytes`
      : file.sha256 !== undefined && sha256.digest('hex') !== file.sha256
        ? `does not match the sha256 the hub states (${file.sha256})`
        : file.gitSha1 !== undefined && file.size !== undefined && sha1.digest('hex') !== file.gitSha1 ? `does not match the git blob id the hub states (${file.gitSha1})` : undefined
    if (problem !== undefined) {
      await rm(part, { force: true })
      throw new ModelIntegrityError(`${file.path} of ${d.repo} ${problem}: retry; if it persists, the hub or a proxy serves other bytes`)
    }
    await rename(part, out)
  } finally {
    stall.done()
  }
}

/**
 * Download the files a node needs to run `repo` with `dtype` at one commit:
 * the skillset's config and tokenizer/processor files, and the dtype's ONNX
 * file for every session with its external data. Returns the folder, the
 * commit and the files.
 */
export async function downloadFromHub (d: HubDownload): Promise<HubDownloadResult> {
  const { revision, files } = await resolveRevision(d)
  const listed = [...files.keys()]
  const support = SUPPORT_FILES[d.skillset ?? 'embed']
  const weights = filesOfDtype(listed, d.dtype)
  if (weights.length === 0) {
    const offered = dtypesOffered(listed)
    throw new ModelNotFoundError(`${d.repo}@${revision} has no ${d.dtype} weights (onnx/*${DTYPE_SUFFIX[d.dtype]}.onnx for each of its sessions ${[...sessionBases(listed)].join(', ') || '(none: no onnx/ folder)'}); it offers ${offered.join(', ') || 'no ONNX weights'}: start with --dtype ${offered[0] ?? 'D'}, or pick another repo`)
  }
  const absent = support.required.filter((f) => !files.has(f))
  if (absent.length > 0) throw new ModelNotFoundError(`${d.repo}@${revision} has no ${absent.join(', ')}, which a ${d.skillset ?? 'embed'} model needs: check the model id and its skillset`)
  const chosen = [...support.required, ...weights, ...support.optional.filter((f) => files.has(f))].map((f) => files.get(f) as HubFile)
  const base = `${d.baseUrl ?? hubUrl()}/${d.repo}/resolve/${revision}`
  await mkdir(d.dest, { recursive: true })
  for (const file of chosen) await fetchFile(base, file, d)
  return { dir: d.dest, revision, files: chosen }
}
