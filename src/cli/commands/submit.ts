import type { Command } from '../command.ts'

export const submitCommand: Command = {
  name: 'submit',
  summary: '(not built yet)',
  help: 'Usage: ipfs-accelerate submit',
  options: {}
}
