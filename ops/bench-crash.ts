// Runs as `mimamori bench --kill`: the crash run. `mimamori start` sends one emergency broadcast
// to N recipients, is killed with SIGKILL once half are accepted, and is started again; the
// gateway simulators count who received it twice. Prints one JSON line.

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import YAML from 'yaml'
import { startSimulatorFleet, type SimulatorFleet } from './simulator-fleet.js'
import { CARRIER_ROUTES } from './sample-city.js'
import { CONNECTIONS_PER_ROUTE, ROUTES, seed } from './bench.js'

const BATCH = 100
const TASKS_PER_ROUTE = 4

export interface CrashResult {
  recipients: number
  acceptedAtKill: number
  accepted: number
  inFinalState: number
  duplicates: number
  inFlightBound: number
  resumeSeconds: number
}

export async function runCrashBench (options: { recipients: number }): Promise<CrashResult> {
  const dir = mkdtempSync(join(tmpdir(), 'mimamori-crash-'))
  const fleet = await startSimulatorFleet(ROUTES.map((route) => ({ route, options: { name: route } })))
  const children: ChildProcess[] = []
  try {
    const configFile = writeConfig(dir, fleet)
    const { cityId, token } = await seed(join(dir, 'data'), options.recipients)
    const first = await startAppliance(configFile, children)
    const created = await api(first.port, token, 'POST', '/api/v1/broadcasts', {
      organisation: cityId, subject: '【緊急】避難指示（ベンチマーク）', body: '直ちに避難してください。', priority: 'emergency', targets: {}
    }) as { id: number }

    const acceptedAtKill = await killHalfway(fleet, first.child, options.recipients)
    const restartedAt = performance.now()
    const second = await startAppliance(configFile, children)
    const report = await waitDone(second.port, token, created.id)
    const resumeSeconds = (performance.now() - restartedAt) / 1000
    const stats = await fleet.stats()
    const c = report.counts
    return {
      recipients: options.recipients,
      acceptedAtKill,
      accepted: c.accepted ?? 0,
      inFinalState: (c.accepted ?? 0) + (c.failed ?? 0) + (c.suppressed ?? 0) + (c.cancelled ?? 0),
      duplicates: stats.duplicates,
      inFlightBound: BATCH * TASKS_PER_ROUTE * ROUTES.length,
      resumeSeconds: Math.round(resumeSeconds * 1000) / 1000
    }
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await fleet.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

function writeConfig (dir: string, fleet: SimulatorFleet): string {
  const route = { host: '127.0.0.1', maxConnections: CONNECTIONS_PER_ROUTE, messagesPerSecond: 100_000 }
  const file = join(dir, 'mimamori.yaml')
  writeFileSync(file, YAML.stringify({
    dataDir: join(dir, 'data'),
    http: { port: 0 },
    log: { level: 'info' },
    smtp: { port: 0 },
    delivery: { batchSize: BATCH, tasksPerRoute: TASKS_PER_ROUTE },
    routes: CARRIER_ROUTES.map((r) => ({ ...r, ...route, port: fleet.ports[r.name] })),
    defaultRoute: { mode: 'smarthost', ...route, port: fleet.ports.default }
  }))
  return file
}

function binPath (): string {
  for (const relative of ['../bin/mimamori.js', '../../bin/mimamori.js']) {
    const file = fileURLToPath(new URL(relative, import.meta.url))
    if (existsSync(file)) return file
  }
  throw new Error('bin/mimamori.js not found')
}

/** Starts `mimamori start` and resolves with the port from its "listening" log line. */
async function startAppliance (configFile: string, children: ChildProcess[]): Promise<{ child: ChildProcess, port: number }> {
  const child = spawn(process.execPath, [binPath(), 'start', '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  let seen = ''
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      seen = (seen + chunk.toString('utf8')).slice(-4096)
      const match = /"url":"http:\/\/[^"]*:(\d+)"/.exec(seen)
      if (match !== null) resolve(Number(match[1]))
    })
    child.once('exit', (code) => { reject(new Error(`mimamori start exited with ${String(code)}`)) })
  })
  return { child, port }
}

// A run that stops making progress fails instead of waiting for ever.
const STALL_MS = 60_000

async function killHalfway (fleet: SimulatorFleet, child: ChildProcess, total: number): Promise<number> {
  const accepted = async (): Promise<number> =>
    Object.values((await fleet.stats()).stats).reduce((n, s) => n + s.acceptedRecipients, 0)
  let last = -1
  let lastChange = performance.now()
  for (let now = await accepted(); now < total / 2; now = await accepted()) {
    if (now !== last) [last, lastChange] = [now, performance.now()]
    if (performance.now() - lastChange > STALL_MS) throw new Error(`delivery stalled at ${now} accepted`)
    if (child.exitCode !== null) throw new Error(`mimamori start exited with ${child.exitCode}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  child.kill('SIGKILL')
  await once(child, 'exit')
  return await accepted()
}

async function waitDone (port: number, token: string, id: number): Promise<{ counts: Record<string, number> }> {
  const started = performance.now()
  for (;;) {
    if (performance.now() - started > 30 * STALL_MS) throw new Error(`broadcast ${id} did not finish after the restart`)
    const report = await api(port, token, 'GET', `/api/v1/broadcasts/${id}`) as { status: string, counts: Record<string, number> }
    if (report.status === 'done') return report
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

async function api (port: number, token: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const response = await request(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const answer = await response.body.json() as { code?: string, message?: string }
  if (response.statusCode >= 400) {
    throw new Error(`${method} ${path} answered ${response.statusCode}: ${answer.code ?? ''} ${answer.message ?? ''}`)
  }
  return answer
}
