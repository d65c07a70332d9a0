// Gateway simulators in a child process, for the demo and the bench: the load they absorb then
// does not share an event loop with the appliance that sends it. The child is
// gateway-simulator-process; this file is the parent's side and the IPC protocol between them.

import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { GatewaySimulatorOptions, SimulatorStats } from './gateway-simulator.js'

export interface SimulatorEntry {
  /** the route the simulator stands in for, e.g. 'docomo'; also its default name */
  route: string
  options?: GatewaySimulatorOptions
}

export interface FleetStats {
  stats: Record<string, SimulatorStats>
  /** accepted deliveries beyond the first per recipient, over all routes */
  duplicates: number
}

export interface SimulatorFleet {
  ports: Record<string, number>
  pid: number
  stats: () => Promise<FleetStats>
  stop: () => Promise<void>
}

export interface FleetOptions {
  /** how long to wait for the child's ready message; compiling from source takes a while */
  readyTimeoutMs?: number
}

/** Parent to child. */
export type FleetRequest = { type: 'stats', id: number } | { type: 'stop' }

/** Child to parent. */
export type FleetReply =
  | { type: 'ready', ports: Record<string, number> }
  | { type: 'error', message: string }
  | ({ type: 'stats', id: number } & FleetStats)

export const SIMULATORS_ENV = 'MIMAMORI_SIMULATORS'

const STOP_GRACE_MS = 5000

/** The child entry beside this file: .ts when running from source, .js when compiled. */
function entryPath (): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  return fileURLToPath(new URL(`./gateway-simulator-process${ext}`, import.meta.url))
}

function waitForReady (child: ChildProcess, timeoutMs: number): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error): void => {
      cleanup()
      child.kill('SIGKILL')
      reject(error)
    }
    const onMessage = (reply: FleetReply): void => {
      if (reply.type === 'error') fail(new Error(`gateway simulators failed: ${reply.message}`))
      if (reply.type !== 'ready') return
      cleanup()
      resolve(reply.ports)
    }
    const onExit = (code: number | null): void => {
      fail(new Error(`gateway simulators exited with ${code} before they were ready`))
    }
    const timer = setTimeout(() => fail(new Error('gateway simulators were not ready in time')),
      timeoutMs)
    const cleanup = (): void => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

/** Forks the simulators, one per entry, and resolves once they all listen. */
export async function startSimulatorFleet (
  entries: SimulatorEntry[],
  options: FleetOptions = {}
): Promise<SimulatorFleet> {
  // fork inherits execArgv, so under tap or tsx the child loads the .ts entry the same way.
  const child = fork(entryPath(), [], {
    env: { ...process.env, [SIMULATORS_ENV]: JSON.stringify(entries) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    serialization: 'json'
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const ports = await waitForReady(child, options.readyTimeoutMs ?? 30_000)

  return {
    ports,
    pid: child.pid ?? 0,
    stats: () => requestStats(child),
    stop: () => stopChild(child, exited)
  }
}

let nextRequestId = 1

function requestStats (child: ChildProcess): Promise<FleetStats> {
  const id = nextRequestId++
  return new Promise((resolve, reject) => {
    const onMessage = (reply: FleetReply): void => {
      if (reply.type !== 'stats' || reply.id !== id) return
      cleanup()
      resolve({ stats: reply.stats, duplicates: reply.duplicates })
    }
    const onExit = (): void => {
      cleanup()
      reject(new Error('gateway simulators exited before answering'))
    }
    const cleanup = (): void => {
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
    child.send({ type: 'stats', id } satisfies FleetRequest)
  })
}

async function stopChild (child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  if (child.connected) child.send({ type: 'stop' } satisfies FleetRequest)

  // A child stuck past the grace period is killed rather than left behind the parent.
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
  await exited
  clearTimeout(timer)
}
