// Runs as `mimamori demo`: the appliance on embedded defaults — a fresh data folder, the sample
// city with a few thousand synthetic subscribers, one local gateway simulator per carrier — sends
// one sample emergency alert, prints its progress and counts per route, and keeps serving.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Appliance, type BroadcastReport } from '../appliance/appliance.js'
import { checkConfig } from '../appliance/config.js'
import { createToken } from '../appliance/api-tokens.js'
import { parseAddress } from '../appliance/address.js'
import { startSimulatorFleet, type SimulatorFleet } from './simulator-fleet.js'
import { CARRIER_ROUTES, createSampleCity, seedSubscribers } from './sample-city.js'
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
  const count = Number((values.subscribers as string | undefined) ?? 3000)
  const dataDir = mkdtempSync(join(tmpdir(), 'mimamori-demo-'))
  const fleet = await startFleet()

  const config = checkConfig({
    dataDir,
    log: { level: process.env.LOG_LEVEL ?? 'warn' },
    http: { port: Number((values.port as string | undefined) ?? 8080) },
    smtp: { port: 0 },
    delivery: { retryBaseSeconds: 2, retryMaxSeconds: 10, maxAttempts: 3 },
    routes: CARRIER_ROUTES.map((r) => ({ ...r, host: '127.0.0.1', port: fleet.ports[r.name], maxConnections: 8, messagesPerSecond: 2000 })),
    defaultRoute: { mode: 'smarthost', host: '127.0.0.1', port: fleet.ports.default, maxConnections: 8 }
  })
  const appliance = Appliance.open(config)
  stopOnSignal(appliance, async () => {
    await fleet.stop()
    if (values.keep !== true) rmSync(dataDir, { recursive: true, force: true })
  })

  const city = createSampleCity(appliance.directory)
  seedSubscribers(appliance.directory, city, count)
  addProblemAddresses(appliance, city.cityId)
  const token = createToken(appliance.store, { name: 'demo', scopes: ['admin'] }).secret
  const url = await appliance.serve()
  printWelcome(url, dataDir, token, count)

  const broadcast = appliance.submit({
    organisationId: city.cityId, ...ALERT, priority: 'emergency', targets: { topics: ['suspicious-person'] }, createdBy: 'demo'
  })
  const progress = setInterval(() => { printProgress(appliance.report(broadcast.id)) }, 250)
  const report = await appliance.finished(broadcast.id)
  clearInterval(progress)
  printFinal(report, await fleet.stats())
  process.stdout.write(`\nThe appliance keeps serving at ${url} — press Ctrl+C to stop.\n`)
}

async function startFleet (): Promise<SimulatorFleet> {
  const entries = [...CARRIER_ROUTES.map((r) => r.name), 'default'].map((route) => ({
    route, options: { name: route, delayMs: 2 }
  }))
  return await startSimulatorFleet(entries)
}

// A real city always has some dead and some unreachable addresses: the demo shows what happens.
function addProblemAddresses (appliance: Appliance, cityId: string): void {
  const addresses = ['unknown.user@docomo.ne.jp', 'blocked.filter@ezweb.ne.jp', 'tempfail.busy@softbank.ne.jp',
    'taro..yamada.@docomo.ne.jp']
  for (const text of addresses) {
    const { subscriber } = appliance.directory.upsertSubscriber({ address: parseAddress(text), name: 'デモ' })
    appliance.directory.addMembership(subscriber.id, cityId)
  }
}

function printWelcome (url: string, dataDir: string, token: string, count: number): void {
  process.stdout.write([
    'Mimamori demo',
    `  data folder (temporary): ${dataDir}`,
    `  sample city: 松山市 — 3 schools, a kindergarten, the fire department, ${count + 4} subscribers`,
    `  API:      ${url}/api/v1/broadcasts   (Authorization: Bearer ${token})`,
    `  health:   ${url}/healthz`,
    `  metrics:  ${url}/metrics`,
    '',
    'Sending the sample emergency alert 「不審者情報」 to every subscriber of that topic...',
    ''
  ].join('\n'))
}

function printProgress (report: BroadcastReport): void {
  const c = report.counts
  process.stdout.write(`  ${report.status.padEnd(9)} accepted ${c.accepted}/${report.total}  ` +
    `deferred ${c.deferred}  failed ${c.failed}\n`)
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
