/**
 * The status page: one self-contained HTML document (no external asset, no
 * CDN: it works offline), which polls `/status.json` every two seconds and
 * redraws. Polling rather than server-sent events: the page, `status` and
 * tests read the same document, the server holds no long-lived response
 * (which would keep the HTTP server from closing at shutdown), and a tab
 * costs one small request per poll.
 *
 * Peers' adverts are untrusted text: the script builds the DOM with
 * `textContent` only, never HTML strings, and the Content-Security-Policy
 * allows this page's own script and style (by hash) and requests to its own
 * origin, nothing else.
 */
import { createHash } from 'node:crypto'

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1b1f24; background: #fafafa }
h1 { font-size: 1.3rem; margin: 0 0 .3rem } h2 { font-size: 1.1rem; margin: 1.4rem 0 .4rem }
code, .mono { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all }
table { border-collapse: collapse; width: 100%; background: #fff } th, td { border: 1px solid #d0d7de; padding: .25rem .45rem; text-align: left; vertical-align: top }
th { background: #f0f3f6 } .ok { color: #1a7f37 } .bad { color: #cf222e } .muted { color: #656d76 }
#banner { padding: .4rem .6rem; background: #ffebe9; border: 1px solid #cf222e; margin: .5rem 0 } #banner[hidden] { display: none }
ul { margin: .2rem 0; padding-left: 1.2rem }
`

const SCRIPT = `
'use strict'
const $ = (id) => document.getElementById(id)
function el (tag, attrs, ...kids) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v))
  for (const k of kids.flat()) e.append(k instanceof Node ? k : document.createTextNode(k === null || k === undefined ? '' : String(k)))
  return e
}
function table (head, rows) {
  return el('table', {}, el('thead', {}, el('tr', {}, head.map((h) => el('th', {}, h)))), el('tbody', {}, rows))
}
const yes = (b) => el('span', { class: b ? 'ok' : 'bad' }, b ? 'yes' : 'no')
const num = (x, unit) => x === null || x === undefined ? '-' : String(x) + (unit ? ' ' + unit : '')
function hw (h) {
  if (!h) return 'unknown'
  const gpus = h.gpus.length === 0 ? 'no GPU' : h.gpus.map((g) => g.name + ' (' + g.memoryTotalMB + ' MB)').join(', ')
  return h.cpu.model + ', ' + h.cpu.physicalCores + '/' + h.cpu.logicalCores + ' cores, ' + h.memoryTotalMB + ' MB; ' + gpus + '; providers ' + h.providers.join(', ')
}
function render (s) {
  $('title').textContent = 'Node ' + s.node.peerId
  $('state').textContent = s.status + ', up ' + s.node.uptimeS + ' s, updated ' + new Date().toLocaleTimeString()
  $('state').className = s.status === 'ok' ? 'ok' : 'bad'
  $('hardware').replaceChildren(el('p', {}, hw(s.node.hardware)), el('p', { class: 'muted' }, 'requested: device ' + s.node.requested.device + ', dtype ' + s.node.requested.dtype + (s.node.hardware ? '; CPU flags ' + s.node.hardware.cpu.flags.join(' ') : '')))
  $('models').replaceChildren(table(['model', 'skillset', 'CID', 'loaded', 'plan', 'load', 'queue', 'throughput', 'why'], s.node.models.map((m) => el('tr', { 'data-model': m.id },
    el('td', {}, m.id, m.randomWeights ? el('div', { class: 'bad' }, 'random weights') : ''), el('td', {}, m.skillset), el('td', { class: 'mono' }, m.cid), el('td', {}, yes(m.loaded)),
    el('td', {}, m.plan.device + ' / ' + m.plan.provider + ' / ' + m.plan.dtype + ' / ' + m.plan.threads + ' threads'),
    el('td', {}, m.loadMs + ' ms'), el('td', {}, m.queue.depth + ' jobs, cost ' + m.queue.queuedCost), el('td', {}, num(m.queue.throughput, m.queue.unit)),
    el('td', {}, el('ul', {}, m.plan.reasons.map((r) => el('li', {}, r)), m.plan.fallbacks.map((f) => el('li', { class: 'muted' }, 'not ' + f.provider + ': ' + f.reason))))))))
  $('swarm-summary').textContent = s.swarm.connectedPeers + ' connected peers, ' + s.swarm.peers.length + ' workers advertised'
  $('peers').replaceChildren(s.swarm.peers.length === 0 ? el('p', { class: 'muted' }, 'no other worker has advertised yet') : table(['peer', 'connected', 'models', 'hardware', 'queue', 'advert expires'], s.swarm.peers.map((p) => el('tr', { 'data-peer': p.peerId },
    el('td', { class: 'mono' }, p.peerId), el('td', {}, yes(p.connected)),
    el('td', {}, p.models.length === 0 ? el('span', { class: 'muted' }, 'none loaded yet') : el('ul', {}, p.models.map((m) => el('li', { 'data-model': m.id }, m.id + ' (' + m.skillset + ', ' + m.provider + '/' + m.dtype + (m.loaded ? '' : ', not loaded') + (m.throughput === null ? '' : ', ' + m.throughput + '/s') + ')')))),
    el('td', {}, hw(p.hardware)), el('td', {}, String(p.queueDepth)), el('td', {}, 'in ' + p.expiresInS + ' s')))))
  const totals = Object.entries(s.jobs.totals).map(([k, v]) => k + ' ' + v).join(', ') || 'none yet'
  $('jobs-summary').textContent = s.jobs.inHand + ' in hand, ' + s.jobs.queueDepth + ' queued or running; ended: ' + totals
  $('jobs').replaceChildren(s.jobs.recent.length === 0 ? el('p', { class: 'muted' }, 'no job has run here yet') : table(['job', 'skillset', 'model', 'outcome', 'ms', 'ended'], s.jobs.recent.map((j) => el('tr', {},
    el('td', { class: 'mono' }, j.id), el('td', {}, j.skillset), el('td', {}, j.model), el('td', { class: j.outcome === 'ok' ? 'ok' : 'bad' }, j.outcome), el('td', {}, String(j.ms)), el('td', {}, new Date(j.at).toLocaleTimeString())))))
}
async function poll () {
  try {
    const res = await fetch('/status.json', { cache: 'no-store' })
    if (!res.ok) throw new Error('the node answered ' + res.status)
    render(await res.json())
    $('banner').hidden = true
  } catch (err) {
    $('banner').hidden = false
    $('banner').textContent = 'Cannot reach the node (' + (err && err.message ? err.message : err) + '): showing the last status; retrying.'
  }
  setTimeout(poll, 2000)
}
poll()
`

const BODY = `<h1 id="title">ipfs-accelerate node</h1>
<div id="state" class="muted">loading…</div>
<div id="banner" hidden></div>
<h2>This node</h2><div id="hardware"></div><div id="models"></div>
<h2>Swarm</h2><div id="swarm-summary" class="muted"></div><div id="peers"></div>
<h2>Jobs</h2><div id="jobs-summary" class="muted"></div><div id="jobs"></div>`

function sha256 (text: string): string {
  return `'sha256-${createHash('sha256').update(text).digest('base64')}'`
}

/** The page and the Content-Security-Policy that lets only its own script and style run. */
export function statusPage (): { html: string, csp: string } {
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ipfs-accelerate status</title><style>${STYLE}</style></head>
<body>${BODY}<script>${SCRIPT}</script></body></html>
`
  const csp = `default-src 'none'; script-src ${sha256(SCRIPT)}; style-src ${sha256(STYLE)}; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`
  return { html, csp }
}
