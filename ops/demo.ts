// Runs as `mimamori demo`: the appliance on embedded defaults — a fresh data folder, the sample
// city with a few thousand synthetic subscribers, one local gateway simulator per carrier — sends
// one sample emergency alert, prints its progress and counts per route, and keeps serving.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Appliance, type BroadcastReport } from '../appliance/appliance.js'
import { checkConfig } from '../appliance/config.js'
import { createToken } from '../appliance/api-tokens.js'
import { maskAddress, parseAddress } from '../appliance/address.js'
import type { LedgerRow } from '../appliance/ledger.js'
import { startSimulatorFleet, type SimulatorFleet } from './simulator-fleet.js'
import { CARRIER_ROUTES, createSampleCity, seedSubscribers } from './sample-city.js'
import { MimamoriError } from '../appliance/errors.js'
import { readOptions } from './cli.js'
import { stopOnSignal } from './start-command.js'

const ALERT = {
  subject: '【緊急】不審者情報（松山市東町付近）',
  body: [
    '保護者の皆様',
    '',
    '本日15時20分ごろ、松山市東町2丁目付近で、児童に声をかける不審な男性が目撃されました。',
    '警察には通報済みで、現在付近を巡回しています。',
    '',
    '・下校時はできるだけ複数で帰るようお声かけください。',
    '・お迎えが可能なご家庭はお迎えをお願いします。',
    '',
    '松山市教育委員会'
  ].join('\n')
}

export async function demoCommand (args: string[]): Promise<void> {
  const { values } = readOptions(args, { subscribers: { type: 'string' }, port: { type: 'string' }, keep: { type: 'boolean' } })
  const count = integerOption(values.subscribers, '--subscribers', 3000, 0, 1_000_000)
  const port = integerOption(values.port, '--port', 8080, 0, 65535)
  const dataDir = mkdtempSync(join(tmpdir(), 'mimamori-demo-'))
  const removeData = (): void => { if (values.keep !== true) rmSync(dataDir, { recursive: true, force: true }) }
  let fleet: SimulatorFleet | undefined
  let appliance: Appliance | undefined
  try {
    const started = fleet = await startFleet()
    appliance = openDemoAppliance(dataDir, port, started)
    stopOnSignal(appliance, async () => {
      await started.stop()
      removeData()
    })
    await runDemo(appliance, started, count)
  } catch (err) {
    // A demo that cannot start leaves no simulators and no temporary folder behind.
    await appliance?.close().catch(() => {})
    await fleet?.stop()
    removeData()
    if ((err as { code?: string }).code === 'EADDRINUSE') {
      throw new MimamoriError('MIMAMORI_CONFLICT', `port ${port} on 127.0.0.1 is in use; give another --port (0 takes any free port)`)
    }
    throw err
  }
}

function integerOption (value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (typeof value !== 'string' || value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `${name} takes a whole number from ${min} to ${max}`)
  }
  return n
}

function openDemoAppliance (dataDir: string, port: number, fleet: SimulatorFleet): Appliance {
  const config = checkConfig({
    dataDir,
    log: { level: process.env.LOG_LEVEL ?? 'warn' },
    http: { port },
    smtp: { port: 0 },
    delivery: { retryBaseSeconds: 2, retryMaxSeconds: 10, maxAttempts: 3 },
    routes: CARRIER_ROUTES.map((r) => ({ ...r, host: '127.0.0.1', port: fleet.ports[r.name], maxConnections: 8, messagesPerSecond: 2000 })),
    defaultRoute: { mode: 'smarthost', host: '127.0.0.1', port: fleet.ports.default, maxConnections: 8 }
  })
  return Appliance.open(config)
}

async function runDemo (appliance: Appliance, fleet: SimulatorFleet, count: number): Promise<void> {
  const dataDir = appliance.config.dataDir
  const city = createSampleCity(appliance.directory)
  seedSubscribers(appliance.directory, city, count)
  addProblemAddresses(appliance, city.cityId)
  const token = createToken(appliance.store, { name: 'demo', scopes: ['admin'] }).secret
  const url = await appliance.serve()
  printWelcome(url, appliance.inboundUrl ?? '', dataDir, token, count)

  const broadcast = appliance.submit({
    organisationId: city.cityId, ...ALERT, priority: 'emergency', targets: { topics: ['suspicious-person'] }, createdBy: 'demo'
  })
  // Ctrl+C while sending closes the store under this timer: it stops instead of throwing.
  let last = ''
  const progress = setInterval(() => {
    try {
      last = printProgress(appliance.report(broadcast.id), last)
    } catch {
      clearInterval(progress)
    }
  }, 250)
  const report = await appliance.finished(broadcast.id)
  clearInterval(progress)
  printProgress(report, last)
  printFinal(report, await fleet.stats())
  printProblemAddresses(appliance, broadcast.id)
  process.stdout.write(`\nThe appliance keeps serving at ${url} — press Ctrl+C to stop.\n`)
}

async function startFleet (): Promise<SimulatorFleet> {
  const entries = [...CARRIER_ROUTES.map((r) => r.name), 'default'].map((route) => ({
    route, options: { name: route, delayMs: 2 }
  }))
  return await startSimulatorFleet(entries)
}

// A real city always has some dead and some unreachable addresses: the demo shows what happens.
const PROBLEMS: Array<[string, string]> = [
  ['unknown.user@docomo.ne.jp', 'a mailbox that does not exist: suppressed for every later broadcast'],
  ['blocked.filter@ezweb.ne.jp', "the carrier's domain filter: not suppressed; the person is shown how to allow our mail"],
  ['tempfail.busy@softbank.ne.jp', 'a gateway that keeps answering 451: retried with back-off, then given up'],
  ['taro..yamada.@docomo.ne.jp', 'a pre-2009 carrier address: delivered, quoted in the envelope']
]

function addProblemAddresses (appliance: Appliance, cityId: string): void {
  for (const [text] of PROBLEMS) {
    const { subscriber } = appliance.directory.upsertSubscriber({ address: parseAddress(text), name: 'デモ' })
    appliance.directory.addMembership(subscriber.id, cityId)
  }
}

function printWelcome (url: string, inbound: string, dataDir: string, token: string, count: number): void {
  process.stdout.write([
    'Mimamori demo',
    `  data folder (temporary): ${dataDir}`,
    `  sample city: 松山市 — 3 schools, a kindergarten, the fire department, ${count + 4} subscribers`,
    `  API:      ${url}/api/v1/broadcasts   (admin token — Authorization: Bearer ${token})`,
    `  health:   ${url}/healthz`,
    `  metrics:  ${url}/metrics`,
    `  inbound mail (sign-up, replies, bounces, mail-in commands): ${inbound}`,
    '',
    'Sending the sample emergency alert 「不審者情報」 to every subscriber of that topic...',
    ''
  ].join('\n'))
}

/** Prints a progress line when it differs from the last one; returns the line. */
function printProgress (report: BroadcastReport, last: string): string {
  const c = report.counts
  const line = `  ${report.status.padEnd(9)} accepted ${c.accepted}/${report.total}  ` +
    `deferred ${c.deferred}  failed ${c.failed}\n`
  if (line !== last) process.stdout.write(line)
  return line
}

function printProblemAddresses (appliance: Appliance, broadcastId: number): void {
  process.stdout.write('\n  what happened to the problem addresses (masked as in the logs):\n')
  for (const [text, meaning] of PROBLEMS) {
    const subscriber = appliance.directory.findSubscriber(parseAddress(text))
    const row = subscriber === undefined ? undefined : ledgerRowOf(appliance, broadcastId, subscriber.id)
    const outcome = row === undefined ? 'not a recipient' : `${row.st}${row.c === undefined ? '' : ` (${row.c})`}, ${row.n} attempt(s)`
    process.stdout.write(`  ${maskAddress(text).padEnd(26)} ${outcome.padEnd(28)} ${meaning}\n`)
  }
}

function ledgerRowOf (appliance: Appliance, broadcastId: number, subscriberId: number): LedgerRow | undefined {
  for (const { value } of appliance.store.ledger.getRange({ start: [broadcastId, 0], end: [broadcastId, Infinity] })) {
    if ((value as LedgerRow).s === subscriberId) return value as LedgerRow
  }
  return undefined
}

function printFinal (report: BroadcastReport, fleet: Awaited<ReturnType<SimulatorFleet['stats']>>): void {
  const first = report.firstAcceptedAt === undefined ? NaN : Date.parse(report.firstAcceptedAt) - Date.parse(report.submittedAt)
  const last = report.lastAcceptedAt === undefined ? NaN : Date.parse(report.lastAcceptedAt) - Date.parse(report.submittedAt)
  process.stdout.write(`\nBroadcast ${report.id}: ${report.status} — ${report.counts.accepted} of ${report.total} accepted ` +
    `(first after ${first} ms, last after ${last} ms)\n\n`)
  process.stdout.write('  route      accepted  failed  deferred  suppressed  gateway received\n')
  for (const [route, c] of Object.entries(report.routes)) {
    const received = fleet.stats[route]?.acceptedRecipients ?? 0
    process.stdout.write(`  ${route.padEnd(10)} ${String(c.accepted).padStart(8)}  ${String(c.failed).padStart(6)}  ` +
      `${String(c.deferred).padStart(8)}  ${String(c.suppressed).padStart(10)}  ${String(received).padStart(16)}\n`)
  }
}
