// Runs as the `mimamori` command: reads the sub-command and its options, and hands over to the
// module that does the work. Errors end the process with a plain message and exit code 1.

import { parseArgs } from 'node:util'
import { MimamoriError } from '../appliance/errors.js'

const USAGE = `mimamori — alert mail appliance

Usage: mimamori <command> [options]

  start [--config FILE]                      run the appliance
  demo [--subscribers N] [--port P]          run it on a sample city with local gateway simulators
  bench [--recipients N] [--dkim] [--kill]   end-to-end benchmark; prints one JSON line
                                             (--kill: SIGKILL mid-broadcast, restart, count)
  check-config [--config FILE]               validate the configuration and print it
  dkim-keygen --domain D --selector S [--out FILE] [--public-ip IP] [--bits N] [--rua ADDR]
                                             make a DKIM key and print the DNS records
  token create --name NAME --scopes S,S [--org CODE] [--config FILE]
                                             make an API token (shown once)
  org create --id CODE --name NAME --kind KIND --address ADDR [--parent CODE] [--phone P]
  org list                                   organisations and their groups
  import FILE --org CODE [--dry-run] [--config FILE]
                                             import members from CSV (UTF-8, Shift_JIS, UTF-16)
  step-mail import FILE --org CODE [--dry-run] [--config FILE]
                                             add a step-mail calendar from CSV (docs/schedules.md)
  send --org CODE --subject S (--body TEXT | --body-file FILE) [--priority P]
       [--group PATH]... [--topic T]... [--subscriber ID]... [--url URL] [--token T] [--wait]
                                             send a broadcast through the running appliance's API
  backup DIR | restore DIR [--config FILE]   hot backup of the data folder, and restore into it
  admin create --login L --name N --role R [--org CODE] [--groups PATH,PATH] [--mail ADDR]...
       [--password-file FILE] [--pin-file FILE]
                                             make a staff account; prints its command address
  inspect-mail FILE|- [--to ADDR] [--config FILE]
                                             what the appliance makes of a mail, as JSON

The configuration file is YAML; every setting can be overridden by MIMAMORI_* variables
(MIMAMORI_HTTP__PORT=9000). See docs/configuration.md.
`

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  start: async (args) => { await (await import('./start-command.js')).startCommand(args) },
  demo: async (args) => { await (await import('./demo.js')).demoCommand(args) },
  bench: async (args) => { await (await import('./bench.js')).benchCommand(args) },
  'check-config': async (args) => { await (await import('./data-commands.js')).checkConfigCommand(args) },
  'dkim-keygen': async (args) => { await (await import('./data-commands.js')).dkimKeygenCommand(args) },
  token: async (args) => { await (await import('./data-commands.js')).tokenCommand(args) },
  org: async (args) => { await (await import('./data-commands.js')).orgCommand(args) },
  import: async (args) => { await (await import('./data-commands.js')).importCommand(args) },
  'step-mail': async (args) => { await (await import('./step-mail-command.js')).stepMailCommand(args) },
  send: async (args) => { await (await import('./send-command.js')).sendCommand(args) },
  backup: async (args) => { await (await import('./data-commands.js')).backupCommand(args) },
  restore: async (args) => { await (await import('./data-commands.js')).restoreCommand(args) },
  admin: async (args) => { await (await import('./admin-command.js')).adminCommand(args) },
  'inspect-mail': async (args) => { await (await import('./inspect-mail-command.js')).inspectMailCommand(args) }
}

async function main (argv: string[]): Promise<void> {
  const [name, ...rest] = argv
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(USAGE)
    return
  }
  const command = COMMANDS[name]
  if (command !== undefined && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(USAGE)
    return
  }
  if (command === undefined) {
    process.stderr.write(`mimamori: unknown command "${name}"\n\n${USAGE}`)
    process.exitCode = 2
    return
  }
  await command(rest)
}

/** parseArgs with the options every command shares, and a clear message on a bad option. */
export function readOptions<T extends NonNullable<Parameters<typeof parseArgs>[0]>['options']> (
  args: string[], options: T, allowPositionals = false
): { values: Record<string, string | boolean | string[] | undefined>, positionals: string[] } {
  try {
    const parsed = parseArgs({ args, options: { config: { type: 'string' }, ...options }, allowPositionals, strict: true })
    return { values: parsed.values as Record<string, string | boolean | string[] | undefined>, positionals: parsed.positionals }
  } catch (err) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `${(err as Error).message}; \`mimamori help\` lists the options`)
  }
}

/** The command's entry (bin/mimamori.js): runs one sub-command and sets the exit code. */
export function run (argv: string[]): void {
  main(argv).catch((err: unknown) => {
    // A system error (a missing file, a port in use, a refused connection) is the operator's to
    // fix and needs no stack trace; anything else is a bug, and the stack helps its report.
    const { code, syscall } = (err ?? {}) as { code?: unknown, syscall?: unknown }
    const message = err instanceof MimamoriError || (err instanceof Error && typeof syscall === 'string')
      ? `${(err as Error).message} (${String(code)})`
      : String((err as Error)?.stack ?? err)
    process.stderr.write(`mimamori: ${message}\n`)
    process.exit(1)
  })
}
