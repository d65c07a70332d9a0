// Runs as `mimamori bench`: seeds N synthetic subscribers, starts one gateway simulator per
// carrier route in its own process, sends one emergency broadcast through the real appliance,
// then pushes the same number of messages through a bare nodemailer pool (the ceiling) to the
// same simulators, and prints one JSON line of results.

import { mkdtempSync, rmSync, writeFileSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import nodemailer, { type Transporter } from 'nodemailer'
import { Appliance } from '../appliance/appliance.js'
import { checkConfig } from '../appliance/config.js'
import { DATA_FILE } from '../appliance/store/store.js'
import { MessageTemplate } from '../workers/message-template.js'
import { DkimSigner } from '../workers/dkim-signer.js'
import { noDelaySocket } from '../workers/smtp-socket.js'
import { generateDkimKey } from './dkim-keygen.js'
import { startSimulatorFleet, type SimulatorFleet } from './simulator-fleet.js'
import { CARRIER_ROUTES, CARRIER_DOMAINS, syntheticAddress } from './sample-city.js'
import { parseAddress } from '../appliance/address.js'
import { readOptions } from './cli.js'
import type { MimamoriError } from '../appliance/errors.js'

export const CONNECTIONS_PER_ROUTE = 10
export const ROUTES = [...CARRIER_ROUTES.map((r) => r.name), 'default']

export interface BenchResult {
  recipients: number
  dkim: boolean
  workers: number
  seconds: number
  recipientsPerSecond: number
  firstAcceptanceSeconds: number
  submitSeconds: number
  peakRssMB: number
  /** the JavaScript heap at its largest during the broadcast: what grows if memory leaks */
  peakHeapMB: number
  /** the LMDB file after the run: subscribers, the ledger and the rest of the store */
  dataFileMB: number
  accepted: number
  duplicates: number
  ceiling: { seconds: number, recipientsPerSecond: number }
  ratio: number
  overtake: Overtake
  seedSeconds: number
}

/** An emergency submitted while a bulk broadcast to everyone is running. */
export interface Overtake {
  emergencyRecipients: number
  bulkAcceptedBefore: number
  firstAcceptanceSeconds: number
  lastAcceptanceSeconds: number
}

export async function benchCommand (args: string[]): Promise<void> {
  const { values } = readOptions(args, {
    recipients: { type: 'string' }, dkim: { type: 'boolean' }, workers: { type: 'string' }, kill: { type: 'boolean' }
  })
  if (values.kill === true) {
    const { runCrashBench } = await import('./bench-crash.js')
    const crash = await runCrashBench({ recipients: Number((values.recipients as string | undefined) ?? 100_000) })
    process.stdout.write(JSON.stringify(crash) + '\n')
    return
  }
  const result = await runBench({
    recipients: Number((values.recipients as string | undefined) ?? 100_000),
    dkim: values.dkim === true,
    workers: Number((values.workers as string | undefined) ?? 2)
  })
  process.stdout.write(JSON.stringify(result) + '\n')
}

export async function runBench (options: { recipients: number, dkim: boolean, workers: number }): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'mimamori-bench-'))
  const fleet = await startSimulatorFleet(ROUTES.map((route) => ({ route, options: { name: route } })))
  try {
    const dkimKey = options.dkim ? writeDkimKey(dir) : undefined
    const config = benchConfig(dir, fleet, options.workers, dkimKey)
    const { cityId, seedSeconds } = await seed(config.dataDir, options.recipients)
    const appliance = Appliance.open(config)

    const run = await broadcastOnce(appliance, cityId)
    const peakRssMB = Math.round(process.resourceUsage().maxRSS / 1024)
    const dataFileMB = Math.round(statSync(join(config.dataDir, DATA_FILE)).size / 2 ** 20 * 10) / 10
    const received = await fleet.stats()
    const overtake = await measureOvertake(appliance, cityId)
    await appliance.close()
    const ceiling = await pushCeiling(fleet, options.recipients, dkimKey)
    const rate = options.recipients / run.seconds
    return {
      recipients: options.recipients,
      dkim: options.dkim,
      workers: options.workers,
      seconds: round(run.seconds),
      recipientsPerSecond: Math.round(rate),
      firstAcceptanceSeconds: round(run.first),
      submitSeconds: round(run.submit),
      peakRssMB,
      peakHeapMB: run.peakHeapMB,
      dataFileMB,
      accepted: run.accepted,
      duplicates: received.duplicates,
      ceiling: { seconds: round(ceiling), recipientsPerSecond: Math.round(options.recipients / ceiling) },
      ratio: round(rate / (options.recipients / ceiling)),
      overtake,
      seedSeconds: round(seedSeconds)
    }
  } finally {
    await fleet.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

function writeDkimKey (dir: string): { file: string, pem: string } {
  const key = generateDkimKey({ domain: 'mimamori.example.jp', selector: 'bench' })
  const file = join(dir, 'dkim.pem')
  writeFileSync(file, key.privateKeyPem, { mode: 0o600 })
  return { file, pem: key.privateKeyPem }
}

function benchConfig (dir: string, fleet: SimulatorFleet, workers: number, dkim?: { file: string }): ReturnType<typeof checkConfig> {
  return checkConfig({
    dataDir: join(dir, 'data'),
    log: { level: 'warn' },
    delivery: { workers, batchSize: 100, tasksPerRoute: 4 },
    routes: CARRIER_ROUTES.map((r) => ({
      ...r, host: '127.0.0.1', port: fleet.ports[r.name], maxConnections: CONNECTIONS_PER_ROUTE, messagesPerSecond: 100_000
    })),
    defaultRoute: {
      mode: 'smarthost', host: '127.0.0.1', port: fleet.ports.default, maxConnections: CONNECTIONS_PER_ROUTE, messagesPerSecond: 100_000
    },
    ...(dkim === undefined ? {} : { dkim: { domain: 'mimamori.example.jp', selector: 'bench', keyFile: dkim.file } })
  })
}

// Seeding runs in a child process: its garbage would otherwise count in the appliance's peak RSS.
export async function seed (dataDir: string, n: number): Promise<{ cityId: string, token: string, seedSeconds: number }> {
  const started = performance.now()
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  const child = fork(fileURLToPath(new URL(`./bench-seed${ext}`, import.meta.url)), [dataDir, String(n)])
  const [reply] = await once(child, 'message') as [{ cityId: string, token: string }]
  await once(child, 'exit')
  return { ...reply, seedSeconds: (performance.now() - started) / 1000 }
}

async function broadcastOnce (appliance: Appliance, cityId: string): Promise<{
  seconds: number, first: number, submit: number, accepted: number, peakHeapMB: number
}> {
  const submittedAt = Date.now()
  const broadcast = appliance.submit({
    organisationId: cityId,
    subject: '【緊急】大雨特別警報（ベンチマーク）',
    body: '松山市に大雨特別警報が発表されました。命を守る行動をとってください。\n避難所の開設状況は市のホームページで確認できます。',
    priority: 'emergency',
    targets: {},
    createdBy: 'bench'
  })
  const frozenAt = Date.now()
  let peakHeap = process.memoryUsage().heapUsed
  const sampler = setInterval(() => {
    const m = process.memoryUsage()
    peakHeap = Math.max(peakHeap, m.heapUsed)
    if (process.env.MIMAMORI_BENCH_MEMORY === undefined) return
    const status = readFileSync('/proc/self/status', 'utf8').match(/Rss(Anon|File):\s+\d+/g)?.join(' ') ?? ''
    process.stderr.write(`rss ${m.rss >> 20} heap ${m.heapUsed >> 20}/${m.heapTotal >> 20} ab ${m.arrayBuffers >> 20} ${status}\n`)
  }, 250)
  const report = await appliance.finished(broadcast.id)
  clearInterval(sampler)
  const first = Date.parse(report.firstAcceptedAt ?? '') - submittedAt
  const last = Date.parse(report.lastAcceptedAt ?? '') - submittedAt
  return {
    seconds: last / 1000,
    first: first / 1000,
    submit: (frozenAt - submittedAt) / 1000,
    accepted: report.counts.accepted,
    peakHeapMB: Math.round(peakHeap / 2 ** 20)
  }
}

// A bulk broadcast to everyone runs; once a tenth is accepted, an emergency to one school is
// submitted. The bulk one is cancelled when the emergency is done.
async function measureOvertake (appliance: Appliance, cityId: string): Promise<Overtake> {
  const base = { organisationId: cityId, targets: {}, createdBy: 'bench' }
  const bulk = appliance.submit({ ...base, subject: '給食だより（ベンチマーク）', body: '今月の献立です。', priority: 'bulk' })
  const accepted = (): number => appliance.dispatcher.live(bulk.id)?.counts.byState.accepted ?? 0
  while (accepted() < bulk.total / 10) await new Promise((resolve) => setTimeout(resolve, 10))

  const bulkAcceptedBefore = accepted()
  const submittedAt = Date.now()
  const emergency = appliance.submit({
    ...base, organisationId: 'higashi-es', subject: '【緊急】不審者情報（ベンチマーク）', body: '至急ご確認ください。', priority: 'emergency'
  })
  const report = await appliance.finished(emergency.id)
  cancelUnlessDone(appliance, bulk.id)
  await appliance.finished(bulk.id)
  return {
    emergencyRecipients: emergency.total,
    bulkAcceptedBefore,
    firstAcceptanceSeconds: round((Date.parse(report.firstAcceptedAt ?? '') - submittedAt) / 1000),
    lastAcceptanceSeconds: round((Date.parse(report.lastAcceptedAt ?? '') - submittedAt) / 1000)
  }
}

// On a small run the bulk broadcast may be done before the emergency one.
function cancelUnlessDone (appliance: Appliance, id: number): void {
  try {
    appliance.cancel(id)
  } catch (err) {
    if ((err as MimamoriError).code !== 'MIMAMORI_CONFLICT') throw err
  }
}

// The ceiling: 1,000 messages built beforehand (reused round-robin, each to its own envelope
// recipient), signed per message when DKIM is on, pushed by one bare nodemailer pool per route.
async function pushCeiling (fleet: SimulatorFleet, n: number, dkim?: { pem: string }): Promise<number> {
  const template = new MessageTemplate({
    broadcastId: '1', subject: '【緊急】大雨特別警報（ベンチマーク）', body: '命を守る行動をとってください。',
    fromName: '松山市', fromAddress: 'alert@mimamori.example.jp', organisation: { name: '松山市', postalAddress: '愛媛県松山市' },
    mailDomain: 'mimamori.example.jp', baseUrl: 'https://mimamori.example.jp', priority: 'emergency'
  })
  const signer = dkim === undefined ? undefined : new DkimSigner({ domain: 'mimamori.example.jp', selector: 'bench', privateKey: dkim.pem })
  const built = Array.from({ length: 1000 }, (_, i) => template.render({
    to: `parent${i}@docomo.ne.jp`, token: `t${i}xxxxxxxxxxxxxxxxxxxxxxxx`, bounceToken: `b${i}xxxxxxxxxxxxxxxxxxxxxxxx`
  }).raw)
  const pools = new Map<string, Transporter>(ROUTES.map((route) => [route, nodemailer.createTransport({
    pool: true, host: '127.0.0.1', port: fleet.ports[route], maxConnections: CONNECTIONS_PER_ROUTE, maxMessages: 1000,
    getSocket: noDelaySocket(30_000)
  } as Parameters<typeof nodemailer.createTransport>[0])]))
  const routeOf = (domain: string): string => CARRIER_ROUTES.find((r) => r.domains.includes(domain))?.name ?? 'default'

  const started = performance.now()
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++
      const address = parseAddress(syntheticAddress(i, CARRIER_DOMAINS[i % CARRIER_DOMAINS.length] as string))
      const raw = built[i % built.length] as Buffer
      await (pools.get(routeOf(address.domain)) as Transporter).sendMail({
        envelope: { from: 'bounce@mimamori.example.jp', to: [address.canonical] },
        raw: signer === undefined ? raw : signer.sign(raw)
      })
    }
  }
  await Promise.all(Array.from({ length: CONNECTIONS_PER_ROUTE * ROUTES.length * 2 }, worker))
  const seconds = (performance.now() - started) / 1000
  for (const pool of pools.values()) pool.close()
  return seconds
}

function round (x: number): number {
  return Math.round(x * 1000) / 1000
}
