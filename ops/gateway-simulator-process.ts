// Runs in a child process forked by simulator-fleet.ts (or by hand): one gateway simulator per
// route listed in MIMAMORI_SIMULATORS (or argv[2]), answering the parent over IPC.
//
//   MIMAMORI_SIMULATORS='[{"route":"docomo","options":{"delayMs":5}}]' \
//     node dist/ops/gateway-simulator-process.js
//
// Without an IPC channel it prints the ready message as one JSON line and runs until SIGTERM.

import { GatewaySimulator } from './gateway-simulator.js'
import { SIMULATORS_ENV } from './simulator-fleet.js'
import type { FleetReply, FleetRequest, SimulatorEntry } from './simulator-fleet.js'

const simulators = new Map<string, GatewaySimulator>()

function readEntries (): SimulatorEntry[] {
  const text = process.env[SIMULATORS_ENV] ?? process.argv[2]
  if (text === undefined || text === '') {
    throw new Error(`${SIMULATORS_ENV} (or the first argument) must list the simulators`)
  }

  const entries: unknown = JSON.parse(text)
  if (!Array.isArray(entries) || !entries.every((entry) => typeof entry?.route === 'string')) {
    throw new Error(`${SIMULATORS_ENV} must be a JSON array of { route, options }`)
  }
  return entries as SimulatorEntry[]
}

function reply (message: FleetReply): Promise<void> {
  if (process.send === undefined) {
    process.stdout.write(`${JSON.stringify(message)}\n`)
    return Promise.resolve()
  }
  return new Promise((resolve) => process.send?.(message, undefined, {}, () => resolve()))
}

function collectStats (id: number): FleetReply {
  const stats: Record<string, ReturnType<GatewaySimulator['stats']>> = {}
  let duplicates = 0
  for (const [route, simulator] of simulators) {
    stats[route] = simulator.stats()
    duplicates += simulator.duplicates()
  }
  return { type: 'stats', id, stats, duplicates }
}

async function stopAndExit (code: number): Promise<never> {
  await Promise.all([...simulators.values()].map((simulator) => simulator.stop()))
  process.exit(code)
}

function onRequest (request: FleetRequest): void {
  if (request.type === 'stats') void reply(collectStats(request.id))
  if (request.type === 'stop') void stopAndExit(0)
}

async function main (): Promise<void> {
  const ports: Record<string, number> = {}
  for (const entry of readEntries()) {
    const simulator = new GatewaySimulator({ name: entry.route, ...entry.options })
    simulators.set(entry.route, simulator)
    ports[entry.route] = await simulator.start()
  }

  process.on('message', (request: FleetRequest) => onRequest(request))
  // A parent that dies without saying stop must not leave listening simulators behind.
  process.on('disconnect', () => void stopAndExit(0))
  process.on('SIGTERM', () => void stopAndExit(0))
  process.on('SIGINT', () => void stopAndExit(0))
  await reply({ type: 'ready', ports })
}

main().catch(async (error: unknown) => {
  const message = error instanceof Error ? error.message : String(error)
  if (process.send === undefined) process.stderr.write(`gateway simulators: ${message}\n`)
  else await reply({ type: 'error', message })
  await stopAndExit(1)
})
