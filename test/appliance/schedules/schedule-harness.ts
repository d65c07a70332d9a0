// Test helpers for schedules and step mail: appliances opened one after another on the same data
// folder (a restart), each with its own clock, their log lines kept in memory; the last one is
// closed in teardown.

import { Writable } from 'node:stream'
import type { Test } from 'tap'
import pino from 'pino'
import { Appliance } from '../../../appliance/appliance.js'
import { loggerOptions } from '../../../appliance/logger.js'
import type { Config } from '../../../appliance/config.js'
import type { Broadcast } from '../../../appliance/broadcasts.js'
import type { GatewaySimulator } from '../../../ops/gateway-simulator.js'
import { startSimulators, testConfig } from '../../helpers.js'

export interface Restarts {
  config: Config
  simulators: Record<string, GatewaySimulator>
  /** every log line of every appliance opened, parsed */
  lines: Array<Record<string, unknown>>
  /** closes the running appliance, if any, and opens another on the same data folder */
  open: (now?: () => Date) => Promise<Appliance>
}

export async function restarts (t: Test, config: Record<string, unknown> = {}): Promise<Restarts> {
  const simulators = await startSimulators(t)
  const checked = testConfig(t.testdir(), simulators, config)
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line))
      done()
    }
  })
  const log = pino({ ...loggerOptions('info'), level: 'info' }, sink)
  let current: Appliance | undefined
  t.teardown(async () => { await current?.close() })

  const open = async (now?: () => Date): Promise<Appliance> => {
    await current?.close()
    current = undefined
    current = Appliance.open(checked, now === undefined ? { log } : { log, now })
    return current
  }
  return { config: checked, simulators, lines, open }
}

/** A clock standing at an instant and moved by hand. */
export function clock (at: string | number): { now: () => Date, set: (to: string | number) => void } {
  let ms = typeof at === 'string' ? Date.parse(at) : at
  return { now: () => new Date(ms), set: (to) => { ms = typeof to === 'string' ? Date.parse(to) : to } }
}

/** An instant as an ISO time with the +09:00 offset, as a Japanese client writes it. */
export function jst (ms: number): string {
  return new Date(ms + 9 * 3_600_000).toISOString().replace('Z', '+09:00')
}

/** Broadcasts a sender made (createdBy), oldest first. */
export function broadcastsBy (appliance: Appliance, createdBy: string): Broadcast[] {
  return appliance.book.list(undefined, 10_000).filter((b) => b.createdBy === createdBy).reverse()
}

export function accepted (simulators: Record<string, GatewaySimulator>): number {
  return Object.values(simulators).reduce((n, s) => n + s.stats().acceptedRecipients, 0)
}

export function duplicates (simulators: Record<string, GatewaySimulator>): number {
  return Object.values(simulators).reduce((n, s) => n + s.duplicates(), 0)
}
