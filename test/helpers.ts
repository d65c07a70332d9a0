// Test helpers: an appliance on a fresh data folder with its routes pointing at gateway
// simulators on 127.0.0.1:0, all closed in teardown.

import type { Test } from 'tap'
import { checkConfig, type Config } from '../appliance/config.js'
import { Appliance } from '../appliance/appliance.js'
import { GatewaySimulator, type GatewaySimulatorOptions } from '../ops/gateway-simulator.js'
import { CARRIER_ROUTES, createSampleCity, type SampleCity } from '../ops/sample-city.js'
import pino from 'pino'

export interface Harness {
  appliance: Appliance
  city: SampleCity
  simulators: Record<string, GatewaySimulator>
  config: Config
}

/** Starts one simulator per carrier route plus one as the default route's smarthost. */
export async function startSimulators (
  t: Test, options: Record<string, GatewaySimulatorOptions> = {}
): Promise<Record<string, GatewaySimulator>> {
  const out: Record<string, GatewaySimulator> = {}
  for (const name of [...CARRIER_ROUTES.map((r) => r.name), 'default']) {
    const sim = new GatewaySimulator({ name, keepMessages: true, ...options[name] })
    await sim.start()
    t.teardown(async () => { await sim.stop() })
    out[name] = sim
  }
  return out
}

export function testConfig (
  dataDir: string, simulators: Record<string, GatewaySimulator>, overrides: Record<string, unknown> = {}
): Config {
  const routes = CARRIER_ROUTES.map((r) => ({
    ...r, host: '127.0.0.1', port: simulators[r.name]?.port, maxConnections: 4, messagesPerSecond: 5000
  }))
  return checkConfig({
    dataDir,
    publicBaseUrl: 'https://mimamori.example.jp',
    mailDomain: 'mimamori.example.jp',
    log: { level: 'silent' },
    http: { port: 0 },
    smtp: { port: 0 },
    delivery: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2, slowdownSeconds: 0.1 },
    routes,
    defaultRoute: { mode: 'smarthost', host: '127.0.0.1', port: simulators.default?.port, maxConnections: 4 },
    ...overrides
  })
}

export async function startAppliance (
  t: Test, options: {
    simulators?: Record<string, GatewaySimulatorOptions>
    config?: Record<string, unknown>
    /** also start the inbound SMTP service (on port 0); its port is appliance.inboundPort */
    inbound?: boolean
  } = {}
): Promise<Harness> {
  const simulators = await startSimulators(t, options.simulators)
  const config = testConfig(t.testdir(), simulators, options.config)
  const appliance = Appliance.open(config, { log: pino({ level: 'silent' }) })
  t.teardown(async () => { await appliance.close() })
  if (options.inbound === true) await appliance.listenInbound()
  const city = createSampleCity(appliance.directory)
  return { appliance, city, simulators, config }
}

/** Resolves when the predicate holds, checking on each simulator message and every 20 ms. */
export async function waitFor (predicate: () => boolean, timeoutMs = 20_000): Promise<void> {
  const started = Date.now()
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting for a condition')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
