import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cleanOrtError, ORT_PROBE_CHILD, parseOrtReport, probeProviders, providerStatuses } from '../../hardware/providers.ts'
import { tinyAddModel } from '../../hardware/tiny-model.ts'
import { exit, fakeRunner, ok, timeout } from '../fixtures/hardware/fakes.ts'

// What the real child printed on the dev VM (onnxruntime-node 1.30.0, no GPU, no CUDA libraries).
const BACKENDS = '{"type":"backends","backends":[{"name":"cpu","bundled":true},{"name":"webgpu","bundled":true},{"name":"cuda","bundled":false},{"name":"tensorrt","bundled":false}]}\n'
const CPU_OK = '{"type":"probe","provider":"cpu","ok":true,"ms":26}\n'
const WEBGPU_FAIL = '{"type":"probe","provider":"webgpu","ok":false,"error":"/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::webgpu::WebGpuContext::Initialize(const onnxruntime::webgpu::WebGpuContextConfig&)::<lambda()> adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters\\n","ms":1}\n'
const CUDA_FAIL = '{"type":"probe","provider":"cuda","ok":false,"error":"OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library","ms":0}\n'

const BIN = '/nm/onnxruntime-node/bin/napi-v6/linux/x64'
const inputs = (run: ReturnType<typeof fakeRunner>, libs: string[] = []): Parameters<typeof probeProviders>[0] => ({
  run, nodePath: '/node', bindingDir: BIN, platform: 'linux', fileExists: async (p) => libs.some((l) => p === `${BIN}/${l}`)
})

test('CPU-only host without CUDA libraries: cpu works, webgpu has no adapter, cuda/tensorrt lack their libraries', async () => {
  const run = fakeRunner(() => ok(BACKENDS + CPU_OK + WEBGPU_FAIL))
  const r = await probeProviders(inputs(run))
  // Providers without their libraries are not session-probed at all.
  assert.deepEqual(run.calls[0]?.args, [ORT_PROBE_CHILD, 'cpu', 'webgpu'])
  const by = Object.fromEntries(r.providers.map((p) => [p.name, p]))
  assert.equal(by.cpu?.available, true)
  assert.equal(by.webgpu?.available, false)
  assert.equal(by.webgpu?.reason, 'a probe session failed: Failed to get a WebGPU adapter: No supported adapters')
  assert.equal(by.cuda?.available, false)
  assert.match(by.cuda?.reason ?? '', /libonnxruntime_providers_shared\.so, libonnxruntime_providers_cuda\.so are missing from \/nm\/onnxruntime-node/)
  assert.deepEqual(by.cuda?.libraries, [{ file: 'libonnxruntime_providers_shared.so', present: false }, { file: 'libonnxruntime_providers_cuda.so', present: false }])
  assert.match(by.tensorrt?.reason ?? '', /libonnxruntime_providers_tensorrt\.so/)
  assert.equal(r.probe.status, 'ok')
  assert.equal(r.probe.reason, 'usable providers: cpu')
})

test('CUDA libraries present but the session fails: the probe error is the reason', async () => {
  const run = fakeRunner(() => ok(BACKENDS + CPU_OK + WEBGPU_FAIL + CUDA_FAIL))
  const r = await probeProviders(inputs(run, ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so']))
  assert.deepEqual(run.calls[0]?.args, [ORT_PROBE_CHILD, 'cpu', 'webgpu', 'cuda'])
  const cuda = r.providers.find((p) => p.name === 'cuda')
  assert.equal(cuda?.available, false)
  assert.equal(cuda?.reason, 'a probe session failed: OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library')
})

test('CUDA works when its probe session ran', async () => {
  const run = fakeRunner(() => ok(BACKENDS + CPU_OK + WEBGPU_FAIL + '{"type":"probe","provider":"cuda","ok":true,"ms":812}\n'))
  const r = await probeProviders(inputs(run, ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so']))
  const cuda = r.providers.find((p) => p.name === 'cuda')
  assert.equal(cuda?.available, true)
  assert.equal(cuda?.probeMs, 812)
  assert.match(cuda?.reason ?? '', /provider libraries present; a probe session ran on it in 812 ms/)
})

test('a probe that hangs (WebGPU) times out: earlier answers are kept, the rest say why', async () => {
  const run = fakeRunner(() => timeout(BACKENDS + CPU_OK))
  const r = await probeProviders({ ...inputs(run), timeoutMs: 2000 })
  const by = Object.fromEntries(r.providers.map((p) => [p.name, p]))
  assert.equal(by.cpu?.available, true)
  assert.equal(by.webgpu?.available, false)
  assert.match(by.webgpu?.reason ?? '', /did not finish: the onnxruntime probe child did not answer within 2000 ms/)
  assert.equal(r.probe.status, 'timeout')
})

test('a child that crashes before printing anything: every provider says so', async () => {
  const run = fakeRunner(() => ({ kind: 'signal', signal: 'SIGSEGV', stdout: '', stderr: 'Segmentation fault', ms: 30 }))
  const r = await probeProviders(inputs(run))
  assert.ok(r.providers.every((p) => !p.available && /killed by SIGSEGV/.test(p.reason)))
  assert.equal(r.probe.status, 'failed')
})

test('a child that prints garbage', async () => {
  const r = await probeProviders(inputs(fakeRunner(() => ok('Warning: Couldn\'t load Vulkan\nnot json\n'))))
  assert.ok(r.providers.every((p) => !p.available && /not probe results/.test(p.reason)))
  assert.equal(r.probe.status, 'unexpected-output')
})

test('a child that exits non-zero after its backends line', async () => {
  const r = await probeProviders(inputs(fakeRunner(() => exit(1, BACKENDS, 'Error: boom'))))
  assert.equal(r.providers.find((p) => p.name === 'cpu')?.available, false)
  assert.match(r.providers.find((p) => p.name === 'cpu')?.reason ?? '', /exited with code 1/)
})

test('a provider onnxruntime-node does not list', () => {
  const report = parseOrtReport('{"type":"backends","backends":[{"name":"cpu","bundled":true}]}\n' + CPU_OK)
  const s = providerStatuses(report, {}, BIN, 1000)
  assert.match(s.find((p) => p.name === 'webgpu')?.reason ?? '', /does not list the webgpu backend/)
  assert.equal(s.find((p) => p.name === 'cpu')?.available, true)
})

test('cleanOrtError keeps the actionable part', () => {
  assert.equal(cleanOrtError('/onnxruntime_src/x.cc:1 f() cond was false. Failed to get a WebGPU adapter: No supported adapters\n'), 'Failed to get a WebGPU adapter: No supported adapters')
  assert.equal(cleanOrtError('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library'), 'OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library')
})

test('the probe model is a valid, small ONNX ModelProto', () => {
  const bytes = tinyAddModel()
  assert.ok(bytes.length > 20 && bytes.length < 200)
  assert.equal(bytes[0], 0x08, 'field 1 (ir_version) first')
})
