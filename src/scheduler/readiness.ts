/** What a model's queues share about readiness: a flip is logged once and told to the node. */
import { errorMessage } from '../errors.ts'
import type { Logger } from '../logger.ts'

export interface ReadinessInit {
  modelId: string
  log: Logger
  onReadyChange?: (ready: boolean) => void
}

/**
 * A model's readiness flipped (`what` names the queue's kind in the log line;
 * `quiet` logs at debug, e.g. while draining): log it and call the node's
 * handler, whose failure is logged rather than thrown into the queue.
 */
export function announceReadiness (init: ReadinessInit, ready: boolean, what: string, quiet = false): void {
  if (quiet) init.log.debug(`${what} runners ${ready ? 'up' : 'down'} while draining`, { model: init.modelId })
  else init.log.info(ready ? `${what} has a ready runner again` : `${what} has no ready runner: not taking work until one is back`, { model: init.modelId })
  try {
    init.onReadyChange?.(ready)
  } catch (err) {
    init.log.error('onReadyChange handler failed', { model: init.modelId, error: errorMessage(err) })
  }
}
