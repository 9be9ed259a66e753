/**
 * Child process of gpu-other.ts: prints systeminformation.graphics()'s
 * controllers as one JSON line. It runs apart because graphics() calls
 * lspci, nvidia-smi (synchronously, with no time limit) and more: a hung
 * tool here is killed with this process instead of blocking the node.
 */
import si from 'systeminformation'

const data = await si.graphics()
process.stdout.write(JSON.stringify({ controllers: data.controllers }) + '\n')
