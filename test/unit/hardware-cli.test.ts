/**
 * The real CLI as a child process: `ipfs-accelerate hardware [--json]`,
 * once with a fake nvidia-smi first on PATH, once on this machine as it is.
 * These run the real probes (systeminformation, the onnxruntime child).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { defaultBindingDir } from '../../hardware/providers.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const NODE = join(ROOT, 'node_modules/.bin/node')
const BIN = join(ROOT, 'bin/ipfs-accelerate.js')
const FIXTURES = join(ROOT, 'test/fixtures/hardware')
const pexec = promisify(execFile)

interface CliResult { code: number, stdout: string, stderr: string, ms: number }

async function cli (args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  const t = performance.now()
  try {
    const r = await pexec(NODE, [BIN, ...args], { cwd: ROOT, env: { ...env, IPFS_ACCELERATE_LOG_LEVEL: 'error' }, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 })
    return { code: 0, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t }
  } catch (err) {
    const e = err as { code?: number, stdout?: string, stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '', ms: performance.now() - t }
  }
}

const cudaLibsPresent = existsSync(join(defaultBindingDir(), 'libonnxruntime_providers_cuda.so'))

test('a fake nvidia-smi first on PATH: `hardware --json` reports its GPUs, and each plan uses CUDA or says why not', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'hw-fake-smi-'))
  try {
    const script = join(dir, 'nvidia-smi')
    await writeFile(script, `#!/bin/sh
case "$1" in
  --query-gpu=*) cat '${join(FIXTURES, 'nvidia-smi-2x-h100-nvl.csv')}' ;;
  -q) cat '${join(FIXTURES, 'nvidia-smi-q-compute-2x-h100-nvl.txt')}' ;;
  *) echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 2 ;;
esac
`)
    await chmod(script, 0o755)
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dir}${delimiter}${process.env.PATH ?? ''}` }
    delete env.CUDA_VISIBLE_DEVICES
    const r = await cli(['hardware', '--json'], env)
    t.diagnostic(`hardware --json with a fake nvidia-smi took ${Math.round(r.ms)} ms`)
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout)
    const nvidia = out.gpus.filter((g: { source: string }) => g.source === 'nvidia-smi')
    assert.deepEqual(nvidia.map((g: Record<string, unknown>) => [g.vendor, g.name, g.memoryTotalMB, g.memoryFreeMB, g.computeCapability, g.cudaVersion, g.cudaOrdinal]), [
      ['nvidia', 'NVIDIA H100 NVL', 95830, 95235, '9.0', '12.4', 0],
      ['nvidia', 'NVIDIA H100 NVL', 95830, 95235, '9.0', '12.4', 1]
    ])
    assert.equal(out.probes.find((p: { probe: string }) => p.probe === 'nvidia-smi').path, script)
    assert.deepEqual(out.summary.gpus.slice(0, 2).map((g: { name: string }) => g.name), ['NVIDIA H100 NVL', 'NVIDIA H100 NVL'])
    const models = JSON.parse(readFileSync(join(ROOT, 'models.json'), 'utf8')).models as Array<{ id: string }>
    assert.deepEqual(out.plans.map((p: { modelId: string }) => p.modelId), models.map((m) => m.id))
    // Where the CUDA provider libraries are installed, the provider's state is the real probe's
    // (a GPU host with them works; without a driver the probe session fails); the plans must agree with it either way.
    const cuda = out.providers.find((p: { name: string }) => p.name === 'cuda')
    if (cudaLibsPresent) {
      t.diagnostic(`CUDA provider libraries are installed here: cuda available=${cuda.available} (${cuda.reason})`)
      assert.doesNotMatch(cuda.reason, /missing from/)
    } else {
      assert.equal(cuda.available, false)
      assert.match(cuda.reason, /libonnxruntime_providers_cuda\.so/)
    }
    if (cuda.available === true) {
      // Every plan runs on CUDA or says why not.
      for (const plan of out.plans) assert.ok(plan.provider === 'cuda' || plan.fallbacks.some((f: { provider: string, reason: string }) => f.provider === 'cuda' && f.reason.length > 0), `${plan.modelId}: CUDA works but the plan is ${plan.provider}: ${JSON.stringify(plan.fallbacks)}`)
      return
    }
    for (const plan of out.plans) {
      assert.notEqual(plan.provider, 'cuda')
      const why = plan.fallbacks.find((f: { provider: string }) => f.provider === 'cuda')
      assert.ok(why.reason.startsWith(`nvidia-smi reports 2 NVIDIA GPUs, but ONNX Runtime's CUDA provider is not usable: ${cuda.reason}`), why.reason)
    }
    // Forcing CUDA there is a start-up error, not a CPU run.
    const forced = await cli(['hardware', '--device', 'cuda:1'], env)
    assert.equal(forced.code, 1)
    assert.match(forced.stderr, /^error ERR_DEVICE_UNAVAILABLE: .*device "cuda:1" was requested, but nvidia-smi reports 2 NVIDIA GPUs/m)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('on this machine: the real CPU and its flags; the CPU provider with a quantized dtype where the CPU has int8 instructions and the model a batch-independent quantized dtype', async (t) => {
  const r = await cli(['hardware', '--json'])
  t.diagnostic(`hardware --json on this machine took ${Math.round(r.ms)} ms`)
  assert.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : ''
  const kernelFlags = new Set((/^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? '').split(/\s+/))
  assert.ok(Array.isArray(out.cpu.flags) && out.cpu.flags.every((f: string) => f === f.toLowerCase()))
  for (const f of ['avx2', 'avx512f', 'avx512bw', 'avx512_vnni']) {
    assert.equal(out.cpu.flags.includes(f), kernelFlags.has(f), `flag ${f}`)
  }
  assert.ok(out.cpu.cores.physical >= 1 && out.cpu.cores.logical >= out.cpu.cores.physical)
  assert.ok(out.memory.totalMB > 0)
  assert.ok(Array.isArray(out.gpus))
  assert.deepEqual(out.providers.map((p: { name: string }) => p.name).sort(), ['cpu', 'cuda', 'tensorrt', 'webgpu'])
  for (const p of out.providers) assert.ok(typeof p.available === 'boolean' && typeof p.reason === 'string' && p.reason.length > 0)
  const cpu = out.providers.find((p: { name: string }) => p.name === 'cpu')
  assert.equal(cpu.available, true, cpu.reason)
  t.diagnostic(`provider probe: ${out.probes.find((p: { probe: string }) => p.probe === 'onnxruntime').ms} ms; ${out.providers.map((p: { name: string, available: boolean }) => `${p.name}=${p.available}`).join(' ')}`)
  const int8 = ['avx2', 'avx512_vnni', 'avx_vnni', 'amx_int8'].some((f) => kernelFlags.has(f))
  for (const plan of out.plans) {
    if (plan.provider !== 'cpu') continue
    const model = JSON.parse(readFileSync(join(ROOT, 'models.json'), 'utf8')).models.find((m: { id: string }) => m.id === plan.modelId)
    // By default only batch-independent dtypes are planned (a hub export's q8 is dynamically quantized, so not one).
    const reproducible: string[] = (model.reproducibleDtypes ?? ['fp32', 'fp16']).filter((d: string) => model.dtypes.includes(d))
    const quantized = reproducible.includes('q8') || reproducible.includes('int8')
    assert.equal(plan.dtype === 'q8' || plan.dtype === 'int8', int8 && quantized, `${plan.modelId}: ${plan.reasons.join('; ')}`)
    assert.equal(plan.reproducible, true, `${plan.modelId}: ${plan.dtype}`)
    assert.ok(plan.reasons.length >= 3)
  }

  const table = await cli(['hardware'])
  assert.equal(table.code, 0, table.stderr)
  assert.match(table.stdout, /^CPU {7}/m)
  assert.match(table.stdout, /^Execution providers$/m)
  assert.match(table.stdout, /^Plans \(\d+ models?\)$/m)
})

test('--help, and bad arguments exit 2', async () => {
  const help = await cli(['hardware', '--help'])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /--json/)
  assert.match(help.stdout, /--device <spec>/)
  const bad = await cli(['hardware', '--device', 'gpu'])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /ERR_USAGE: --device: invalid device "gpu"/)
  const sessions = await cli(['hardware', '--sessions', 'lots'])
  assert.equal(sessions.code, 2)
})
