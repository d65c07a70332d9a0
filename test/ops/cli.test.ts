// The `mimamori` command as an operator runs it: each test spawns the compiled CLI in a fresh
// folder with its own configuration file, and checks the exit code, what it printed, and what
// it did to the data folder.

import t, { type Test } from 'tap'
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto'
import { join } from 'node:path'
import { once } from 'node:events'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { simpleParser } from 'mailparser'
import { CARRIER_ROUTES } from '../../ops/sample-city.js'
import { openStore } from '../../appliance/store/store.js'
import { Directory } from '../../appliance/directory.js'
import { findToken } from '../../appliance/api-tokens.js'
import { startSimulators } from '../helpers.js'
import { FIXTURES, parseJson, runCli, startCli, writeConfig, type CliResult } from './cli-process.js'

const STACK_TRACE = /\n\s+at .+:\d+:\d+/

function sha256 (file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex')
}

/** A failed command: exit 1, one clear line naming the code, nothing on stdout, no stack trace. */
function assertRefused (t: Test, result: CliResult, code: string, message?: RegExp | string): void {
  t.equal(result.code, 1, `exit code 1 (stderr: ${result.stderr.trim()})`)
  t.equal(result.stdout, '', 'nothing on stdout')
  t.match(result.stderr, new RegExp(`^mimamori: .*\\(${code}\\)\\n$`, 's'), `stderr names ${code}`)
  if (message !== undefined) t.match(result.stderr, message)
  t.notMatch(result.stderr, STACK_TRACE, 'no stack trace')
}

/** Makes the city and one school below it through the CLI. */
async function createCityAndSchool (t: Test, config: string): Promise<void> {
  const city = await runCli(t, ['org', 'create', '--config', config, '--id', 'matsuyama', '--name', '松山市',
    '--kind', 'city', '--address', '愛媛県松山市二番町4-7-2'])
  t.equal(city.code, 0, `city created (${city.stderr.trim()})`)
  const school = await runCli(t, ['org', 'create', '--config', config, '--id', 'higashi-es', '--name', '松山市立東小学校',
    '--kind', 'school', '--address', '愛媛県松山市東町1-1', '--parent', 'matsuyama'])
  t.equal(school.code, 0, `school created (${school.stderr.trim()})`)
}

async function orgList (t: Test, config: string): Promise<Array<{ id: string, parentId?: string, groups: Array<{ path: string }> }>> {
  const result = await runCli(t, ['org', 'list', '--config', config])
  t.equal(result.code, 0, `org list works (${result.stderr.trim()})`)
  return parseJson(t, result)
}

async function groupPaths (t: Test, config: string, org: string): Promise<string[]> {
  return (await orgList(t, config)).find((o) => o.id === org)?.groups.map((g) => g.path) ?? []
}

t.test('help and no command print the usage; an unknown command exits 2; a bad option exits 1 without a stack trace', async (t) => {
  const dir = t.testdir()
  for (const args of [['help'], [], ['--help'], ['start', '--help']]) {
    const result = await runCli(t, args, { cwd: dir })
    t.equal(result.code, 0, `mimamori ${args.join(' ')} exits 0`)
    t.match(result.stdout, /^Usage: mimamori <command> \[options\]$/m)
    t.match(result.stdout, /^ {2}send --org CODE --subject S/m, 'the usage lists the commands')
    t.equal(result.stderr, '')
  }

  const unknown = await runCli(t, ['frobnicate'], { cwd: dir })
  t.equal(unknown.code, 2)
  t.equal(unknown.stdout, '')
  t.match(unknown.stderr, /^mimamori: unknown command "frobnicate"\n/)
  t.match(unknown.stderr, /Usage: mimamori <command>/, 'the usage follows on stderr')

  const badOption = await runCli(t, ['check-config', '--bogus'], { cwd: dir })
  assertRefused(t, badOption, 'MIMAMORI_BAD_REQUEST', /Unknown option '--bogus'/)
  t.same(readdirSync(dir), [], 'nothing was made in the working folder')
})

t.test('check-config prints the effective configuration with its defaults and makes nothing', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  const result = await runCli(t, ['check-config', '--config', config], { cwd: dir })
  t.equal(result.code, 0)
  t.equal(result.stderr, '')
  const effective = parseJson(t, result)
  t.equal(effective.dataDir, join(dir, 'data'))
  t.same(effective.http, { host: '127.0.0.1', port: 0 })
  t.same(effective.smtp, { host: '127.0.0.1', port: 2525, maxMessageBytes: 10 * 1024 * 1024 })
  t.equal(effective.timeZone, 'Asia/Tokyo')
  t.equal(effective.mailDomain, 'mimamori.example.jp')
  t.equal(effective.defaultRoute.mode, 'mx')
  t.equal(effective.delivery.maxAttempts, 12)
  t.same(effective.routes, [])
  t.notOk(existsSync(join(dir, 'data')), 'no data folder was made')
})

t.test('check-config refuses a configuration with unknown keys and names each of them', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir, { colour: 'blue', http: { port: 0, bind: '0.0.0.0' } })
  const result = await runCli(t, ['check-config', '--config', config])
  assertRefused(t, result, 'MIMAMORI_CONFIG_INVALID', /\/colour: Unexpected property/)
  t.match(result.stderr, /\/http\/bind: Unexpected property/)
})

t.test('check-config takes MIMAMORI_HTTP__PORT over the file and refuses a variable that names no setting', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  const result = await runCli(t, ['check-config', '--config', config], { env: { MIMAMORI_HTTP__PORT: '9123' } })
  t.equal(result.code, 0)
  t.equal(parseJson(t, result).http.port, 9123)

  const notNumber = await runCli(t, ['check-config', '--config', config], { env: { MIMAMORI_HTTP__PORT: 'eighty' } })
  assertRefused(t, notNumber, 'MIMAMORI_CONFIG_INVALID', /MIMAMORI_HTTP__PORT must be a number/)

  const unknown = await runCli(t, ['check-config', '--config', config], { env: { MIMAMORI_HTTP__PROT: '9000' } })
  assertRefused(t, unknown, 'MIMAMORI_CONFIG_INVALID', /MIMAMORI_HTTP__PROT names no setting/)
})

t.test('check-config reads the file MIMAMORI_CONFIG names when --config is absent', async (t) => {
  const dir = t.testdir({ elsewhere: {} })
  const config = writeConfig(dir, { timeZone: 'Asia/Seoul' }, 'from-env.yaml')
  const result = await runCli(t, ['check-config'], { cwd: join(dir, 'elsewhere'), env: { MIMAMORI_CONFIG: config } })
  t.equal(result.code, 0, result.stderr)
  const effective = parseJson(t, result)
  t.equal(effective.timeZone, 'Asia/Seoul')
  t.equal(effective.dataDir, join(dir, 'data'), 'dataDir is relative to the file, not the working folder')

  const missing = await runCli(t, ['check-config'], { env: { MIMAMORI_CONFIG: join(dir, 'nope.yaml') } })
  assertRefused(t, missing, 'MIMAMORI_CONFIG_INVALID', /cannot read .*nope\.yaml/)
})

t.test('org create makes a city and a school below it, org list shows them, and the first one tells a new data folder and key were made', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  const city = await runCli(t, ['org', 'create', '--config', config, '--id', 'matsuyama', '--name', '松山市',
    '--kind', 'city', '--address', '愛媛県松山市二番町4-7-2', '--phone', '089-948-6688'])
  t.equal(city.code, 0)
  t.match(parseJson(t, city), { id: 'matsuyama', name: '松山市', kind: 'city', phone: '089-948-6688' })
  t.match(city.stderr, `A new data folder was made in ${join(dir, 'data')}`)
  t.match(city.stderr, `key ${join(dir, 'data', 'address.key')}. Back the key up`)
  t.ok(existsSync(join(dir, 'data', 'mimamori.mdb')), 'the data file exists')
  t.equal(statSync(join(dir, 'data', 'address.key')).mode & 0o777, 0o600, 'the key file is 0600')
  t.equal(statSync(join(dir, 'data')).mode & 0o777, 0o700, 'the data folder is private')

  const school = await runCli(t, ['org', 'create', '--config', config, '--id', 'higashi-es', '--name', '松山市立東小学校',
    '--kind', 'school', '--address', '愛媛県松山市東町1-1', '--parent', 'matsuyama'])
  t.equal(school.code, 0)
  t.equal(school.stderr, '', 'no new-folder message the second time')
  t.match(parseJson(t, school), { id: 'higashi-es', kind: 'school', parentId: 'matsuyama' })

  const list = await orgList(t, config)
  t.same(list.map((o) => o.id).sort(), ['higashi-es', 'matsuyama'])
  t.match(list.find((o) => o.id === 'higashi-es'), { parentId: 'matsuyama', groups: [] })
})

t.test('org create refuses a bad code, an unknown parent or kind clearly and stores nothing', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  await createCityAndSchool(t, config)
  const create = ['org', 'create', '--config', config, '--name', '学校', '--address', '松山市']

  assertRefused(t, await runCli(t, [...create, '--id', 'Bad_Code']), 'MIMAMORI_BAD_REQUEST',
    /organisation code "Bad_Code" must be lower-case letters, digits and hyphens/)
  assertRefused(t, await runCli(t, [...create, '--id', 'kita-es', '--parent', 'nowhere']), 'MIMAMORI_NOT_FOUND',
    /no organisation "nowhere"/)
  assertRefused(t, await runCli(t, [...create, '--id', 'kita-es', '--kind', 'planet']), 'MIMAMORI_BAD_REQUEST',
    /--kind "planet" is not one of city, school/)
  assertRefused(t, await runCli(t, [...create, '--id', 'matsuyama']), 'MIMAMORI_CONFLICT', /organisation "matsuyama" exists/)
  assertRefused(t, await runCli(t, ['org', 'create', '--config', config, '--id', 'kita-es']), 'MIMAMORI_BAD_REQUEST',
    /org create needs --id, --name and --address/)
  assertRefused(t, await runCli(t, ['org', 'remove', '--config', config]), 'MIMAMORI_BAD_REQUEST', /usage: mimamori org/)

  t.same((await orgList(t, config)).map((o) => o.id).sort(), ['higashi-es', 'matsuyama'], 'nothing was added')
})

t.test('org list on a folder without data exits 1 and makes no data folder or key', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  assertRefused(t, await runCli(t, ['org', 'list', '--config', config]), 'MIMAMORI_NOT_FOUND', /holds no Mimamori data/)
  t.notOk(existsSync(join(dir, 'data')), 'no data folder')
})

t.test('import reads an Excel Shift_JIS roster: a JSON report of imported rows, errors with line numbers, groups made', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  await createCityAndSchool(t, config)

  const result = await runCli(t, ['import', join(FIXTURES, 'roster-cp932.csv'), '--org', 'higashi-es', '--config', config])
  t.equal(result.code, 0)
  const report = parseJson(t, result)
  t.match(report, { organisationId: 'higashi-es', encoding: 'cp932', totalRecords: 18, imported: 14, created: 14, updated: 0 })
  t.same(report.errors.map((e: { line: number, code: string }) => [e.line, e.code]),
    [[11, 'duplicate-conflict'], [13, 'bad-address'], [14, 'missing-address']])
  t.same(report.duplicates, [{ line: 10, firstLine: 4 }])
  t.ok(report.groupsCreated.includes('1年/2組'), 'grade and class make one path')
  t.ok(report.groupsCreated.includes('登校班1'), 'a CP932-only ① is read')
  t.match(result.stderr, /^3 row\(s\) were not imported; see "errors" above\.\n$/)

  const groups = await groupPaths(t, config, 'higashi-es')
  for (const path of ['1年', '1年/1組', '1年/2組', '2年/A組', 'PTA', '見守り隊~朝~', '通学バス']) {
    t.ok(groups.includes(path), `org list shows the group ${path}`)
  }

  const again = await runCli(t, ['import', join(FIXTURES, 'roster-utf16le.txt'), '--org', 'higashi-es', '--config', config])
  t.equal(again.code, 0)
  t.match(parseJson(t, again), { encoding: 'utf-16le', imported: 14, created: 0, updated: 14, groupsCreated: [] },
    'the same roster saved by Excel as Unicode text updates the same 14 people')
})

t.test('import --dry-run reports the rows but stores nothing', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  await createCityAndSchool(t, config)
  const args = ['import', join(FIXTURES, 'roster-cp932.csv'), '--org', 'higashi-es', '--config', config]

  const dry = await runCli(t, [...args, '--dry-run'])
  t.equal(dry.code, 0)
  const preview = parseJson(t, dry)
  t.match(preview, { imported: 14, created: 14, updated: 0 }, 'the dry run counts the people it would add')
  t.ok(preview.groupsCreated.includes('1年/2組'), 'the dry run lists the groups it would make')
  t.equal(dry.stderr.match(/were not imported/g)?.length, 1, 'the dry run reports the same bad rows')
  t.same(await groupPaths(t, config, 'higashi-es'), [], 'no group was made')

  const real = await runCli(t, args)
  t.match(parseJson(t, real), { imported: 14, created: 14 }, 'the real import still creates every subscriber')
  t.ok((await groupPaths(t, config, 'higashi-es')).length > 0)
})

t.test('import reads the Thunderbird address books: UTF-16 imports, a Japanese address in Shift_JIS is refused by line', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  await createCityAndSchool(t, config)

  const sjis = await runCli(t, ['import', join(FIXTURES, 'shiftjis_addressbook.csv'), '--org', 'higashi-es', '--config', config])
  t.equal(sjis.code, 0)
  const sjisReport = parseJson(t, sjis)
  t.match(sjisReport, { encoding: 'cp932', totalRecords: 1, imported: 0, columns: { name: 'Display Name', address: 'Primary Email' } })
  t.match(sjisReport.errors, [{ line: 2, code: 'non-ascii-address' }])
  t.match(sjis.stderr, /1 row\(s\) were not imported/)

  const utf16 = await runCli(t, ['import', join(FIXTURES, 'utf16_addressbook.csv'), '--org', 'higashi-es', '--config', config])
  t.equal(utf16.code, 0)
  t.match(parseJson(t, utf16), { encoding: 'utf-16le', imported: 1, created: 1, errors: [] })
  t.equal(utf16.stderr, '')
})

t.test('import refuses a file without an address column, a missing file and an unknown organisation', async (t) => {
  const root = t.testdir({ install: {}, other: {} })
  const dir = join(root, 'install')
  const config = writeConfig(dir)
  await createCityAndSchool(t, config)
  const before = sha256(join(dir, 'data', 'mimamori.mdb'))

  assertRefused(t, await runCli(t, ['import', join(FIXTURES, 'tab_comma_mixed.csv'), '--org', 'higashi-es', '--config', config]),
    'MIMAMORI_CSV_NO_ADDRESS_COLUMN', /has no mail address column/)
  assertRefused(t, await runCli(t, ['import', join(dir, 'nope.csv'), '--org', 'higashi-es', '--config', config]),
    'MIMAMORI_NOT_FOUND', /cannot read .*nope\.csv/)
  assertRefused(t, await runCli(t, ['import', join(FIXTURES, 'roster-cp932.csv'), '--org', 'kita-es', '--config', config]),
    'MIMAMORI_NOT_FOUND', /no organisation "kita-es"/)
  assertRefused(t, await runCli(t, ['import', '--org', 'higashi-es', '--config', config]), 'MIMAMORI_BAD_REQUEST',
    /usage: mimamori import FILE/)
  t.same(await groupPaths(t, config, 'higashi-es'), [], 'nothing was imported')
  t.equal(sha256(join(dir, 'data', 'mimamori.mdb')), before, 'the data file is unchanged')

  const other = join(root, 'other')
  const fresh = writeConfig(other)
  assertRefused(t, await runCli(t, ['import', join(FIXTURES, 'roster-cp932.csv'), '--org', 'higashi-es', '--config', fresh]),
    'MIMAMORI_NOT_FOUND', /holds no Mimamori data/)
  t.notOk(existsSync(join(other, 'data')), 'an import into a folder without data makes no data folder')
})

t.test('token create prints an mmr_ token on stdout and a warning on stderr, and stores its scopes', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  await createCityAndSchool(t, config)

  const cityWide = await runCli(t, ['token', 'create', '--config', config, '--name', 'fire-system',
    '--scopes', 'broadcasts:write,broadcasts:read'])
  t.equal(cityWide.code, 0)
  t.match(cityWide.stdout, /^mmr_[A-Za-z0-9_-]{20,}\n$/)
  t.equal(cityWide.stderr, 'Keep this token: it is shown only once.\n')

  const school = await runCli(t, ['token', 'create', '--config', config, '--name', 'school-script',
    '--scopes', 'broadcasts:read', '--org', 'higashi-es'])
  t.equal(school.code, 0)
  t.match(school.stdout, /^mmr_/)

  const { store } = openStore(join(dir, 'data'))
  t.teardown(async () => { await store.close() })
  t.match(findToken(store, cityWide.stdout.trim()), { name: 'fire-system', scopes: ['broadcasts:write', 'broadcasts:read'] })
  t.notOk(findToken(store, cityWide.stdout.trim())?.organisationId, 'a token without --org is city-wide')
  t.match(findToken(store, school.stdout.trim()), { name: 'school-script', organisationId: 'higashi-es' })
})

t.test('token create refuses an unknown scope, naming it, and an unknown organisation', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  await createCityAndSchool(t, config)
  const create = ['token', 'create', '--config', config, '--name', 'n']

  assertRefused(t, await runCli(t, [...create, '--scopes', 'broadcasts:write,broadcasts:delete']), 'MIMAMORI_BAD_REQUEST',
    /unknown scope "broadcasts:delete"; --scopes takes some of broadcasts:read, broadcasts:write/)
  assertRefused(t, await runCli(t, [...create, '--scopes', 'admin', '--org', 'kita-es']), 'MIMAMORI_NOT_FOUND',
    /no organisation "kita-es"/)
  assertRefused(t, await runCli(t, ['token', 'create', '--config', config, '--name', 'n']), 'MIMAMORI_BAD_REQUEST',
    /token create needs --name and --scopes/)
  assertRefused(t, await runCli(t, ['token', 'list', '--config', config]), 'MIMAMORI_BAD_REQUEST', /usage: mimamori token create/)

  const { store } = openStore(join(dir, 'data'))
  t.teardown(async () => { await store.close() })
  t.equal(store.tokens.getCount(), 0, 'no token was stored')
})

t.test('send submits a broadcast through a running appliance and follows it to done', async (t) => {
  const simulators = await startSimulators(t)
  const dir = t.testdir({ 'body.txt': '明日は臨時休校です。\n登校しないでください。\n' })
  const config = writeConfig(dir, {
    publicBaseUrl: 'https://mimamori.example.jp',
    smtp: { port: 0 },
    delivery: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2 },
    routes: CARRIER_ROUTES.map((r) => ({ ...r, host: '127.0.0.1', port: simulators[r.name]?.port, maxConnections: 2 })),
    defaultRoute: { mode: 'smarthost', host: '127.0.0.1', port: simulators.default?.port, maxConnections: 2 }
  })
  await createCityAndSchool(t, config)
  t.equal((await runCli(t, ['import', join(FIXTURES, 'roster-cp932.csv'), '--org', 'higashi-es', '--config', config])).code, 0)
  const created = await runCli(t, ['token', 'create', '--config', config, '--name', 'cli',
    '--scopes', 'broadcasts:write,broadcasts:read', '--org', 'higashi-es'])
  const token = created.stdout.trim()
  const readOnly = (await runCli(t, ['token', 'create', '--config', config, '--name', 'viewer', '--scopes', 'broadcasts:read'])).stdout.trim()

  // The appliance logs its URL at info; silent would leave the port unknown.
  const appliance = startCli(t, ['start', '--config', config], { env: { LOG_LEVEL: 'info' } })
  const url = (await appliance.waitForStdout(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/))[1] as string
  const base = ['send', '--org', 'higashi-es', '--subject', '【緊急】不審者情報', '--priority', 'emergency', '--url', url]
  const send = [...base, '--group', '1年/2組']

  const first = await runCli(t, [...send, '--body', '下校時は複数で帰ってください。', '--token', token, '--wait'])
  t.equal(first.code, 0, first.stderr)
  t.equal(first.stderr, '')
  const lines = first.stdout.trimEnd().split('\n')
  t.match(lines[0], /^broadcast \d+ submitted to 2 recipient\(s\)$/)
  t.equal(lines.at(-1), 'done: 2/2 accepted, 0 failed, 0 deferred')
  t.ok(lines.slice(1).every((l) => /^(sending|done): \d+\/2 accepted, \d+ failed, \d+ deferred$/.test(l)), 'progress lines')
  t.equal(simulators.docomo?.acceptedCount('"kenta..sato."@docomo.ne.jp'), 1, 'the legacy docomo address got it, quoted')
  t.equal(simulators.au?.acceptedCount('misaki_suzuki@au.com'), 1)
  t.equal(Object.values(simulators).reduce((n, s) => n + s.stats().acceptedRecipients, 0), 2, 'no one else got it')

  const wrong = await runCli(t, [...send, '--body', 'x', '--token', 'mmr_not-a-real-token'])
  assertRefused(t, wrong, 'MIMAMORI_UNAUTHORIZED', /the appliance answered 401/)
  const forbidden = await runCli(t, [...send, '--body', 'x', '--token', readOnly])
  assertRefused(t, forbidden, 'MIMAMORI_FORBIDDEN', /the token lacks the scope broadcasts:write/)
  const noGroup = await runCli(t, [...base, '--group', '9年/9組', '--body', 'x', '--token', token])
  assertRefused(t, noGroup, 'MIMAMORI_NOT_FOUND', /no group "9年\/9組" in higashi-es/)
  assertRefused(t, await runCli(t, [...send, '--body', 'x']), 'MIMAMORI_BAD_REQUEST', /--token \(or MIMAMORI_API_TOKEN\)/)

  // A token made while the appliance runs works at once: both share the LMDB environment.
  const late = await runCli(t, ['token', 'create', '--config', config, '--name', 'late', '--scopes', 'broadcasts:write,broadcasts:read'])
  t.equal(late.code, 0, late.stderr)
  const fromEnv = await runCli(t, [...send, '--body-file', join(dir, 'body.txt'), '--wait'], { env: { MIMAMORI_API_TOKEN: late.stdout.trim() } })
  t.equal(fromEnv.code, 0, fromEnv.stderr)
  t.match(fromEnv.stdout, /^broadcast \d+ submitted to 2 recipient\(s\)\n/)
  t.match(fromEnv.stdout, /\ndone: 2\/2 accepted, 0 failed, 0 deferred\n$/)
  t.equal(simulators.au?.acceptedCount('misaki_suzuki@au.com'), 2)
  const last = simulators.au?.received.at(-1)
  const mail = await simpleParser(last?.raw ?? Buffer.alloc(0))
  t.equal(mail.subject, '【緊急】不審者情報')
  t.match(mail.text, '明日は臨時休校です。\n登校しないでください。', 'the body is the --body-file text')

  assertRefused(t, await runCli(t, [...send, '--body-file', join(dir, 'nope.txt'), '--token', token]), 'MIMAMORI_NOT_FOUND',
    /cannot read .*nope\.txt/)

  appliance.child.kill('SIGTERM')
  t.equal((await appliance.exited).code, 0, 'the appliance stops cleanly on SIGTERM')
  assertRefused(t, await runCli(t, [...send, '--body', 'x', '--token', token]), 'MIMAMORI_BAD_REQUEST',
    /cannot reach the appliance at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/)
})

t.test('send posts to the API under the path of --url, with the targets and priority given, and checks them first', async (t) => {
  const seen: Array<{ method?: string, url?: string, authorization?: string, body: any }> = []
  let answer = (res: ServerResponse): void => {
    res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 7, total: 3 }))
  }
  const server = createServer((req, res) => {
    let text = ''
    req.setEncoding('utf8').on('data', (chunk: string) => { text += chunk }).on('end', () => {
      seen.push({ method: req.method, url: req.url, authorization: req.headers.authorization, body: text === '' ? undefined : JSON.parse(text) })
      answer(res)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mimamori`
  const send = ['send', '--org', 'higashi-es', '--subject', '運動会の延期', '--body', '雨天のため延期します。', '--token', 'mmr_t', '--url', base]

  const result = await runCli(t, [...send, '--priority', 'bulk', '--group', '1年/2組', '--group', 'PTA', '--topic', 'school-notice', '--subscriber', '12'])
  t.equal(result.code, 0, result.stderr)
  t.equal(result.stdout, 'broadcast 7 submitted to 3 recipient(s)\n')
  t.match(seen, [{
    method: 'POST',
    url: '/mimamori/api/v1/broadcasts',
    authorization: 'Bearer mmr_t',
    body: {
      organisation: 'higashi-es', subject: '運動会の延期', body: '雨天のため延期します。', priority: 'bulk',
      targets: { groupPaths: ['1年/2組', 'PTA'], topics: ['school-notice'], subscribers: [12] }
    }
  }])

  assertRefused(t, await runCli(t, [...send, '--priority', 'urgent']), 'MIMAMORI_BAD_REQUEST', /--priority takes one of emergency, normal, bulk/)
  assertRefused(t, await runCli(t, [...send, '--subscriber', 'suzuki']), 'MIMAMORI_BAD_REQUEST', /--subscriber takes a subscriber number, not "suzuki"/)
  assertRefused(t, await runCli(t, [...send, '--body-file', 'body.txt']), 'MIMAMORI_BAD_REQUEST', /give --body or --body-file, not both/)
  for (const url of ['127.0.0.1:8080', 'appliance:8080']) {
    assertRefused(t, await runCli(t, [...send.slice(0, -2), '--url', url]), 'MIMAMORI_BAD_REQUEST', `--url "${url}" is not an http(s) URL`)
  }
  t.equal(seen.length, 1, 'nothing refused here reached the API')

  answer = (res) => { res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad Gateway</h1>') }
  assertRefused(t, await runCli(t, send), 'MIMAMORI_BAD_REQUEST', /answered 502 with something other than JSON; is it the appliance\?/)
})

t.test('dkim-keygen writes a 0600 key and prints the DKIM, SPF and DMARC records; it never overwrites a key', async (t) => {
  const dir = t.testdir()
  const out = join(dir, 'dkim.pem')
  const args = ['dkim-keygen', '--domain', 'mimamori.example.jp', '--selector', 'mm2026', '--out', out,
    '--rua', 'dmarc-reports@city.example.jp']
  const result = await runCli(t, args)
  t.equal(result.code, 0, result.stderr)
  t.equal(statSync(out).mode & 0o777, 0o600, 'the key file is 0600')
  const pem = readFileSync(out, 'utf8')
  t.match(pem, /^-----BEGIN PRIVATE KEY-----\n/)
  t.match(result.stderr, `Private key written to ${out} (mode 0600)`)

  const dkim = /^mm2026\._domainkey\.mimamori\.example\.jp\. 3600 IN TXT \( ((?:"[^"]*"\s*)+)\)$/m.exec(result.stdout)
  t.ok(dkim, 'a TXT record for mm2026._domainkey.mimamori.example.jp')
  const value = [...(dkim?.[1] ?? '').matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('')
  const spki = createPublicKey(createPrivateKey(pem)).export({ format: 'der', type: 'spki' }).toString('base64')
  t.equal(value, `v=DKIM1; k=rsa; p=${spki}`, 'the record publishes the public half of the written key')
  t.match(result.stdout, /^mimamori\.example\.jp\. 3600 IN TXT "v=spf1 mx -all"$/m)
  t.match(result.stdout, /^_dmarc\.mimamori\.example\.jp\. 3600 IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@city\.example\.jp"$/m)

  const again = await runCli(t, args)
  assertRefused(t, again, 'MIMAMORI_CONFLICT', /dkim\.pem exists; give another --out/)
  t.equal(readFileSync(out, 'utf8'), pem, 'the first key is untouched')
})

t.test('backup writes DIR/mimamori.mdb from a folder with data and warns that the key is not in it', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  await createCityAndSchool(t, config)
  const target = join(dir, 'backup')

  const result = await runCli(t, ['backup', target, '--config', config])
  t.equal(result.code, 0, result.stderr)
  t.equal(result.stdout, `backup written to ${target}\n`)
  t.equal(result.stderr, `The address key is not in the backup; keep ${join(dir, 'data', 'address.key')} safe apart from it.\n`)
  t.ok(existsSync(join(target, 'mimamori.mdb')))
  t.notOk(existsSync(join(target, 'address.key')), 'the key stays out of the backup')

  assertRefused(t, await runCli(t, ['backup', target, '--config', config]), 'MIMAMORI_CONFLICT', /already holds a backup/)
})

t.test('backup of a configuration whose data folder holds no data exits 1 and creates nothing', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  const target = join(dir, 'backup')
  assertRefused(t, await runCli(t, ['backup', target, '--config', config]), 'MIMAMORI_NOT_FOUND', /holds no Mimamori data; check dataDir/)
  t.notOk(existsSync(target), 'no backup folder')
  t.notOk(existsSync(join(dir, 'data')), 'no data folder')
})

t.test('restore puts a backup into an empty data folder once the right key file is placed, and refuses otherwise', async (t) => {
  const root = t.testdir({ install: {}, other: {} })
  const dir = join(root, 'install')
  const config = writeConfig(dir)
  await createCityAndSchool(t, config)
  t.equal((await runCli(t, ['import', join(FIXTURES, 'roster-cp932.csv'), '--org', 'higashi-es', '--config', config])).code, 0)
  const backup = join(dir, 'backup')
  t.equal((await runCli(t, ['backup', backup, '--config', config])).code, 0)

  // Another install's key: a valid key that does not belong to this data.
  const otherDir = join(root, 'other')
  await runCli(t, ['org', 'create', '--config', writeConfig(otherDir), '--id', 'x', '--name', 'x', '--address', 'x'])

  const restoredDir = join(dir, 'restored')
  const restoredConfig = writeConfig(dir, { dataDir: restoredDir }, 'restored.yaml')
  const restore = ['restore', backup, '--config', restoredConfig]

  assertRefused(t, await runCli(t, restore), 'MIMAMORI_KEY_MISSING', /put the key file kept apart from it at .*address\.key first/)
  t.notOk(existsSync(restoredDir), 'without a key nothing is made')

  mkdirSync(restoredDir, { mode: 0o700 })
  copyFileSync(join(otherDir, 'data', 'address.key'), join(restoredDir, 'address.key'))
  assertRefused(t, await runCli(t, restore), 'MIMAMORI_KEY_WRONG', /does not belong to this data folder/)
  t.same(readdirSync(restoredDir), ['address.key'], 'with the wrong key nothing is copied')

  copyFileSync(join(dir, 'data', 'address.key'), join(restoredDir, 'address.key'))
  const result = await runCli(t, restore)
  t.equal(result.code, 0, result.stderr)
  t.equal(result.stdout, `restored into ${restoredDir}\n`)
  const list = await orgList(t, restoredConfig)
  t.same(list.map((o) => o.id).sort(), ['higashi-es', 'matsuyama'], 'org list shows the restored organisations')
  t.ok(list.find((o) => o.id === 'higashi-es')?.groups.some((g) => g.path === '1年/2組'), 'and their groups')

  const { store, vault } = openStore(restoredDir)
  const directory = new Directory(store, vault)
  const addresses = [...store.subscribers.getRange()].map((e) => directory.contact(e.value).a)
  await store.close()
  t.equal(addresses.length, 14)
  t.ok(addresses.includes('misaki_suzuki@au.com'), 'the addresses read with the restored key')

  const before = sha256(join(restoredDir, 'mimamori.mdb'))
  assertRefused(t, await runCli(t, restore), 'MIMAMORI_CONFLICT', /already holds data; restore into an empty folder/)
  t.equal(sha256(join(restoredDir, 'mimamori.mdb')), before, 'the data already there is untouched')
})

t.test('start with data but without its key file exits 1 with MIMAMORI_KEY_MISSING and changes nothing', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  await createCityAndSchool(t, config)
  const keyFile = join(dir, 'data', 'address.key')
  rmSync(keyFile)
  const before = sha256(join(dir, 'data', 'mimamori.mdb'))

  const result = await runCli(t, ['start', '--config', config])
  assertRefused(t, result, 'MIMAMORI_KEY_MISSING', /address key file .*address\.key is missing; restore it from your backup/)
  t.equal(sha256(join(dir, 'data', 'mimamori.mdb')), before, 'the data file is unchanged')
  t.notOk(existsSync(keyFile), 'no new key was made in its place')
})
