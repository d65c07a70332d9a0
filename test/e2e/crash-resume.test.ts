// The appliance is killed with SIGKILL in the middle of a broadcast and started again: the
// broadcast resumes by itself, every recipient ends in exactly one final state, and only the
// messages in flight at the kill may reach a gateway twice — counted from the ledger left on
// disk: a row is marked `sending` before its message leaves, so those rows bound the repeats.

import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import YAML from 'yaml'
import { startSimulators, waitFor } from '../helpers.js'
import { openStore } from '../../appliance/store/store.js'
import { Directory } from '../../appliance/directory.js'
import { createToken } from '../../appliance/api-tokens.js'
import { FINAL_STATES, type LedgerRow } from '../../appliance/ledger.js'
import { CARRIER_ROUTES, createSampleCity, seedSubscribers } from '../../ops/sample-city.js'

const CLI = fileURLToPath(new URL('../../bin/mimamori.js', import.meta.url))
const RECIPIENTS = 3000
const BATCH = 20
const TASKS_PER_ROUTE = 3

/** Reads a broadcast's ledger from the data folder of a stopped appliance. */
async function ledgerOnDisk (dataDir: string, broadcastId: number): Promise<LedgerRow[]> {
  const { store } = openStore(dataDir)
  try {
    const range = store.ledger.getRange({ start: [broadcastId, 0], end: [broadcastId, Infinity] })
    return [...range].map(({ value }) => value as LedgerRow)
  } finally {
    await store.close()
  }
}

/** Starts `mimamori start` and resolves with the port it logs once listening (it binds port 0). */
async function startProcess (t: Test, configFile: string): Promise<{ child: ChildProcess, port: number }> {
  const child = spawn(process.execPath, [CLI, 'start', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, LOG_LEVEL: 'info' }
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let buffered = ''
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8')
      const match = /"url":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(buffered)
      if (match !== null) resolve(Number(match[1]))
    })
    child.once('exit', (code) => { reject(new Error(`mimamori start exited with ${String(code)}`)) })
  })
  child.stdout?.resume()
  return { child, port }
}

async function api (port: number, token: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<any> {
  const response = await request(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  return await response.body.json()
}

async function waitHealthy (port: number): Promise<void> {
  const started = Date.now()
  for (;;) {
    try {
      const response = await request(`http://127.0.0.1:${port}/healthz`)
      await response.body.dump()
      if (response.statusCode === 200) return
    } catch {}
    if (Date.now() - started > 30_000) throw new Error('the appliance did not start')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

t.test('a broadcast killed with SIGKILL mid-send resumes by itself after restart', async (t) => {
  const simulators = await startSimulators(t, {
    docomo: { keepMessages: false, delayMs: 1 },
    au: { keepMessages: false, delayMs: 1 },
    softbank: { keepMessages: false, delayMs: 1 },
    default: { keepMessages: false, delayMs: 1 }
  })
  const dataDir = t.testdir()
  const { store, vault } = openStore(dataDir)
  const directory = new Directory(store, vault)
  directory.ensureDefaultTopics()
  const city = createSampleCity(directory)
  seedSubscribers(directory, city, RECIPIENTS)
  const token = createToken(store, { name: 'crash-test', scopes: ['admin'] }).secret
  await store.close()

  const configFile = join(dataDir, 'mimamori.yaml')
  writeFileSync(configFile, YAML.stringify({
    dataDir,
    http: { port: 0 },
    smtp: { port: 0 },
    log: { level: 'silent' },
    delivery: { batchSize: BATCH, tasksPerRoute: TASKS_PER_ROUTE, retryBaseSeconds: 0.05, retryMaxSeconds: 0.2 },
    routes: CARRIER_ROUTES.map((r) => ({
      ...r, host: '127.0.0.1', port: simulators[r.name]?.port, maxConnections: TASKS_PER_ROUTE, messagesPerSecond: 300
    })),
    defaultRoute: { mode: 'smarthost', host: '127.0.0.1', port: simulators.default?.port, maxConnections: TASKS_PER_ROUTE, messagesPerSecond: 300 }
  }))

  const { child: first, port } = await startProcess(t, configFile)
  await waitHealthy(port)
  const created = await api(port, token, 'POST', '/api/v1/broadcasts', {
    organisation: city.cityId, subject: '【緊急】避難指示', body: '直ちに避難してください。', priority: 'emergency', targets: {}
  })
  t.equal(created.total, RECIPIENTS)

  const accepted = (): number => Object.values(simulators).reduce((n, s) => n + s.stats().acceptedRecipients, 0)
  await waitFor(() => accepted() >= RECIPIENTS / 3, 60_000)
  first.kill('SIGKILL')
  await once(first, 'exit')
  const atKill = accepted()
  t.ok(atKill < RECIPIENTS, `the kill landed mid-send (${atKill} of ${RECIPIENTS} accepted)`)
  const rowsAtKill = await ledgerOnDisk(dataDir, created.id as number)
  t.equal(rowsAtKill.length, RECIPIENTS)
  const inFlight = rowsAtKill.filter((r) => r.st === 'sending').length
  t.ok(inFlight > 0, `${inFlight} rows were sending at the kill`)

  const { child: second, port: secondPort } = await startProcess(t, configFile)
  await waitHealthy(secondPort)
  let report: any
  for (let i = 0; i < 600; i++) {
    report = await api(secondPort, token, 'GET', `/api/v1/broadcasts/${created.id as number}`)
    if (report.status === 'done') break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(report.status, 'done', 'the broadcast finished after the restart')
  t.equal(report.counts.accepted, RECIPIENTS, 'every recipient accepted')

  let distinct = 0
  let duplicates = 0
  for (const sim of Object.values(simulators)) {
    distinct += sim.stats().distinctRecipients
    duplicates += sim.duplicates()
  }
  t.equal(distinct, RECIPIENTS, 'every recipient reached a gateway')
  t.ok(duplicates <= inFlight, `${duplicates} sent twice, at most the ${inFlight} rows sending at the kill`)
  t.comment(`accepted at the kill: ${atKill}; sending at the kill: ${inFlight}; sent twice: ${duplicates}`)

  second.kill('SIGTERM')
  await once(second, 'exit')
  const rows = await ledgerOnDisk(dataDir, created.id as number)
  t.equal(rows.length, RECIPIENTS, 'one ledger row per recipient')
  t.equal(new Set(rows.map((r) => r.s)).size, RECIPIENTS, 'no recipient twice in the ledger')
  t.same(rows.filter((r) => !FINAL_STATES.has(r.st)), [], 'every row in a final state')
  t.equal(rows.filter((r) => r.st === 'accepted').length, RECIPIENTS, 'each one accepted')
})
