// Runs everywhere in the main thread: the one root logger. Addresses, tokens and passwords are
// redacted by path; components take child loggers. Pretty output is left to the operator's tools.

import pino, { type Logger, type LoggerOptions } from 'pino'

export const REDACT_PATHS = [
  'address', '*.address', 'email', '*.email', 'to', '*.to',
  'token', '*.token', 'password', '*.password', 'secret', '*.secret',
  'req.headers.authorization', 'req.headers.cookie', 'headers.authorization'
]

export function loggerOptions (level: string): LoggerOptions {
  return {
    level: process.env.LOG_LEVEL ?? level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { app: 'mimamori' },
    timestamp: pino.stdTimeFunctions.isoTime
  }
}

export function createLogger (level: string): Logger {
  return pino(loggerOptions(level))
}
