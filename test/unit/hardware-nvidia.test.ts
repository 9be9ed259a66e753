import { test } from 'node:test'
import assert from 'node:assert/strict'
import { applyCudaVisibility, detectNvidia, parseCudaVersion, parseNvidiaQuery, QUERY_FIELDS } from '../../hardware/nvidia.ts'
import { exit, fakePath, fakeRunner, fixture, missing, nvidiaSmi, ok, timeout } from '../fixtures/hardware/fakes.ts'

const path = fakePath('nvidia-smi')

test('data-centre GPU: one H100 with memory, compute capability, driver and CUDA version', async () => {
  const run = nvidiaSmi('nvidia-smi-h100.csv', 'nvidia-smi-q-compute-h100.txt')
  const d = await detectNvidia({ run, ...path })
  assert.equal(d.probe.status, 'ok')
  assert.equal(d.probe.path, '/fake/bin/nvidia-smi')
  assert.deepEqual(d.gpus, [{
    vendor: 'nvidia',
    index: 0,
    name: 'NVIDIA H100 80GB HBM3',
    source: 'nvidia-smi',
    uuid: 'GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1',
    memoryTotalMB: 81559,
    memoryFreeMB: 81106,
    memoryUsedMB: 1,
    computeCapability: '9.0',
    driverVersion: '565.57.01',
    pciBusId: '00000000:18:00.0',
    cudaVersion: '12.7',
    cudaOrdinal: 0
  }])
  // The tool is run without a shell, with the documented query and a time limit.
  assert.equal(run.calls[0]?.file, '/fake/bin/nvidia-smi')
  assert.deepEqual(run.calls[0]?.args, [`--query-gpu=${QUERY_FIELDS.join(',')}`, '--format=csv,noheader,nounits'])
  assert.equal(run.calls[0]?.options.timeoutMs, 5000)
})

test('consumer GPU: RTX 4090', async () => {
  const d = await detectNvidia({ run: nvidiaSmi('nvidia-smi-rtx4090.csv', 'nvidia-smi-q-compute-rtx4090.txt'), ...path })
  assert.equal(d.gpus.length, 1)
  assert.equal(d.gpus[0]?.name, 'NVIDIA GeForce RTX 4090')
  assert.equal(d.gpus[0]?.memoryTotalMB, 24564)
  assert.equal(d.gpus[0]?.computeCapability, '8.9')
  assert.equal(d.gpus[0]?.cudaVersion, '12.4')
})

test('two-GPU host: both GPUs, CUDA ordinals in order', async () => {
  const d = await detectNvidia({ run: nvidiaSmi('nvidia-smi-2x-h100-nvl.csv', 'nvidia-smi-q-compute-2x-h100-nvl.txt'), ...path })
  assert.deepEqual(d.gpus.map((g) => [g.index, g.name, g.cudaOrdinal, g.uuid]), [
    [0, 'NVIDIA H100 NVL', 0, 'GPU-806f8ea2-6428-1096-a076-bb687fb45fb0'],
    [1, 'NVIDIA H100 NVL', 1, 'GPU-db6d02a2-1413-eccf-8a17-d99eac29d365']
  ])
  assert.match(d.probe.reason, /^2 GPUs/)
})

test('missing tool: not on PATH, nothing is run', async () => {
  const run = fakeRunner(() => { throw new Error('must not run') })
  const d = await detectNvidia({ run, pathEnv: '/usr/bin:/bin', isExecutable: async () => false })
  assert.equal(d.probe.status, 'missing')
  assert.match(d.probe.reason, /not found on PATH/)
  assert.deepEqual(d.gpus, [])
  assert.equal(run.calls.length, 0)
})

test('tool vanishes between the PATH lookup and the run', async () => {
  const d = await detectNvidia({ run: fakeRunner(() => missing('/fake/bin/nvidia-smi')), ...path })
  assert.equal(d.probe.status, 'missing')
})

test('hung tool: timeout with a clear reason', async () => {
  const d = await detectNvidia({ run: fakeRunner(() => timeout()), ...path, timeoutMs: 1234 })
  assert.equal(d.probe.status, 'timeout')
  assert.match(d.probe.reason, /did not answer within 1234 ms/)
  assert.deepEqual(d.gpus, [])
})

test('driver not loaded (exit 9): its own message is the reason', async () => {
  const d = await detectNvidia({ run: fakeRunner(() => exit(9, fixture('nvidia-smi-driver-not-loaded.txt'))), ...path })
  assert.equal(d.probe.status, 'failed')
  assert.match(d.probe.reason, /exited with code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver/)
})

test('no devices (exit 6)', async () => {
  const d = await detectNvidia({ run: fakeRunner(() => exit(6, fixture('nvidia-smi-no-devices.txt'))), ...path })
  assert.equal(d.probe.status, 'failed')
  assert.match(d.probe.reason, /No devices were found/)
})

test('garbage output with exit 0 is "unexpected-output", never a GPU', async () => {
  const d = await detectNvidia({ run: fakeRunner(() => ok(fixture('nvidia-smi-garbage.txt'))), ...path })
  assert.equal(d.probe.status, 'unexpected-output')
  assert.match(d.probe.reason, /unexpected nvidia-smi output/)
  assert.deepEqual(d.gpus, [])
})

test('empty output with exit 0 is "unexpected-output"', async () => {
  const d = await detectNvidia({ run: fakeRunner(() => ok('')), ...path })
  assert.equal(d.probe.status, 'unexpected-output')
  assert.match(d.probe.reason, /no GPU rows/)
})

test('old driver without compute_cap: retried without it', async () => {
  const run = fakeRunner((_f, args) => {
    if (args[0]?.startsWith('--query-gpu=') === true) {
      return args[0].includes('compute_cap')
        ? exit(2, fixture('nvidia-smi-old-driver-compute-cap.txt'))
        : ok('0, Tesla V100-SXM2-16GB, GPU-0b5f1c2e-1111-2222-3333-444455556666, 16160, 15780, 380, 470.82.01, 00000000:00:1E.0\n')
    }
    return ok(fixture('nvidia-smi-q-compute-h100.txt'))
  })
  const d = await detectNvidia({ run, ...path })
  assert.equal(d.probe.status, 'ok')
  assert.equal(d.gpus[0]?.name, 'Tesla V100-SXM2-16GB')
  assert.equal(d.gpus[0]?.computeCapability, undefined)
  assert.match(d.probe.reason, /too old to report compute capability/)
  assert.equal(run.calls.filter((c) => c.args[0]?.startsWith('--query-gpu=') === true).length, 2)
})

test('CUDA version unknown when `-q` fails: GPUs still reported, the reason says so', async () => {
  const run = fakeRunner((_f, args) => args[0]?.startsWith('--query-gpu=') === true ? ok(fixture('nvidia-smi-h100.csv')) : timeout())
  const d = await detectNvidia({ run, ...path })
  assert.equal(d.probe.status, 'ok')
  assert.equal(d.gpus[0]?.cudaVersion, undefined)
  assert.match(d.probe.reason, /CUDA version unknown/)
})

test('parseNvidiaQuery: [N/A] fields are absent, not zero; a comma in the name survives', () => {
  const [g] = parseNvidiaQuery('0, NVIDIA A100-SXM4-40GB MIG 1g.5gb, Rev 2, GPU-aaaa, [N/A], [N/A], [Not Supported], 8.0, 535.104.05, 00000000:07:00.0\n')
  assert.equal(g?.name, 'NVIDIA A100-SXM4-40GB MIG 1g.5gb, Rev 2')
  assert.equal(g?.memoryTotalMB, undefined)
  assert.equal(g?.memoryFreeMB, undefined)
  assert.equal(g?.computeCapability, '8.0')
})

test('parseNvidiaQuery: wrong field counts and non-numbers are errors', () => {
  assert.throws(() => parseNvidiaQuery('0, only, three\n'), /expected 9/)
  assert.throws(() => parseNvidiaQuery('0, GPU, GPU-x, lots, 1, 1, 9.0, 1, 1\n'), /non-numeric memory.total/)
  assert.throws(() => parseNvidiaQuery('0, GPU, GPU-x, 1, 1, 1, nine, 1, 1\n'), /compute capability/)
})

test('parseCudaVersion reads both `-q` and plain headers', () => {
  assert.equal(parseCudaVersion(fixture('nvidia-smi-q-compute-2x-h100-nvl.txt')), '12.4')
  assert.equal(parseCudaVersion('| NVIDIA-SMI 565.57.01              Driver Version: 565.57.01      CUDA Version: 12.7     |'), '12.7')
  assert.equal(parseCudaVersion('nothing here'), undefined)
})

test('CUDA_VISIBLE_DEVICES hides and renumbers GPUs, as CUDA does', async () => {
  const all = parseNvidiaQuery(fixture('nvidia-smi-2x-h100-nvl.csv'))
  assert.deepEqual(applyCudaVisibility(all, '1').gpus.map((g) => g.index), [1])
  assert.deepEqual(applyCudaVisibility(all, '1,0').gpus.map((g) => g.index), [1, 0])
  assert.deepEqual(applyCudaVisibility(all, 'GPU-db6d02a2').gpus.map((g) => g.index), [1])
  assert.deepEqual(applyCudaVisibility(all, '0,7,1').gpus.map((g) => g.index), [0], 'the list ends at an unknown entry')
  assert.deepEqual(applyCudaVisibility(all, '').gpus, [])
  const d = await detectNvidia({ run: nvidiaSmi('nvidia-smi-2x-h100-nvl.csv', 'nvidia-smi-q-compute-2x-h100-nvl.txt'), ...path, cudaVisibleDevices: '1' })
  assert.deepEqual(d.gpus.map((g) => [g.index, g.cudaOrdinal]), [[0, undefined], [1, 0]])
  assert.match(d.probe.reason, /CUDA_VISIBLE_DEVICES="1" hides GPU 0/)
})

test('different GPUs without CUDA_DEVICE_ORDER=PCI_BUS_ID: a warning in the reason', async () => {
  const csv = fixture('nvidia-smi-rtx4090.csv') + fixture('nvidia-smi-h100.csv').replace(/^0,/, '1,')
  const run = fakeRunner((_f, args) => args[0]?.startsWith('--query-gpu=') === true ? ok(csv) : ok(fixture('nvidia-smi-q-compute-rtx4090.txt')))
  const d = await detectNvidia({ run, ...path })
  assert.match(d.probe.reason, /CUDA_DEVICE_ORDER=PCI_BUS_ID/)
  const d2 = await detectNvidia({ run, ...path, cudaDeviceOrder: 'PCI_BUS_ID' })
  assert.doesNotMatch(d2.probe.reason, /CUDA_DEVICE_ORDER/)
})
