/**
 * The status page in a real browser (headless Chromium, driven by
 * playwright-core): a two-worker swarm on loopback, the page of the first
 * shows both nodes' models and the peer; a third worker joins and the page
 * shows it without a reload. The page must run under its own CSP without a
 * console error. A screenshot is kept (its path is printed).
 *
 * Chromium: the headless build inside the npm package @sparticuz/chromium
 * (a dev dependency; unpacked to the temp dir on first use), or the browser
 * CHROMIUM_PATH names.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { access, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import packaged from '@sparticuz/chromium'
import { chromium } from 'playwright-core'
import type { Browser, Page } from 'playwright-core'
import { CLI, ROOT, runProc, startWorker, stopProc } from '../helpers/procs.ts'
import type { WorkerProc } from '../helpers/procs.ts'

/**
 * The package's launch flags, less the two that weaken the page's security
 * (this test checks that the page runs under its own CSP).
 */
const WEAKENING = new Set(['--disable-web-security', '--allow-running-insecure-content'])

async function launchBrowser (): Promise<Browser> {
  const path = process.env.CHROMIUM_PATH
  if (path !== undefined && path !== '') {
    await access(path).catch((err: unknown) => {
      throw new Error(`CHROMIUM_PATH=${path}: no browser there: unset it to use the one from @sparticuz/chromium`, { cause: err })
    })
    // Root in CI containers: Chromium's sandbox needs user namespaces it may not have.
    return await chromium.launch({ executablePath: path, headless: true, args: ['--no-sandbox'] })
  }
  const executablePath = await packaged.executablePath()
  return await chromium.launch({ executablePath, headless: true, args: packaged.args.filter((a) => !WEAKENING.has(a)) })
}
const config = { adverts: { intervalMs: 1000 } }
const workers: WorkerProc[] = []
let browser: Browser | undefined

before(async () => {
  const a = await startWorker({ models: 'demo/tiny-random', config })
  workers.push(a, await startWorker({ models: 'demo/lm-tiny-random', config, bootstrap: [a.multiaddrs[0]!] }))
  browser = await launchBrowser()
})

after(async () => {
  await browser?.close()
  await Promise.all(workers.map(async (w) => await stopProc(w.proc)))
})

/** The row of a peer on the page once it names the model (the page polls; a worker advertises before its models load). */
async function peerRow (page: Page, peerId: string, model: string): Promise<string> {
  const row = page.locator(`#peers tr[data-peer="${peerId}"]`).filter({ hasText: model })
  await row.waitFor({ timeout: 60_000 })
  return await row.innerText()
}

test('the status page shows the swarm, and a worker that joins appears without a reload', async () => {
  const [a, b] = workers as [WorkerProc, WorkerProc]
  const page = await browser!.newPage({ viewport: { width: 1400, height: 900 } })
  const problems: string[] = []
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`) })
  page.on('pageerror', (e) => { problems.push(`pageerror: ${e.message}`) })
  const requests: string[] = []
  page.on('request', (r) => { requests.push(r.url()) })
  let navigations = 0
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++ })

  const res = await page.goto(`${a.httpUrl}/`)
  assert.equal(res?.status(), 200)
  assert.match(res?.headers()['content-security-policy'] ?? '', /default-src 'none'/)
  await page.locator('#title').filter({ hasText: a.peerId }).waitFor({ timeout: 30_000 })
  // This node: its model, pinned CID, plan and why.
  const own = await page.locator('#models tr[data-model="demo/tiny-random"]').innerText()
  assert.match(own, /bafy\w+/)
  assert.match(own, /cpu \/ cpu \/ \w+ \/ \d+ threads?/)
  assert.match(own, /provider cpu:/)
  // The swarm: the other worker, its model and hardware summary.
  const bRow = await peerRow(page, b.peerId, 'demo/lm-tiny-random')
  assert.match(bRow, /demo\/lm-tiny-random \(lm, cpu\//)
  assert.match(bRow, /cores/)
  // A job run here (the only embed worker so far) shows in the recent jobs as it ends.
  const job = await runProc([CLI, 'submit', 'embed', '--text', 'a private input', '--no-mdns', '--data-dir', a.dataDir, '--json'], { timeoutMs: 60_000 })
  assert.equal(job.code, 0, job.stderr)
  const jobId = (JSON.parse(job.stdout) as { jobId: string }).jobId
  const jobRow = page.locator('#jobs tr').filter({ hasText: jobId })
  await jobRow.waitFor({ timeout: 30_000 })
  assert.match(await jobRow.innerText(), /embed\s+demo\/tiny-random\s+ok\s+[\d.]+/)
  assert.ok(!(await page.content()).includes('a private input'), 'no job input on the page')

  // A third worker joins through the second: the first hears its adverts by gossip.
  const c = await startWorker({ models: 'demo/tiny-random', config, bootstrap: [b.multiaddrs[0]!] })
  workers.push(c)
  const cRow = await peerRow(page, c.peerId, 'demo/tiny-random')
  assert.match(cRow, /demo\/tiny-random \(embed, cpu\//)
  assert.equal(navigations, 1, 'the page updated in place: no reload')
  assert.ok(requests.filter((u) => u.endsWith('/status.json')).length >= 2, 'it polls /status.json')
  assert.deepEqual(requests.filter((u) => !u.startsWith(a.httpUrl)), [], 'no request leaves the node (no CDN, no external asset)')
  assert.match(await page.locator('#swarm-summary').innerText(), /2 workers advertised/)

  const dir = join(process.env.TEST_ARTIFACTS ?? join(ROOT, 'test', 'artifacts'))
  await mkdir(dir, { recursive: true })
  const shot = join(dir, 'status-page.png')
  await page.screenshot({ path: shot, fullPage: true })
  console.log(`status page screenshot: ${shot}`)
  assert.deepEqual(problems, [], 'no console error or CSP violation')
})
