/**
 * Component loggers writing one line per event to stderr. Level from
 * IPFS_ACCELERATE_LOG_LEVEL (error|warn|info|debug, default info); format
 * from IPFS_ACCELERATE_LOG_FORMAT (text|json, default text).
 * Never log tensors, job payloads or keys.
 */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug'
const LEVELS: Readonly<Record<LogLevel, number>> = Object.freeze({ error: 0, warn: 1, info: 2, debug: 3 })

export type LogFields = Record<string, unknown>

export interface Logger {
  error(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  debug(msg: string, fields?: LogFields): void
  child(component: string): Logger
}

interface LoggerState { level: number, json: boolean, write: (line: string) => void }

function readLevel (): number {
  const raw = process.env.IPFS_ACCELERATE_LOG_LEVEL
  if (raw !== undefined && raw in LEVELS) return LEVELS[raw as LogLevel]
  return LEVELS.info
}

const state: LoggerState = {
  level: readLevel(),
  json: process.env.IPFS_ACCELERATE_LOG_FORMAT === 'json',
  write: (line) => { process.stderr.write(line + '\n') }
}

export function setLogLevel (level: LogLevel): void { state.level = LEVELS[level] }
export function setLogSink (write: (line: string) => void): void { state.write = write }

function fmtValue (v: unknown): string {
  if (typeof v === 'string') return /\s/.test(v) ? JSON.stringify(v) : v
  if (v instanceof Error) return JSON.stringify(v.message)
  return JSON.stringify(v)
}

export function forComponent (component: string): Logger {
  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (LEVELS[level] > state.level) return
    const time = new Date().toISOString()
    if (state.json) {
      state.write(JSON.stringify({ time, level, component, msg, ...fields }))
      return
    }
    const extra = fields === undefined ? '' : Object.entries(fields).map(([k, v]) => ` ${k}=${fmtValue(v)}`).join('')
    state.write(`${time} ${level.padEnd(5)} ${component}: ${msg}${extra}`)
  }
  return {
    error: (m, f) => { emit('error', m, f) },
    warn: (m, f) => { emit('warn', m, f) },
    info: (m, f) => { emit('info', m, f) },
    debug: (m, f) => { emit('debug', m, f) },
    child: (c) => forComponent(`${component}:${c}`)
  }
}
