// Runs as `mimamori admin create`: makes a staff account in the data folder — the first city
// admin of a new install, or any later one. The account is the one the panel logs in and the
// command address checks; its password (when generated) and command secret are printed once.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { openStore, KEY_FILE } from '../appliance/store/store.js'
import { Directory } from '../appliance/directory.js'
import { StaffBook, STAFF_ROLES, type StaffRole } from '../appliance/staff.js'
import { audit } from '../appliance/audit-log.js'
import { inboundAddress } from '../appliance/inbound/local-parts.js'
import { maskAddress } from '../appliance/address.js'
import { MimamoriError } from '../appliance/errors.js'
import { configFrom } from './data-commands.js'
import { readOptions } from './cli.js'

const USAGE = 'usage: mimamori admin create --login L --name N --role ROLE [--org CODE] ' +
  '[--groups PATH,PATH] [--mail ADDRESS]... [--password-file FILE] [--pin-file FILE]'

export async function adminCommand (args: string[]): Promise<void> {
  const { values, positionals } = readOptions(args, {
    login: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string' },
    org: { type: 'string' },
    groups: { type: 'string' },
    mail: { type: 'string', multiple: true },
    'password-file': { type: 'string' },
    'pin-file': { type: 'string' }
  }, true)
  if (positionals.length !== 1 || positionals[0] !== 'create') {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', USAGE)
  }
  const { login, name, role } = values
  if (typeof login !== 'string' || typeof name !== 'string' || typeof role !== 'string') {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `admin create needs --login, --name and --role; ${USAGE}`)
  }
  if (!STAFF_ROLES.includes(role as StaffRole)) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `--role "${role}" is not one of ${STAFF_ROLES.join(', ')}`)
  }
  const password = readSecretFile(values['password-file'] as string | undefined, 'password')
  const pin = readSecretFile(values['pin-file'] as string | undefined, 'PIN')
  const config = configFrom(values)

  const { store, vault, created } = openStore(config.dataDir, config.keyFile)
  if (created) {
    process.stderr.write(`A new data folder was made in ${config.dataDir}, with the address key ` +
      `${config.keyFile ?? join(config.dataDir, KEY_FILE)}. Back the key up: without it no address can be read.\n`)
  }
  try {
    const directory = new Directory(store, vault)
    const org = values.org as string | undefined
    const groups = groupIds(directory, org, values.groups as string | undefined)
    const made = await new StaffBook(directory).create({
      login, name, role: role as StaffRole,
      ...(org === undefined ? {} : { organisationId: org }),
      ...(groups === undefined ? {} : { groups }),
      addresses: (values.mail as string[] | undefined) ?? [],
      ...(password === undefined ? {} : { password }),
      ...(pin === undefined ? {} : { pin })
    })
    const { staff } = made
    audit(store, {
      actor: 'cli', action: 'staff.create', target: `staff:${staff.id}`,
      detail: { login: staff.login, role: staff.role, organisation: staff.organisationId, groups: staff.groups }
    })
    const mail = (values.mail as string[] | undefined) ?? []
    process.stdout.write(JSON.stringify({
      id: staff.id,
      login: staff.login,
      name: staff.name,
      role: staff.role,
      organisationId: staff.organisationId,
      groups: staff.groups?.map((g) => directory.groupPath(g)),
      mail: mail.map((m) => maskAddress(m.trim())),
      commandAddress: inboundAddress('command', config.mailDomain, made.commandSecret),
      pin: staff.pinHash !== undefined,
      ...(password === undefined ? { password: made.password } : {})
    }, null, 2) + '\n')
    process.stderr.write('Keep the command address' + (password === undefined ? ' and the password' : '') +
      ': they are shown only once.\n')
  } finally {
    await store.close()
  }
}

function groupIds (directory: Directory, org: string | undefined, paths: string | undefined): string[] | undefined {
  if (paths === undefined) return undefined
  if (org === undefined) throw new MimamoriError('MIMAMORI_BAD_REQUEST', '--groups needs --org')
  directory.organisation(org)
  return paths.split(',').map((p) => p.trim()).filter((p) => p !== '').map((path) => {
    const group = directory.groupByPath(org, path.split('/').map((s) => s.trim()))
    if (group === undefined) throw new MimamoriError('MIMAMORI_NOT_FOUND', `no group "${path}" in ${org}`)
    return group.id
  })
}

// From a file, never from an option: options show in `ps` and the shell's history.
function readSecretFile (file: string | undefined, what: string): string | undefined {
  if (file === undefined) return undefined
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new MimamoriError('MIMAMORI_NOT_FOUND', `cannot read the ${what} file ${file}: ${(err as Error).message}`)
  }
  return text.replace(/\r?\n$/, '')
}
