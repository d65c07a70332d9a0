// Runs as `mimamori start`: opens the appliance on its configuration, serves HTTP, resumes any
// unfinished broadcast, and closes cleanly on SIGINT or SIGTERM.

import { Appliance } from '../appliance/appliance.js'
import { readOptions } from './cli.js'
import { configFrom } from './data-commands.js'

export async function startCommand (args: string[]): Promise<void> {
  const { values } = readOptions(args, {})
  const appliance = Appliance.open(configFrom(values))
  const url = await appliance.serve()
  appliance.log.info({ url }, 'listening')
  stopOnSignal(appliance)
}

export function stopOnSignal (appliance: Appliance, after?: () => Promise<void>): void {
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    appliance.log.info({ signal }, 'stopping')
    appliance.close()
      .then(async () => { await after?.() })
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        appliance.log.error({ err }, 'stop failed')
        process.exit(1)
      })
  }
  process.once('SIGINT', () => { stop('SIGINT') })
  process.once('SIGTERM', () => { stop('SIGTERM') })
}
