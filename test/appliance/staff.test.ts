import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { openStore, DATA_FILE } from '../../appliance/store/store.js'
import { Directory } from '../../appliance/directory.js'
import { parseAddress } from '../../appliance/address.js'
import {
  StaffBook, hashPassword, verifyPassword, sendRefusal, staffOrganisations
} from '../../appliance/staff.js'
import { audit, auditEvents } from '../../appliance/audit-log.js'
import { createSampleCity, type SampleCity } from '../../ops/sample-city.js'

async function book (t: Test, dir = t.testdir()): Promise<{ staff: StaffBook, city: SampleCity, directory: Directory }> {
  const { store, vault } = openStore(dir)
  t.teardown(async () => { await store.close() })
  const directory = new Directory(store, vault)
  const city = createSampleCity(directory)
  return { staff: new StaffBook(directory), city, directory }
}

t.test('passwords are scrypt-hashed with a random salt and verified', async (t) => {
  const a = await hashPassword('correct horse battery')
  const b = await hashPassword('correct horse battery')
  t.match(a, /^\$scrypt\$ln=15,r=8,p=1\$[\w-]+\$[\w-]+$/)
  t.not(a, b, 'each hash has its own salt')
  t.ok(await verifyPassword(a, 'correct horse battery'))
  t.notOk(await verifyPassword(a, 'correct horse batterx'))
  t.notOk(await verifyPassword('$scrypt$garbage', 'x'), 'a malformed hash never verifies')
  t.notOk(await verifyPassword('$scrypt$ln=30,r=8,p=1$AAAA$AAAA', 'x'), 'an absurd cost is refused, not run')
})

t.test('an account logs in with its password; a wrong password or unknown login does not', async (t) => {
  const { staff, city } = await book(t)
  const made = await staff.create({
    login: 'tanaka', name: '田中 一郎', role: 'org-admin', organisationId: city.schools[0], password: 'kyoushitsu-2024'
  })
  t.equal(made.password, 'kyoushitsu-2024')
  t.equal((await staff.authenticate('tanaka', 'kyoushitsu-2024'))?.id, made.staff.id)
  t.equal(await staff.authenticate('tanaka', 'wrong-password'), undefined)
  t.equal(await staff.authenticate('nobody', 'kyoushitsu-2024'), undefined)

  staff.update(made.staff.id, { disabled: true })
  t.equal(await staff.authenticate('tanaka', 'kyoushitsu-2024'), undefined, 'a disabled account cannot log in')
})

t.test('a generated password and command secret are returned once and not stored in clear', async (t) => {
  const dir = t.testdir()
  const { staff } = await book(t, dir)
  const made = await staff.create({ login: 'city', name: '市 管理者', role: 'city-admin', addresses: ['Kanri.Ka@docomo.ne.jp'] })
  t.match(made.password, /^[a-z2-9]{20}$/)
  t.match(made.commandSecret, /^[a-z2-9]{16}$/)
  t.ok(staff.checkCommandSecret(made.staff, made.commandSecret))
  t.ok(staff.checkCommandSecret(made.staff, made.commandSecret.toUpperCase()), 'the secret ignores case')
  t.notOk(staff.checkCommandSecret(made.staff, 'x' + made.commandSecret.slice(1)))

  await staff.directory.store.root.flushed
  const raw = readFileSync(join(dir, DATA_FILE))
  for (const secret of [made.password, made.commandSecret, 'kanri.ka', 'Kanri.Ka']) {
    t.equal(raw.indexOf(secret), -1, `${secret.slice(0, 4)}… is not in the data file`)
  }
})

t.test('a registered address finds its staff member, sealed and whatever its case', async (t) => {
  const { staff, city } = await book(t)
  const { staff: s } = await staff.create({
    login: 'sato', name: '佐藤', role: 'sender', organisationId: city.schools[0],
    groups: [city.groups[city.schools[0] as string]?.['1年'] as string], addresses: ['sato.t@docomo.ne.jp', 'sato@example.jp']
  })
  t.equal(staff.byAddress(parseAddress('SATO.T@docomo.ne.jp'))?.id, s.id)
  t.equal(staff.byAddress(parseAddress('other@docomo.ne.jp')), undefined)
  t.same(staff.addresses(s).sort(), ['sato.t@docomo.ne.jp', 'sato@example.jp'])

  await t.rejects(staff.create({ login: 'sato2', name: 'x', role: 'city-admin', addresses: ['sato@example.jp'] }),
    { code: 'MIMAMORI_CONFLICT' }, 'an address belongs to one staff member')
  await t.rejects(staff.create({ login: 'sato', name: 'x', role: 'city-admin' }), { code: 'MIMAMORI_CONFLICT' })

  const removed = staff.removeAddress(s.id, 'sato@example.jp')
  t.equal(removed.addresses.length, 1)
  t.equal(staff.byAddress(parseAddress('sato@example.jp')), undefined)
})

t.test('accounts are checked when made', async (t) => {
  const { staff, city } = await book(t)
  const school = city.schools[0] as string
  const cases: Array<[string, Parameters<StaffBook['create']>[0], string]> = [
    ['bad login', { login: 'Bad Login', name: 'x', role: 'city-admin' }, 'MIMAMORI_BAD_REQUEST'],
    ['no organisation', { login: 'ab', name: 'x', role: 'org-admin' }, 'MIMAMORI_BAD_REQUEST'],
    ['unknown organisation', { login: 'ab', name: 'x', role: 'viewer', organisationId: 'nowhere' }, 'MIMAMORI_NOT_FOUND'],
    ['sender without groups', { login: 'ab', name: 'x', role: 'sender', organisationId: school }, 'MIMAMORI_BAD_REQUEST'],
    ['group elsewhere', {
      login: 'ab', name: 'x', role: 'sender', organisationId: school, groups: [city.groups['nishi-es']?.['1年'] as string]
    }, 'MIMAMORI_BAD_REQUEST'],
    ['short password', { login: 'ab', name: 'x', role: 'city-admin', password: 'short' }, 'MIMAMORI_BAD_REQUEST'],
    ['bad PIN', { login: 'ab', name: 'x', role: 'city-admin', pin: '12a4' }, 'MIMAMORI_BAD_REQUEST'],
    ['bad address', { login: 'ab', name: 'x', role: 'city-admin', addresses: ['not-an-address'] }, 'MIMAMORI_BAD_ADDRESS'],
    ['name with a line break', { login: 'ab', name: 'x\ny', role: 'city-admin' }, 'MIMAMORI_HEADER_INJECTION']
  ]
  for (const [what, input, code] of cases) await t.rejects(staff.create(input), { code }, what)
  t.equal(staff.list().length, 0, 'nothing was made')
})

t.test('a PIN is checked, changed and removed', async (t) => {
  const { staff } = await book(t)
  const { staff: s } = await staff.create({ login: 'pin', name: 'x', role: 'city-admin', pin: '4815' })
  t.ok(await staff.checkPin(s, '4815'))
  t.notOk(await staff.checkPin(s, '4816'))
  const without = await staff.setPin(s.id, undefined)
  t.notOk(await staff.checkPin(without, '4815'), 'no PIN, no match')
})

t.test('what each role may send to', async (t) => {
  const { staff, city, directory } = await book(t)
  const school = city.schools[0] as string
  const g = city.groups[school] as Record<string, string>
  const admin = (await staff.create({ login: 'city', name: 'x', role: 'city-admin' })).staff
  const orgAdmin = (await staff.create({ login: 'head', name: 'x', role: 'org-admin', organisationId: school })).staff
  const sender = (await staff.create({
    login: 'teacher', name: 'x', role: 'sender', organisationId: school, groups: [g['1年'] as string, g.PTA as string]
  })).staff
  const viewer = (await staff.create({ login: 'look', name: 'x', role: 'viewer', organisationId: school })).staff

  const to = (organisationId: string, groups: string[] = []): { organisationId: string, groups: string[] } =>
    ({ organisationId, groups })
  t.equal(sendRefusal(admin, directory, to(city.cityId)), undefined, 'a city admin reaches the city')
  t.equal(sendRefusal(orgAdmin, directory, to(school)), undefined, 'an org admin reaches their school')
  t.match(sendRefusal(orgAdmin, directory, to('nishi-es')), /outside/, 'but not another')
  t.match(sendRefusal(orgAdmin, directory, to(city.cityId)), /outside/, 'nor the city above')
  t.equal(sendRefusal(sender, directory, to(school, [g['1年/2組'] as string])), undefined, 'a class inside their grade')
  t.equal(sendRefusal(sender, directory, to(school, [g.PTA as string])), undefined)
  t.match(sendRefusal(sender, directory, to(school, [g['2年'] as string])), /may not send to 2年/)
  t.match(sendRefusal(sender, directory, to(school)), /not to the whole organisation/)
  t.match(sendRefusal(viewer, directory, to(school)), /viewer/)
  t.same(staffOrganisations(admin, directory), undefined)
  t.ok(staffOrganisations(orgAdmin, directory)?.has(school))
})

t.test('the audit log keeps events in order and never an address in clear', async (t) => {
  const { staff } = await book(t)
  const store = staff.directory.store
  audit(store, { actor: 'cli', action: 'staff.create', target: 'staff:1', detail: { login: 'a' } })
  audit(store, {
    actor: 'mail:taro.yamada@docomo.ne.jp',
    action: 'command.refused',
    detail: { reason: 'not-registered', note: 'from "taro..y."@docomo.ne.jp and hanako@au.com', list: ['x@gmail.com'] }
  })
  const events = auditEvents(store)
  t.equal(events.length, 2)
  t.equal(events[0]?.action, 'command.refused', 'newest first')
  t.equal(events[0]?.actor, 'mail:ta***@docomo.ne.jp')
  const text = JSON.stringify(events)
  for (const clear of ['taro.yamada', 'hanako@', 'taro..y.', 'x@gmail']) t.notMatch(text, clear, `${clear} is masked`)
  t.same(auditEvents(store, { action: 'staff.' }).map((e) => e.target), ['staff:1'])
  t.ok((events[0]?.seq ?? 0) > (events[1]?.seq ?? 0))
})
