import { test } from 'node:test'
import assert from 'node:assert/strict'
import { classifyVendor, detectOtherGpus, SI_GRAPHICS_CHILD, withoutVendors } from '../../hardware/gpu-other.ts'
import { exit, fakeRunner, fixture, ok, timeout } from '../fixtures/hardware/fakes.ts'

test('a laptop: Intel iGPU (shared memory, no size) and an NVIDIA dGPU', async () => {
  const run = fakeRunner(() => ok(fixture('si-graphics-laptop.json')))
  const d = await detectOtherGpus({ run, nodePath: '/node' })
  assert.equal(run.calls[0]?.file, '/node')
  assert.deepEqual(run.calls[0]?.args, [SI_GRAPHICS_CHILD])
  assert.equal(d.probe.status, 'ok')
  assert.deepEqual(d.gpus.map((g) => [g.vendor, g.name, g.memoryTotalMB, g.source]), [
    ['intel', 'Alder Lake-P GT2 [Iris Xe Graphics]', undefined, 'systeminformation'],
    ['nvidia', 'GA107M [GeForce RTX 3050 Mobile]', 4096, 'systeminformation']
  ])
  // When nvidia-smi answered, its GPUs are not listed twice.
  assert.deepEqual(withoutVendors(d.gpus, new Set(['nvidia'])).map((g) => g.vendor), ['intel'])
})

test('no display controllers (recorded on the dev VM)', async () => {
  const d = await detectOtherGpus({ run: fakeRunner(() => ok(fixture('si-graphics-none.json'))), nodePath: '/node' })
  assert.equal(d.probe.status, 'ok')
  assert.deepEqual(d.gpus, [])
  assert.match(d.probe.reason, /no display controllers/)
})

test('hung, failing or babbling child: a reason each', async () => {
  assert.equal((await detectOtherGpus({ run: fakeRunner(() => timeout()), nodePath: '/node' })).probe.status, 'timeout')
  assert.equal((await detectOtherGpus({ run: fakeRunner(() => exit(1, '', 'boom')), nodePath: '/node' })).probe.status, 'failed')
  const junk = await detectOtherGpus({ run: fakeRunner(() => ok('not json')), nodePath: '/node' })
  assert.equal(junk.probe.status, 'unexpected-output')
})

test('vendor names', () => {
  assert.equal(classifyVendor('NVIDIA Corporation'), 'nvidia')
  assert.equal(classifyVendor('Advanced Micro Devices, Inc. [AMD/ATI]'), 'amd')
  assert.equal(classifyVendor('Intel Corporation'), 'intel')
  assert.equal(classifyVendor('Apple'), 'apple')
  assert.equal(classifyVendor('ASPEED Technology, Inc.'), 'other')
})
