import type { Command } from '../command.ts'

export const hardwareCommand: Command = {
  name: 'hardware',
  summary: '(not built yet)',
  help: 'Usage: ipfs-accelerate hardware',
  options: {}
}
