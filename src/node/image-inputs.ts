/**
 * A worker's side of image inputs: before a job is queued, its images are
 * checked against the node's limits (config `images`), and those sent by
 * CID are fetched from the job's client through the blocks protocol
 * (src/store/attachments.ts), so the inference thread gets every image
 * inline. Decoding happens later, in the thread.
 */
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { ImageInputs, ImageLimits } from '../interfaces/index.ts'
import { InvalidInputError } from '../errors.ts'
import { fetchAttachment } from '../store/attachments.ts'
import { checkImageBytes } from '../../skillsets/image/index.ts'

export interface ResolveDeps {
  /** The worker's libp2p node (absent: images by CID cannot be fetched). */
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'> | undefined
  /** The peer that leased the job: it serves the images it sent by CID. */
  client: string | undefined
  limits: ImageLimits
  signal: AbortSignal
}

/** The input with every image inline and within the limits; InvalidInputError or InputTooLargeError otherwise. */
export async function resolveImages<I> (images: ImageInputs<I>, input: I, deps: ResolveDeps): Promise<I> {
  const sources = images.list(input)
  const bytes = await Promise.all(sources.map(async (s, i) => {
    if ('bytes' in s) return s.bytes
    if (deps.libp2p === undefined || deps.client === undefined) throw new InvalidInputError(`image ${i} was sent by CID (${s.cid}), and this worker has no peer to fetch it from: send it inline`)
    return await fetchAttachment(deps.libp2p, s, peerIdFromString(deps.client), { maxBytes: deps.limits.maxBytes, signal: deps.signal })
  }))
  bytes.forEach((b, i) => { checkImageBytes(b, deps.limits, `image ${i}`) })
  return sources.every((s) => 'bytes' in s) ? input : images.withBytes(input, bytes)
}
