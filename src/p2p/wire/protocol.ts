/** Names and limits of wire protocol version 1 (see docs/architecture.md). */
import type { SkillsetName } from '../../interfaces/index.ts'

export const PROTOCOL_VERSION = 1
export const ADVERTS_TOPIC = '/ipfs-accelerate/1/adverts'
/** Job links, first version: one answer per job (`result` or `error`). */
export const JOB_PROTOCOL = '/ipfs-accelerate/job/1.0.0'
/**
 * Job links with streaming (issue 9): adds `partial` frames (numbered),
 * `ack` (credit) and resumable `query {fromSeq}`. Links negotiate the
 * newest both speak; streaming jobs go only over 1.1.0 links.
 */
export const JOB_PROTOCOL_STREAM = '/ipfs-accelerate/job/1.1.0'
/** Every job protocol this node speaks, newest first. */
export const JOB_PROTOCOLS: readonly string[] = Object.freeze([JOB_PROTOCOL_STREAM, JOB_PROTOCOL])
/** One request each: a peer's table of live workers, so a fresh client knows whom to dial. */
export const DIRECTORY_PROTOCOL = '/ipfs-accelerate/directory/1.0.0'

export function jobsTopic (skillset: SkillsetName): string {
  return `/ipfs-accelerate/1/jobs/${skillset}`
}

/** Largest gossip message (offer or advert) we publish or accept. */
export const MAX_GOSSIP_BYTES = 256 * 1024
/**
 * Largest frame body on a job link, whatever its job. A frame over its job's
 * own limit (per skillset, smaller) is skipped without buffering and fails
 * that job only; the link stays up.
 */
export const MAX_FRAME_BYTES = 32 * 1024 * 1024
/** Control frames (offer, bid, decline, cancel, query, progress, busy, status). */
export const MAX_CONTROL_FRAME_BYTES = 4 * 1024
/** Largest directory answer. */
export const MAX_DIRECTORY_BYTES = 512 * 1024
/** Entries in a directory answer. */
export const MAX_DIRECTORY_PEERS = 256
/** The largest window (unacknowledged partials per job) a client may ask for in `assign` (default 16, jobs/stream-flow.ts). */
export const MAX_STREAM_WINDOW = 256
