// Runs as `mimamori step-mail import FILE --org CODE [--dry-run]`: adds a step-mail calendar from
// CSV straight into the data folder. LMDB allows it while the appliance runs; the appliance
// reads the calendar at each daily run, so new entries go out from the next one.

import { Directory } from '../appliance/directory.js'
import { MimamoriError } from '../appliance/errors.js'
import { openStore } from '../appliance/store/store.js'
import { importStepMailCsv } from '../appliance/schedules/step-mail-import.js'
import { readOptions } from './cli.js'
import { configFrom, readInputFile } from './data-commands.js'

const USAGE = 'usage: mimamori step-mail import FILE --org CODE [--dry-run]'

export async function stepMailCommand (args: string[]): Promise<void> {
  const [action, ...rest] = args
  const options = { org: { type: 'string' }, 'dry-run': { type: 'boolean' } } as const
  const { values, positionals } = readOptions(rest, options, true)
  const file = positionals[0]
  if (action !== 'import' || file === undefined || typeof values.org !== 'string') {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', USAGE)
  }
  const input = readInputFile(file)
  const config = configFrom(values)
  const { store, vault } = openStore(config.dataDir, config.keyFile, { mustExist: true })
  try {
    const directory = new Directory(store, vault)
    directory.ensureDefaultTopics()
    const dryRun = values['dry-run'] === true
    const report = importStepMailCsv(directory, values.org, input, { dryRun, createdBy: 'cli' })
    process.stdout.write(JSON.stringify(report, null, 2) + '\n')
    if (report.errors.length > 0) {
      process.stderr.write(`${report.errors.length} row(s) have problems; nothing was imported.\n`)
      process.exitCode = 1
    }
  } finally {
    await store.close()
  }
}
