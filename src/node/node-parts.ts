/**
 * The view of a worker's parts that its observer (observe.ts) and metrics
 * (metrics.ts) read at each request; apart from both so that neither
 * imports the other's types back.
 */
import type { HardwareSummary } from '../interfaces/index.ts'
import type { Adverts } from '../p2p/swarm/adverts.ts'
import type { JobLinks } from '../p2p/jobs/link.ts'
import type { JobWorker } from '../p2p/jobs/worker.ts'
import type { ExchangeStats } from '../store/exchange/server.ts'
import type { ServedModel } from './served-models.ts'
import type { StatusDocument } from './status-schema.ts'

/** The parts of a worker the observer reads; any may be absent while it starts or stops. */
export interface NodeParts {
  state: StatusDocument['status']
  libp2p: { peerId: { toString(): string }, getPeers(): Array<{ toString(): string }> } | undefined
  hardware: HardwareSummary | undefined
  requested: { device: string, dtype: string }
  served: readonly ServedModel[]
  adverts: Pick<Adverts, 'peers' | 'stats'> | undefined
  jobs: JobWorker['stats'] | undefined
  links: JobLinks['stats'] | undefined
  exchange: ExchangeStats | undefined
}
