/**
 * Fuzzing every surface a worker exposes (issue 8, item 8): at least 1,000
 * malformed inputs each on the gossip topics, the job stream (and the
 * directory protocol), the blocks stream and the local API, from real
 * libp2p nodes and HTTP clients against a real worker process (stand-in
 * model). After each surface the worker must still serve: alive, a job from
 * a fresh honest peer gets its correct result, a valid `dag` request streams
 * every block, the API answers its owner; and its resident memory stays
 * bounded. The worker's own counters (/healthz, /metrics) must show each
 * input refused for what it is and nothing else done: no bid, lease or run
 * that a malformed offer or frame led to, no advert taken. Seeded and
 * deterministic (IPFS_ACCELERATE_FUZZ_SEED replays another seed);
 * `bench/fuzz.ts` runs longer ones.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { runFuzz } from '../helpers/fuzz/run.ts'
import type { Serving } from '../helpers/fuzz/run.ts'
import { startWorker, stopProc, tempDir } from '../helpers/procs.ts'

const COUNT = 1000
const SEED = Number(process.env.IPFS_ACCELERATE_FUZZ_SEED ?? 1)
/** Resident memory may grow this much over the whole run (V8 keeps freed heap a while); a leak per input would pass it. */
const RSS_SLACK_MB = 400

/** Of a part's counters, those in `expected` moved by that much, and every other one not at all. */
function onlyMoved (what: string, moved: Record<string, number>, expected: Record<string, number>): void {
  const actual = Object.fromEntries(Object.entries(moved).filter(([k, v]) => v !== 0 || k in expected))
  assert.deepEqual(actual, expected, `${what}: counters that moved`)
}

function assertServing (what: string, s: Serving | undefined): void {
  assert.ok(s !== undefined, `${what}: no check ran`)
  assert.ok(s.alive, `${what}: the worker died`)
  assert.ok(s.jobOk, `${what}: an honest job did not get its correct result`)
  assert.ok(s.blocks > 0, `${what}: a valid dag request streamed no blocks`)
  assert.equal(s.apiStatus, 200, `${what}: the API did not answer its owner`)
}

test(`${COUNT} malformed inputs on each surface (seed ${SEED}); the worker keeps serving`, async (t) => {
  const sandbox = await tempDir('ia-fuzz-')
  await mkdir(join(sandbox, 'data'))
  const w = await startWorker({ models: 'demo/stand-in', config: { standIn: { msPerItem: 1 } }, dataDir: join(sandbox, 'data') })
  try {
    const r = await runFuzz({ pid: w.proc.pid!, httpUrl: w.httpUrl, addr: w.multiaddrs[0]!, peerId: w.peerId, dataDir: w.dataDir, sandbox }, { count: COUNT, seed: SEED, log: (line) => { t.diagnostic(line) } })

    const g = r.gossip!
    assert.ok(g.offers.sent >= COUNT && g.adverts.sent >= COUNT)
    // Gossipsub ignores a sender unread once its score is below the graylist threshold, which takes three
    // rejected messages, but only when it next computes the score (timing): so not every input need reach the
    // validators, while each identity's first three always do.
    assert.ok(g.rejected >= 3 * g.identities, `the validators rejected ${g.rejected} messages from ${g.identities} senders: fewer than 3 each`)
    onlyMoved('gossip: job worker', g.moved.jobs, { dropped: g.offers.rejected })
    onlyMoved('gossip: adverts', g.moved.adverts, { dropped: g.adverts.rejected })
    assert.equal(g.moved.workersKnown, 0, 'no malformed advert put a worker in the table')
    assertServing('after gossip', g.after)

    const l = r.links!
    assert.ok(l.body.sent >= COUNT && l.header.sent >= COUNT && l.directory.sent >= COUNT)
    assert.ok(l.linkSurvived, 'the link that carried bad bodies still answered a valid query')
    // every valid offer got a bid, every bad frame about a known job an error, the final query its status; nothing else
    assert.ok(l.knownJobs > 0)
    assert.deepEqual(l.answers, { bid: l.knownJobs, error: l.knownJobs, status: 1 }, 'the worker\'s answers on the link')
    // every bad body was refused as one (none bid on, leased or run), and the broken headers and asks touched no job
    onlyMoved('job stream: job worker', l.moved.jobs, { directOffers: l.knownJobs, bids: l.knownJobs, badFrames: l.body.sent, queries: 1 })
    assert.equal(l.header.resets + l.header.rejected, l.header.sent, 'every broken header ends its link')
    assert.equal(l.header.timeouts + l.directory.timeouts, 0, 'nothing was left hanging')
    assert.equal(l.directory.answered, 0, 'no malformed ask was answered')
    assertServing('after the job stream', l.after)

    const b = r.blocks!
    assert.ok(b.tally.sent >= COUNT)
    assert.equal(b.tally.timeouts, 0, 'every bad request was ended, none left hanging')
    assert.equal(b.tally.resets + b.errorReplies, b.tally.sent, 'every bad request was refused')
    assert.deepEqual(b.moved.exchange, { refused_by_limit: 0, malformed_request: b.tally.sent }, 'each counted as malformed')
    assertServing('after the blocks stream', b.after)

    const h = r.http!
    assert.ok(h.tally.sent >= COUNT)
    assert.deepEqual(h.unclear, [], 'every refusal is a typed error, none a 5xx or a foreign code')
    assert.deepEqual(h.hung, [], 'every request was answered')
    assert.ok(h.tally.rejected > COUNT / 2)
    assertServing('after the API', h.after)

    const peak = Math.max(g.after.rssMB, l.after.rssMB, b.after.rssMB, h.after.rssMB)
    t.diagnostic(`rss: ${r.rssBeforeMB} MB before, ${g.after.rssMB} / ${l.after.rssMB} / ${b.after.rssMB} / ${h.after.rssMB} MB after gossip / job stream / blocks / API`)
    assert.ok(peak < r.rssBeforeMB + RSS_SLACK_MB, `resident memory grew from ${r.rssBeforeMB} to ${peak} MB`)
  } finally {
    assert.equal(await stopProc(w.proc), 0, w.stderr().slice(-4000))
    await rm(sandbox, { recursive: true, force: true })
  }
})
