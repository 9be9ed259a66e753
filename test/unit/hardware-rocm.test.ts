import { test } from 'node:test'
import assert from 'node:assert/strict'
import { detectRocm, parseRocmJson, ROCM_ARGS } from '../../hardware/rocm.ts'
import { exit, fakePath, fakeRunner, fixture, ok, timeout } from '../fixtures/hardware/fakes.ts'

const path = fakePath('rocm-smi')

test('ROCm 6 JSON: two MI210 with VRAM in MB, gfx target and unique id', async () => {
  const run = fakeRunner(() => ok(fixture('rocm-smi-6-2x-mi210.json')))
  const d = await detectRocm({ run, ...path })
  assert.equal(d.probe.status, 'ok')
  assert.deepEqual(run.calls[0]?.args, ROCM_ARGS)
  assert.deepEqual(d.gpus.map((g) => [g.vendor, g.index, g.name, g.memoryTotalMB, g.memoryUsedMB, g.memoryFreeMB, g.gfxVersion]), [
    ['amd', 0, 'AMD Instinct MI210', 65520, 10, 65510, 'gfx90a'],
    ['amd', 1, 'AMD Instinct MI210', 65520, 32768, 32752, 'gfx90a']
  ])
  assert.equal(d.gpus[0]?.uuid, '0x5f4c8a3e21b97d06')
})

test('ROCm 5 key spelling ("Card series") and N/A ids', () => {
  const [g] = parseRocmJson(fixture('rocm-smi-5-rx7900xtx.json'))
  assert.equal(g?.name, 'Radeon RX 7900 XTX')
  assert.equal(g?.memoryTotalMB, 24560)
  assert.equal(g?.uuid, undefined)
})

test('warnings before the JSON are skipped; a "system" entry is not a card', () => {
  const gpus = parseRocmJson('WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status\n\n{"card0": {"Card Series": "AMD Instinct MI300X", "VRAM Total Memory (B)": "205822885888", "VRAM Total Used Memory (B)": "0"}, "system": {"Driver version": "6.8.5"}}\n')
  assert.equal(gpus.length, 1)
  assert.equal(gpus[0]?.driverVersion, '6.8.5')
  assert.equal(gpus[0]?.memoryFreeMB, 196288)
})

test('garbage, non-card JSON and bad numbers are errors', () => {
  assert.throws(() => parseRocmJson('========= ROCm System Management Interface =========\n'), /no JSON object/)
  assert.throws(() => parseRocmJson('{"card0": '), /invalid JSON/)
  assert.throws(() => parseRocmJson('{"system": {}}'), /no cardN entries/)
  assert.throws(() => parseRocmJson('{"card0": {"VRAM Total Memory (B)": "64 GB"}}'), /expected a byte count/)
})

test('missing tool, timeout, failure and garbage each give a reason', async () => {
  const none = await detectRocm({ run: fakeRunner(() => ok('')), pathEnv: '/usr/bin', isExecutable: async () => false })
  assert.equal(none.probe.status, 'missing')
  assert.match(none.probe.reason, /rocm-smi not found on PATH/)
  const hung = await detectRocm({ run: fakeRunner(() => timeout()), ...path })
  assert.equal(hung.probe.status, 'timeout')
  const failed = await detectRocm({ run: fakeRunner(() => exit(1, '', 'ERROR: GPU[0]\t\t: Unable to read /sys/class/drm/card0\n')), ...path })
  assert.equal(failed.probe.status, 'failed')
  assert.match(failed.probe.reason, /Unable to read/)
  const junk = await detectRocm({ run: fakeRunner(() => ok(fixture('nvidia-smi-garbage.txt'))), ...path })
  assert.equal(junk.probe.status, 'unexpected-output')
  assert.deepEqual(junk.gpus, [])
})
