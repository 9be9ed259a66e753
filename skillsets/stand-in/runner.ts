/**
 * The stand-in runner: a batch takes msPerItem × slowdown × (its items) ms
 * on a TIMER (no CPU work), then answers each input with its digest. A
 * batch fails (ERR_INFERENCE) when an input asks for it or with chance
 * failRate; it never ends when an input has `hang` (until dispose, which
 * a restart does).
 */
import { z } from 'zod'
import type { SkillsetLoadOptions, SkillsetRunner } from '../../src/interfaces/index.ts'
import { ConfigError, InferenceError } from '../../src/errors.ts'
import type { StandInInput, StandInOutput } from './input.ts'
import { standInDigest } from './input.ts'

/** setTimeout's longest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1

export const standInSettingsSchema = z.strictObject({
  msPerItem: z.number().min(0).max(60_000).default(1),
  slowdown: z.number().min(0).max(1_000_000).default(1),
  failRate: z.number().min(0).max(1).default(0)
})

export type StandInSettings = z.infer<typeof standInSettingsSchema>

/** The node config's `standIn` block, defaults filled in. */
export function standInSettings (options: SkillsetLoadOptions = {}): StandInSettings {
  const parsed = standInSettingsSchema.safeParse(options.nodeConfig?.standIn ?? {})
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `standIn.${i.path.join('.')}: ${i.message}`).join('; ')
    throw new ConfigError(`invalid stand-in settings: ${problems}`, { cause: parsed.error })
  }
  return parsed.data
}

export class StandInRunner implements SkillsetRunner<StandInInput, StandInOutput> {
  private readonly settings: StandInSettings
  private readonly random: () => number
  private readonly controller = new AbortController()

  constructor (settings: StandInSettings, random: () => number = Math.random) {
    this.settings = settings
    this.random = random
  }

  /** How long a batch of this many items runs. */
  batchMs (items: number): number {
    return Math.min(MAX_TIMER_MS, this.settings.msPerItem * this.settings.slowdown * items)
  }

  async run (inputs: StandInInput[]): Promise<StandInOutput[]> {
    const signal = this.controller.signal
    if (signal.aborted) throw new InferenceError('the stand-in runner was disposed: start a new one')
    const items = inputs.reduce((s, i) => s + i.items, 0)
    const hang = inputs.some((i) => i.hang === true)
    await new Promise<void>((resolve, reject) => {
      const timer = hang ? undefined : setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve() }, this.batchMs(items))
      const onAbort = (): void => {
        clearTimeout(timer)
        reject(new InferenceError('the stand-in runner was disposed while it ran this batch (the runner was restarted): retry the job'))
      }
      signal.addEventListener('abort', onAbort, { once: true })
    })
    if (inputs.some((i) => i.fail === true)) throw new InferenceError(`stand-in batch of ${inputs.length} jobs failed: an input asked for it (fail: true)`)
    if (this.random() < this.settings.failRate) throw new InferenceError(`stand-in batch of ${inputs.length} jobs failed at random (standIn.failRate ${this.settings.failRate})`)
    return inputs.map((i) => ({ digest: standInDigest(i) }))
  }

  async dispose (): Promise<void> {
    this.controller.abort()
  }
}
