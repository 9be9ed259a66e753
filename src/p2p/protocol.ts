/** Names and limits of wire protocol version 1 (see docs/architecture.md). */
import type { SkillsetName } from '../interfaces/index.ts'

export const PROTOCOL_VERSION = 1
export const ADVERTS_TOPIC = '/ipfs-accelerate/1/adverts'
export const JOB_PROTOCOL = '/ipfs-accelerate/job/1.0.0'

export function jobsTopic (skillset: SkillsetName): string {
  return `/ipfs-accelerate/1/jobs/${skillset}`
}

/** Largest gossip message (offer or advert) we publish or accept. */
export const MAX_GOSSIP_BYTES = 256 * 1024
/** Largest single frame on a job stream (results carry payloads). */
export const MAX_STREAM_FRAME_BYTES = 64 * 1024 * 1024
/** Largest inline input in an offer; larger inputs must travel as a CID. */
export const MAX_INLINE_INPUT_BYTES = 192 * 1024
