/**
 * Synthetic embed input for measuring throughput at start-up: `n` distinct
 * texts of 16 words each, the same on every host and run.
 */
const WORDS = Object.freeze([
  'the', 'swarm', 'shares', 'model', 'weights', 'and', 'embeddings', 'between', 'peers', 'over', 'libp2p',
  'each', 'worker', 'runs', 'batches', 'on', 'its', 'fastest', 'device', 'while', 'clients', 'submit',
  'jobs', 'with', 'deadlines', 'a', 'node', 'advertises', 'what', 'it', 'serves', 'to', 'others'
])
export const SAMPLE_WORDS_PER_TEXT = 16

/** `n` texts (at least 1, at most `maxTexts`), in the embed wire form. */
export function sampleEmbedInput (n: number, maxTexts: number): { texts: string[] } {
  const count = Math.max(1, Math.min(maxTexts, Math.floor(n)))
  const texts = Array.from({ length: count }, (_, i) => {
    const words: string[] = []
    for (let w = 0; w < SAMPLE_WORDS_PER_TEXT; w++) words.push(WORDS[(i * 7 + w * 5 + (i >> 3)) % WORDS.length] as string)
    return `${words.join(' ')} ${i}`
  })
  return { texts }
}
