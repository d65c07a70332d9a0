// Runs as `mimamori check-config | dkim-keygen | token | org | import | backup | restore`: the
// commands that work on the configuration or the data folder directly. LMDB allows them while
// the appliance runs; what they write, the appliance sees at once.

import { existsSync, mkdirSync, readFileSync, writeFileSync, copyFileSync, readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { loadConfig, type Config } from '../appliance/config.js'
import { openStore, verifyKey, DATA_FILE, KEY_FILE } from '../appliance/store/store.js'
import { Directory, type OrganisationKind } from '../appliance/directory.js'
import { createToken, SCOPES, type Scope } from '../appliance/api-tokens.js'
import { importMembersCsv } from '../appliance/members/member-import.js'
import { MimamoriError } from '../appliance/errors.js'
import { generateDkimKey, formatDnsRecords } from './dkim-keygen.js'
import { readOptions } from './cli.js'

function out (value: unknown): void {
  process.stdout.write(typeof value === 'string' ? value : JSON.stringify(value, null, 2) + '\n')
}

export function configFrom (values: Record<string, unknown>): Config {
  const file = (values.config as string | undefined) ?? process.env.MIMAMORI_CONFIG
  return loadConfig(file === undefined ? {} : { file })
}

// mustExist: a command that only reads, or needs records already there, must not make a new
// data folder and key where a mistyped dataDir points.
async function withDirectory<T> (
  config: Config, work: (directory: Directory) => T, options: { mustExist?: boolean } = {}
): Promise<T> {
  const { store, vault, created } = openStore(config.dataDir, config.keyFile, options)
  if (created) {
    process.stderr.write(`A new data folder was made in ${config.dataDir}, with the address key ` +
      `${config.keyFile ?? join(config.dataDir, KEY_FILE)}. Back the key up: without it no address can be read.\n`)
  }
  try {
    const directory = new Directory(store, vault)
    directory.ensureDefaultTopics()
    return work(directory)
  } finally {
    await store.close()
  }
}

export async function checkConfigCommand (args: string[]): Promise<void> {
  const { values } = readOptions(args, {})
  out(configFrom(values))
}

export async function dkimKeygenCommand (args: string[]): Promise<void> {
  const { values } = readOptions(args, {
    domain: { type: 'string' },
    selector: { type: 'string' },
    out: { type: 'string' },
    bits: { type: 'string' },
    'public-ip': { type: 'string' },
    rua: { type: 'string' }
  })
  if (typeof values.domain !== 'string' || typeof values.selector !== 'string') {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'dkim-keygen needs --domain and --selector')
  }
  const bits = typeof values.bits === 'string' ? Number(values.bits) : undefined
  const publicIp = values['public-ip'] as string | undefined
  const rua = values.rua as string | undefined
  const file = resolve(typeof values.out === 'string' ? values.out : `dkim-${values.selector}.pem`)
  if (existsSync(file)) {
    throw new MimamoriError('MIMAMORI_CONFLICT', `${file} exists; give another --out or move the old key away`)
  }
  const key = generateDkimKey({
    domain: values.domain,
    selector: values.selector,
    ...(bits === undefined ? {} : { bits }),
    ...(publicIp === undefined ? {} : { publicIp }),
    ...(rua === undefined ? {} : { rua })
  })
  writeFileSync(file, key.privateKeyPem, { mode: 0o600, flag: 'wx' })
  process.stderr.write(`Private key written to ${file} (mode 0600); set dkim.keyFile to it.\n`)
  out(formatDnsRecords(key.records))
}

export async function tokenCommand (args: string[]): Promise<void> {
  const { values, positionals } = readOptions(args, { name: { type: 'string' }, scopes: { type: 'string' }, org: { type: 'string' } }, true)
  if (positionals.length !== 1 || positionals[0] !== 'create') {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'usage: mimamori token create --name NAME --scopes S,S [--org CODE]')
  }
  if (typeof values.name !== 'string' || typeof values.scopes !== 'string') {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `token create needs --name and --scopes (some of ${SCOPES.join(', ')})`)
  }
  const scopes = values.scopes.split(',').map((s) => s.trim()).filter((s) => s !== '') as Scope[]
  const unknown = scopes.filter((s) => !SCOPES.includes(s))
  if (unknown.length > 0 || scopes.length === 0) {
    const named = unknown.length > 0 ? `unknown scope ${unknown.map((s) => `"${s}"`).join(', ')}; ` : ''
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `${named}--scopes takes some of ${SCOPES.join(', ')}`)
  }
  const org = values.org as string | undefined
  const secret = await withDirectory(configFrom(values), (directory) => {
    if (org !== undefined) directory.organisation(org)
    return createToken(directory.store, { name: values.name as string, scopes, ...(org === undefined ? {} : { organisationId: org }) }).secret
  })
  out(`${secret}\n`)
  process.stderr.write('Keep this token: it is shown only once.\n')
}

const ORG_USAGE = 'usage: mimamori org create --id CODE --name NAME --kind KIND --address ADDR ' +
  '[--parent CODE] [--phone P] | mimamori org list'

// The kinds Directory's OrganisationKind allows; the Directory itself does not check them.
const ORGANISATION_KINDS: readonly OrganisationKind[] =
  ['city', 'school', 'kindergarten', 'fire-department', 'office', 'other']

export async function orgCommand (args: string[]): Promise<void> {
  const { values, positionals } = readOptions(args, {
    id: { type: 'string' }, name: { type: 'string' }, kind: { type: 'string' }, address: { type: 'string' },
    parent: { type: 'string' }, phone: { type: 'string' }
  }, true)
  const action = positionals[0]
  if (positionals.length !== 1 || (action !== 'list' && action !== 'create')) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', ORG_USAGE)
  }
  if (action === 'list') {
    await withDirectory(configFrom(values), (directory) => {
      out(directory.organisations().map((o) => ({
        ...o, groups: directory.groups(o.id).map((g) => ({ id: g.id, path: directory.groupPath(g.id) }))
      })))
    }, { mustExist: true })
    return
  }

  if (typeof values.id !== 'string' || typeof values.name !== 'string' || typeof values.address !== 'string') {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `org create needs --id, --name and --address; ${ORG_USAGE}`)
  }
  const kind = ((values.kind as string | undefined) ?? 'school') as OrganisationKind
  if (!ORGANISATION_KINDS.includes(kind)) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `--kind "${kind}" is not one of ${ORGANISATION_KINDS.join(', ')}`)
  }
  await withDirectory(configFrom(values), (directory) => {
    out(directory.createOrganisation({
      id: values.id as string,
      name: values.name as string,
      kind,
      postalAddress: values.address as string,
      ...(typeof values.parent === 'string' ? { parentId: values.parent } : {}),
      ...(typeof values.phone === 'string' ? { phone: values.phone } : {})
    }))
  })
}

export async function importCommand (args: string[]): Promise<void> {
  const { values, positionals } = readOptions(args, { org: { type: 'string' }, 'dry-run': { type: 'boolean' } }, true)
  const file = positionals[0]
  if (file === undefined || typeof values.org !== 'string') {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'usage: mimamori import FILE --org CODE [--dry-run]')
  }
  const input = readInputFile(file)
  const report = await withDirectory(configFrom(values), (directory) =>
    importMembersCsv(directory, values.org as string, input, { dryRun: values['dry-run'] === true }),
  { mustExist: true })
  out(report)
  if (report.errors.length > 0) {
    process.stderr.write(`${report.errors.length} row(s) were not imported; see "errors" above.\n`)
  }
}

/** The file's bytes, or MIMAMORI_NOT_FOUND naming it (an operator's typo needs no stack trace). */
export function readInputFile (file: string): Buffer {
  try {
    return readFileSync(file)
  } catch (err) {
    throw new MimamoriError('MIMAMORI_NOT_FOUND', `cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
}

export async function backupCommand (args: string[]): Promise<void> {
  const { values, positionals } = readOptions(args, {}, true)
  const target = positionals[0]
  if (target === undefined) throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'usage: mimamori backup DIR')
  const config = configFrom(values)
  if (existsSync(join(target, DATA_FILE))) {
    throw new MimamoriError('MIMAMORI_CONFLICT', `${target} already holds a backup`)
  }
  // The data is checked before the target folder is made: a wrong dataDir leaves nothing behind.
  const { store } = openStore(config.dataDir, config.keyFile, { mustExist: true })
  try {
    mkdirSync(target, { recursive: true, mode: 0o700 })
    // A consistent snapshot while the appliance keeps writing (LMDB copies from a read transaction).
    await store.root.backup(join(target, DATA_FILE), true)
  } finally {
    await store.close()
  }
  out(`backup written to ${resolve(target)}\n`)
  process.stderr.write(`The address key is not in the backup; keep ${config.keyFile ?? join(config.dataDir, KEY_FILE)} safe apart from it.\n`)
}

export async function restoreCommand (args: string[]): Promise<void> {
  const { values, positionals } = readOptions(args, {}, true)
  const source = positionals[0]
  if (source === undefined) throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'usage: mimamori restore DIR')
  const config = configFrom(values)
  if (!existsSync(join(source, DATA_FILE))) throw new MimamoriError('MIMAMORI_NOT_FOUND', `${source} holds no backup`)
  const present = existsSync(config.dataDir) ? readdirSync(config.dataDir).filter((f) => f.startsWith(DATA_FILE)) : []
  if (present.length > 0) {
    throw new MimamoriError('MIMAMORI_CONFLICT', `${config.dataDir} already holds data; restore into an empty folder`)
  }
  // The key is checked against the backup before anything is copied.
  const keyFile = config.keyFile ?? join(config.dataDir, KEY_FILE)
  if (!existsSync(keyFile)) {
    throw new MimamoriError('MIMAMORI_KEY_MISSING', `the backup holds no address key; put the key file kept ` +
      `apart from it at ${keyFile} first, then run restore again; nothing was copied`)
  }
  verifyKey(join(source, DATA_FILE), keyFile)
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
  copyFileSync(join(source, DATA_FILE), join(config.dataDir, DATA_FILE))
  out(`restored into ${config.dataDir}\n`)
}
