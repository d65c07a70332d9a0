// Test harness for the HTTP face: an appliance on a fresh data folder with gateway simulators on
// 127.0.0.1:0, its Fastify instance (driven through inject()), API tokens, and every log line
// kept in memory so that a test can look for leaked addresses. All closed in teardown.

import { Writable } from 'node:stream'
import type { Test } from 'tap'
import pino from 'pino'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { Appliance, type BroadcastReport } from '../../appliance/appliance.js'
import { loggerOptions } from '../../appliance/logger.js'
import { createToken, type Scope } from '../../appliance/api-tokens.js'
import { parseAddress } from '../../appliance/address.js'
import { FINAL_STATES, type LedgerRow } from '../../appliance/ledger.js'
import { buildServer } from '../../control-plane/server.js'
import { createSampleCity, type SampleCity } from '../../ops/sample-city.js'
import type { GatewaySimulator, GatewaySimulatorOptions } from '../../ops/gateway-simulator.js'
import { startSimulators, testConfig } from '../helpers.js'

export interface ApiHarness {
  appliance: Appliance
  app: FastifyInstance
  city: SampleCity
  simulators: Record<string, GatewaySimulator>
  /** every log line the appliance and its HTTP server wrote, as JSON text */
  logLines: string[]
}

export interface HarnessOptions {
  simulators?: Record<string, GatewaySimulatorOptions>
  config?: Record<string, unknown>
}

const DELIVERY = { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2, slowdownSeconds: 0.1 }

/** Delivery settings that keep a broadcast running long enough to pause, cancel or opt out. */
export function slowDelivery (): HarnessOptions {
  const slow = { delayMs: 20 }
  return {
    simulators: { docomo: slow, au: slow, softbank: slow, default: slow },
    config: { delivery: { ...DELIVERY, workers: 1, batchSize: 5, tasksPerRoute: 1 } }
  }
}

export async function startApi (t: Test, options: HarnessOptions = {}): Promise<ApiHarness> {
  const simulators = await startSimulators(t, options.simulators)
  const config = testConfig(t.testdir(), simulators, options.config)

  // The level is set here, not from LOG_LEVEL: tap runs with LOG_LEVEL=silent.
  const logLines: string[] = []
  const sink = new Writable({
    write (chunk: Buffer, _encoding, done) {
      logLines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''))
      done()
    }
  })
  const log = pino({ ...loggerOptions('trace'), level: 'trace' }, sink)

  const appliance = Appliance.open(config, { log })
  t.teardown(async () => { await appliance.close() })
  const app = await buildServer(appliance)
  t.teardown(async () => { await app.close() })
  await app.ready()

  const city = createSampleCity(appliance.directory)
  return { appliance, app, city, simulators, logLines }
}

/** Makes an API token and returns its bearer header. */
export function bearer (appliance: Appliance, scopes: Scope[], organisationId?: string): Record<string, string> {
  const input: Parameters<typeof createToken>[1] = { name: `test-${scopes.join('+')}`, scopes }
  if (organisationId !== undefined) input.organisationId = organisationId
  const { secret } = createToken(appliance.store, input)
  return { authorization: `Bearer ${secret}` }
}

/** Adds a subscriber to an organisation, in a group ('1年/2組') when given; returns its id. */
export function addMember (
  appliance: Appliance, address: string, organisationId: string,
  options: { group?: string, topics?: string[] } = {}
): number {
  const directory = appliance.directory
  const input: Parameters<typeof directory.upsertSubscriber>[0] = { address: parseAddress(address) }
  if (options.topics !== undefined) input.topics = options.topics
  const { subscriber } = directory.upsertSubscriber(input)
  const group = options.group === undefined
    ? undefined
    : directory.groupByPath(organisationId, options.group.split('/'), true)
  directory.addMembership(subscriber.id, organisationId, group?.id)
  return subscriber.id
}

export function json<T = Record<string, any>> (response: LightMyRequestResponse): T { // eslint-disable-line @typescript-eslint/no-explicit-any
  return JSON.parse(response.body) as T
}

/** Polls GET /api/v1/broadcasts/:id until the predicate holds; resolves the last report. */
export async function followReport (
  app: FastifyInstance, headers: Record<string, string>, id: number,
  until: (report: BroadcastReport) => boolean, timeoutMs = 20_000
): Promise<BroadcastReport> {
  let report: BroadcastReport | undefined
  await waitForAsync(async () => {
    const response = await app.inject({ method: 'GET', url: `/api/v1/broadcasts/${id}`, headers })
    if (response.statusCode !== 200) throw new Error(`GET broadcast ${id}: ${response.statusCode} ${response.body}`)
    report = json<BroadcastReport>(response)
    return until(report)
  }, timeoutMs)
  return report as BroadcastReport
}

/** waitFor for a predicate that needs to await (an inject()). */
export async function waitForAsync (predicate: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  let holds = false
  const started = Date.now()
  while (!(holds = await predicate())) {
    if (Date.now() - started > timeoutMs) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  if (!holds) throw new Error('timed out waiting for a condition')
}

/** Every ledger row of a broadcast, after the last writes are committed. */
export async function ledgerRows (appliance: Appliance, id: number): Promise<Array<{ seq: number, row: LedgerRow }>> {
  await appliance.store.root.committed
  const rows: Array<{ seq: number, row: LedgerRow }> = []
  for (const { key, value } of appliance.store.ledger.getRange({ start: [id, 0], end: [id, Infinity] })) {
    rows.push({ seq: (key as [number, number])[1], row: value as LedgerRow })
  }
  return rows
}

/** The subscriber ids a broadcast froze as its recipients. */
export async function recipientIds (appliance: Appliance, id: number): Promise<number[]> {
  return (await ledgerRows(appliance, id)).map((r) => r.row.s).sort((a, b) => a - b)
}

export function isFinal (row: LedgerRow): boolean {
  return FINAL_STATES.has(row.st)
}

/** Recipients the simulators accepted, all routes together. */
export function acceptedBySimulators (simulators: Record<string, GatewaySimulator>): number {
  return Object.values(simulators).reduce((n, sim) => n + sim.stats().acceptedRecipients, 0)
}

/** How many accepted messages went to this address (as spelled in RCPT TO), all routes. */
export function deliveriesTo (simulators: Record<string, GatewaySimulator>, smtp: string): number {
  return Object.values(simulators).reduce((n, sim) => n + sim.acceptedCount(smtp), 0)
}
