/**
 * Gossip hygiene between two real libp2p nodes on loopback: a topic
 * validator that rejects a malformed offer keeps it from the application
 * and lowers its sender's peer score until the sender is graylisted; a
 * well-formed offer from an honest peer still arrives.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createLibp2p } from 'libp2p'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Message } from '@libp2p/gossipsub'
import { libp2pOptions } from '../../src/p2p/swarm/libp2p.ts'
import { jobsTopic } from '../../src/p2p/wire/protocol.ts'

const opts = (): ReturnType<typeof libp2pOptions> => libp2pOptions({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false })

async function until (cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond() && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 20))
  return cond()
}

test('rejected gossip lowers its sender\'s score to the graylist; good gossip still flows', async () => {
  const worker = await createLibp2p(opts())
  const liar = await createLibp2p(opts())
  const honest = await createLibp2p(opts())
  try {
    const topic = jobsTopic('embed')
    const delivered: string[] = []
    worker.services.pubsub.topicValidators.set(topic, (_p, msg) => new TextDecoder().decode(msg.data) === 'good' ? TopicValidatorResult.Accept : TopicValidatorResult.Reject)
    worker.services.pubsub.addEventListener('message', (evt: CustomEvent<Message>) => { delivered.push(`${evt.detail.type === 'signed' ? evt.detail.from.toString() : '?'}:${new TextDecoder().decode(evt.detail.data)}`) })
    worker.services.pubsub.subscribe(topic)
    await liar.dial(worker.getMultiaddrs()[0]!)
    await honest.dial(worker.getMultiaddrs()[0]!)
    assert.ok(await until(() => liar.services.pubsub.getSubscribers(topic).length > 0 && honest.services.pubsub.getSubscribers(topic).length > 0, 5000), 'subscriptions seen')
    for (let i = 0; i < 5; i++) await liar.services.pubsub.publish(topic, new TextEncoder().encode(`garbage ${i}`))
    const liarId = liar.peerId.toString()
    // The class has getScore; the exported GossipSub interface does not declare it.
    const score = (id: string): number => (worker.services.pubsub as unknown as { getScore: (id: string) => number }).getScore(id)
    assert.ok(await until(() => score(liarId) < -80, 5000), `liar's score ${score(liarId)}`)
    await honest.services.pubsub.publish(topic, new TextEncoder().encode('good'))
    assert.ok(await until(() => delivered.includes(`${honest.peerId.toString()}:good`), 5000), 'the honest offer arrived')
    assert.ok(delivered.every((d) => !d.startsWith(liarId)), 'nothing of the liar reached the application')
    assert.ok(score(honest.peerId.toString()) >= 0, 'the honest peer is not penalised')
  } finally {
    await Promise.all([worker.stop(), liar.stop(), honest.stop()])
  }
})
