import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatBytes, formatDuration, ProgressBar } from '../../src/store/progress.ts'

function sink (isTTY: boolean): { out: { write: (s: string) => boolean, isTTY: boolean, columns: number }, text: () => string } {
  let text = ''
  return { out: { write: (s) => { text += s; return true }, isTTY, columns: 120 }, text: () => text }
}

test('plain lines every interval: bytes, rate, ETA; a final line with the duration', () => {
  let now = 0
  const s = sink(false)
  const bar = new ProgressBar({ out: s.out, label: 'pull', intervalMs: 2000, now: () => now })
  now = 1000; bar.update(50e6, 200e6)
  now = 1500; bar.update(75e6, 200e6)
  now = 2000; bar.update(100e6, 200e6)
  now = 4000; bar.update(150e6, 200e6)
  bar.finish()
  const lines = s.text().trim().split('\n')
  assert.equal(lines.length, 3, s.text())
  assert.match(lines[0] ?? '', /^pull\s+25% 47\.7 MiB \/ 190\.7 MiB\s+47\.7 MiB\/s\s+ETA 3\.0s$/)
  assert.match(lines[1] ?? '', /75% .* ETA 1\.3s$/)
  assert.match(lines[2] ?? '', /in 4\.0s$/)
})

test('on a TTY one bar is redrawn in place', () => {
  let now = 0
  const s = sink(true)
  const bar = new ProgressBar({ out: s.out, label: 'pull', now: () => now })
  for (let i = 1; i <= 10; i++) { now = i * 200; bar.update(i * 10e6, 100e6) }
  bar.finish()
  assert.ok(s.text().startsWith('\r\x1b[2K['))
  assert.ok(s.text().endsWith('\n'))
  assert.match(s.text(), /\[#{40}\] pull 100%/)
  assert.equal(formatBytes(1536), '1.5 KiB')
  assert.equal(formatDuration(3725), '1h02m')
})
