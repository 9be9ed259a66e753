/**
 * What a ModelQueue (model-queue.ts) runs batches on, and what a batch
 * gives back: the contract between the queue and its runners
 * (InferenceThread in thread.ts, LocalRunner in local-runner.ts), apart
 * from both so that neither imports the other's types back.
 */

/** A batch's outputs in input order; an Error in a slot fails that input's job only. */
export interface BatchResult { outputs: unknown[], runMs: number }

/** What the queue runs batches on: an InferenceThread or a LocalRunner. */
export interface Runner {
  /** Set by the queue while it has a batch (or a stall restart) on this runner. */
  busy: boolean
  /** Able to take a batch now: started, not crashed, not restarting. */
  readonly ready: boolean
  run(inputs: unknown[]): Promise<BatchResult>
  /** Replace the runner's worker; a pending run is abandoned. The stall watchdog calls it. */
  restart(): Promise<void>
  /** Set by the queue when it is built: the runner calls it whenever `ready` changes. */
  onReadyChange?: ((ready: boolean) => void) | undefined
}
