import { test } from 'node:test'
import assert from 'node:assert/strict'
import { detectCpu, int8Capability, parseCpuinfo } from '../../hardware/cpu.ts'
import type { CpuSources, SiCpu, SiMem } from '../../hardware/cpu.ts'
import { fixture } from '../fixtures/hardware/fakes.ts'

const MB = 1024 * 1024
const mem: SiMem = { total: 24106 * MB, free: 21000 * MB, available: 23000 * MB }

function sources (cpuinfo: string | Error, si: SiCpu | Error, arch = 'x64'): CpuSources {
  return {
    readFile: async () => { if (cpuinfo instanceof Error) throw cpuinfo; return cpuinfo },
    siCpu: async () => { if (si instanceof Error) throw si; return si },
    siMem: async () => mem,
    arch
  }
}

test('x86 with AVX-512 (recorded): every inference flag, VNNI and AMX', () => {
  const f = parseCpuinfo(fixture('cpuinfo-x86-avx512.txt'))
  assert.equal(f.vendor, 'GenuineIntel')
  assert.equal(f.model, 'Intel(R) Xeon(R) Processor')
  assert.equal(f.logicalCores, 2)
  assert.equal(f.physicalCores, 2)
  assert.deepEqual(f.flags, ['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'avx_vnni', 'amx_tile', 'amx_int8', 'amx_bf16'])
  assert.ok(f.allFlags.includes('avx512vl'))
  assert.ok(f.flags.every((x) => x === x.toLowerCase()))
  assert.equal(int8Capability(f)?.flag, 'amx_int8')
})

test('x86 with AVX2 only: no AVX-512, no VNNI; 6 cores / 12 threads', () => {
  const f = parseCpuinfo(fixture('cpuinfo-x86-avx2.txt'))
  assert.equal(f.model, 'Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz')
  assert.equal(f.logicalCores, 12)
  assert.equal(f.physicalCores, 6)
  assert.deepEqual(f.flags, ['sse4_2', 'avx', 'avx2', 'fma', 'f16c'])
  assert.equal(int8Capability(f)?.flag, 'avx2')
})

test('ARM (Graviton3): NEON, fp16, dotprod, i8mm, bf16, SVE; no topology in cpuinfo', () => {
  const f = parseCpuinfo(fixture('cpuinfo-arm64-graviton3.txt'))
  assert.equal(f.vendor, 'ARM')
  assert.equal(f.model, undefined)
  assert.equal(f.logicalCores, 4)
  assert.equal(f.physicalCores, undefined)
  assert.deepEqual(f.flags, ['neon', 'fp16', 'dotprod', 'i8mm', 'bf16', 'sve'])
  assert.equal(int8Capability(f)?.flag, 'i8mm')
})

test('an old CPU without AVX2 has no int8 capability', () => {
  assert.equal(int8Capability({ flags: ['sse4_2', 'avx'] }), undefined)
})

test('garbage is not /proc/cpuinfo', () => {
  assert.throws(() => parseCpuinfo('hello\nworld\n'), /no "processor" entries/)
  assert.throws(() => parseCpuinfo(''), /no "processor" entries/)
})

test('detectCpu: model from cpuinfo, topology from systeminformation', async () => {
  const d = await detectCpu(sources(fixture('cpuinfo-x86-avx2.txt'), { manufacturer: 'Intel', brand: 'Core™ i7-8700', vendor: 'GenuineIntel', cores: 12, physicalCores: 6 }))
  assert.equal(d.cpu.model, 'Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz')
  assert.deepEqual(d.cpu.cores, { physical: 6, logical: 12 })
  assert.deepEqual(d.memory, { totalMB: 24106, freeMB: 21000, availableMB: 23000 })
  assert.deepEqual(d.probes.map((p) => p.status), ['ok', 'ok'])
})

test('detectCpu on ARM: the model name comes from systeminformation (lscpu)', async () => {
  const d = await detectCpu(sources(fixture('cpuinfo-arm64-graviton3.txt'), { manufacturer: 'ARM', brand: 'Neoverse-V1', vendor: 'ARM', cores: 4, physicalCores: 4 }, 'arm64'))
  assert.equal(d.cpu.model, 'ARM Neoverse-V1')
  assert.equal(d.cpu.vendor, 'ARM')
  assert.equal(d.cpu.arch, 'arm64')
  assert.ok(d.cpu.flags.includes('sve'))
})

test('detectCpu: unreadable /proc/cpuinfo is a recorded probe failure, not a crash', async () => {
  const d = await detectCpu(sources(new Error('ENOENT: no such file'), { manufacturer: 'Apple', brand: 'M2', vendor: 'Apple', cores: 8, physicalCores: 8 }, 'arm64'))
  assert.equal(d.probes[0]?.status, 'missing')
  assert.match(d.probes[0]?.reason ?? '', /ENOENT/)
  assert.deepEqual(d.cpu.flags, [])
  assert.equal(d.cpu.model, 'Apple M2')
})

test('detectCpu: garbage cpuinfo and a failing systeminformation are both reported', async () => {
  const d = await detectCpu(sources('garbage', new Error('lscpu exploded')))
  assert.equal(d.probes[0]?.status, 'unexpected-output')
  assert.equal(d.probes[1]?.status, 'failed')
  assert.match(d.probes[1]?.reason ?? '', /lscpu exploded/)
  assert.equal(d.cpu.cores.physical, 1)
})
