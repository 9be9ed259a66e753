/**
 * What the OpenAI-compatible routes need from the node, and nothing more:
 * a way to run a job somewhere in the swarm (this node included) and the
 * models the swarm serves. `src/node/local-client.ts` implements it on the
 * node's own job client; tests can hand in a fake.
 */
import type { SkillsetName } from '../../interfaces/index.ts'

export interface GatewayJob {
  skillset: SkillsetName
  /** Absent: the skillset's default (this node's, else the swarm's). */
  model?: string
  /** The job's input in wire form (what `parseInput` of the skillset accepts). */
  input: Record<string, unknown>
  /** Cost units of the input, as the skillset counts them. */
  cost: number
  timeoutMs: number
  /** Aborted when the HTTP client goes away: the job is cancelled wherever it runs. */
  signal: AbortSignal
  /** A streaming job's partials (wire form), in order; awaited, so a slow reader pauses the job. */
  onPartial?: (partial: Record<string, unknown>, seq: number) => Promise<void>
  /** The worker the job was handed to (again after a retry elsewhere): the response names it. */
  onLease?: (worker: string) => void
}

export interface GatewayAnswer {
  /** Peer id of the worker that ran the job (this node's own when it ran here). */
  worker: string
  model: string
  /** The output in wire form. */
  output: Record<string, unknown>
}

/** A model served somewhere in the swarm. */
export interface SwarmModel {
  id: string
  skillset: SkillsetName
  /** Workers known to serve it loaded (this node counts as one). */
  workers: number
  /** Whether this node serves it. */
  local: boolean
}

export interface GatewayBackend {
  submit(job: GatewayJob): Promise<GatewayAnswer>
  /** Every model served anywhere in the swarm, as far as this node knows (its own first). */
  models(): SwarmModel[]
}
