import type { Command } from '../command.ts'

export const startCommand: Command = {
  name: 'start',
  summary: '(not built yet)',
  help: 'Usage: ipfs-accelerate start',
  options: {}
}
