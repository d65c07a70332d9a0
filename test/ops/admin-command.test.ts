// `mimamori admin create` as an operator runs it (compiled CLI: `npm run build` first): the
// account it makes is the one the panel's login and the command address check.

import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openStore } from '../../appliance/store/store.js'
import { Directory } from '../../appliance/directory.js'
import { StaffBook } from '../../appliance/staff.js'
import { auditEvents } from '../../appliance/audit-log.js'
import { parseAddress } from '../../appliance/address.js'
import { inboundTarget } from '../../appliance/inbound/local-parts.js'
import { parseJson, runCli, writeConfig, type CliResult } from './cli-process.js'

async function withStaff<T> (dir: string, work: (staff: StaffBook) => Promise<T> | T): Promise<T> {
  const { store, vault } = openStore(join(dir, 'data'))
  try {
    return await work(new StaffBook(new Directory(store, vault)))
  } finally {
    await store.close()
  }
}

function refused (t: Test, result: CliResult, code: string, message: RegExp): void {
  t.equal(result.code, 1, `exit 1 (${result.stderr.trim()})`)
  t.equal(result.stdout, '')
  t.match(result.stderr, new RegExp(`\\(${code}\\)\\n$`))
  t.match(result.stderr, message)
}

async function school (t: Test, config: string): Promise<void> {
  for (const args of [
    ['--id', 'matsuyama', '--name', '松山市', '--kind', 'city', '--address', '愛媛県松山市二番町4-7-2'],
    ['--id', 'higashi-es', '--name', '東小学校', '--kind', 'school', '--parent', 'matsuyama', '--address', '東町1-1']
  ]) {
    const r = await runCli(t, ['org', 'create', '--config', config, ...args])
    t.equal(r.code, 0, r.stderr)
  }
}

t.test('the first city admin on a new install: a generated password that logs in, and a command address', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir, { mailDomain: 'alert.city.example.jp' })
  const result = await runCli(t, ['admin', 'create', '--config', config, '--login', 'kanri',
    '--name', '市 管理者', '--role', 'city-admin', '--mail', 'Kanri.Phone@docomo.ne.jp'])
  t.equal(result.code, 0, result.stderr)
  const out = parseJson(t, result)
  t.match(out, { id: 1, login: 'kanri', role: 'city-admin', mail: ['Ka***@docomo.ne.jp'], pin: false })
  t.match(out.password, /^[a-z2-9]{20}$/, 'a generated password is printed')
  t.match(out.commandAddress, /^cmd\+[a-z2-9]{16}@alert\.city\.example\.jp$/)
  t.match(result.stderr, /shown only once/)
  t.notMatch(result.stdout, /Kanri\.Phone/, 'the address is printed masked')

  const target = inboundTarget(out.commandAddress as string, 'alert.city.example.jp')
  t.equal(target?.kind, 'command', 'the printed address is a command address')
  await withStaff(dir, async (staff) => {
    const account = await staff.authenticate('kanri', out.password as string)
    t.equal(account?.id, 1, 'the printed password logs the account in')
    t.ok(staff.checkCommandSecret(account!, target?.tag as string), 'the address carries its secret')
    t.equal(staff.byAddress(parseAddress('kanri.phone@docomo.ne.jp'))?.login, 'kanri')
    t.match(auditEvents(staff.directory.store, { action: 'staff.create' }), [{ actor: 'cli', target: 'staff:1' }])
  })
})

t.test('a sender with groups, a password and a PIN from files', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  await school(t, config)
  for (const [grade, cls] of [['1年', '2組'], ['2年', '1組']]) {
    await withStaff(dir, (staff) => staff.directory.groupByPath('higashi-es', [grade as string, cls as string], true))
  }
  await withStaff(dir, (staff) => staff.directory.groupByPath('higashi-es', ['PTA'], true))
  writeFileSync(join(dir, 'pw'), 'sakura-no-hana-2025\n')
  writeFileSync(join(dir, 'pin'), '4815\n')

  const result = await runCli(t, ['admin', 'create', '--config', config, '--login', 'yamada', '--name', '山田 先生',
    '--role', 'sender', '--org', 'higashi-es', '--groups', '1年/2組,PTA', '--mail', 'yamada@au.com',
    '--mail', 'yamada@example.jp', '--password-file', join(dir, 'pw'), '--pin-file', join(dir, 'pin')])
  t.equal(result.code, 0, result.stderr)
  const out = parseJson(t, result)
  t.same(out.groups, ['1年/2組', 'PTA'])
  t.equal(out.password, undefined, 'a password from a file is not printed')
  t.equal(out.pin, true)
  await withStaff(dir, async (staff) => {
    const account = await staff.authenticate('yamada', 'sakura-no-hana-2025')
    t.ok(account, 'the password from the file (without its newline) logs in')
    t.ok(await staff.checkPin(account!, '4815'))
    t.equal(staff.byAddress(parseAddress('yamada@example.jp'))?.id, account?.id)
  })
})

t.test('bad input is refused with a plain line and makes no account', async (t) => {
  const dir = t.testdir()
  const config = writeConfig(dir)
  await school(t, config)
  const base = ['admin', 'create', '--config', config, '--name', 'x']
  refused(t, await runCli(t, [...base, '--login', 'a1', '--role', 'boss']), 'MIMAMORI_BAD_REQUEST', /--role "boss"/)
  refused(t, await runCli(t, [...base, '--login', 'a1', '--role', 'org-admin']), 'MIMAMORI_BAD_REQUEST', /needs an organisation/)
  refused(t, await runCli(t, [...base, '--login', 'a1', '--role', 'sender', '--org', 'higashi-es', '--groups', '9年']),
    'MIMAMORI_NOT_FOUND', /no group "9年"/)
  refused(t, await runCli(t, [...base, '--login', 'a1', '--role', 'viewer', '--org', 'nowhere']), 'MIMAMORI_NOT_FOUND', /nowhere/)
  refused(t, await runCli(t, [...base, '--login', 'a1', '--role', 'city-admin', '--mail', 'no-at-sign']),
    'MIMAMORI_BAD_ADDRESS', /staff mail address/)
  refused(t, await runCli(t, [...base, '--login', 'a1', '--role', 'city-admin', '--password-file', join(dir, 'none')]),
    'MIMAMORI_NOT_FOUND', /password file/)
  refused(t, await runCli(t, ['admin', 'create', '--config', config, '--login', 'a1']), 'MIMAMORI_BAD_REQUEST', /needs --login, --name and --role/)
  refused(t, await runCli(t, ['admin', 'delete', '--config', config]), 'MIMAMORI_BAD_REQUEST', /usage: mimamori admin create/)

  t.equal((await runCli(t, [...base, '--login', 'a1', '--role', 'city-admin'])).code, 0)
  refused(t, await runCli(t, [...base, '--login', 'a1', '--role', 'city-admin']), 'MIMAMORI_CONFLICT', /login "a1" is taken/)
  await withStaff(dir, (staff) => { t.equal(staff.list().length, 1, 'only the one good account exists') })
})
