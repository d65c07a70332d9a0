import t from 'tap'
import type { Appliance } from '../../../appliance/appliance.js'
import { parseAddress } from '../../../appliance/address.js'
import { saveHousehold, type Child } from '../../../appliance/households.js'
import { createSampleCity } from '../../../ops/sample-city.js'
import type { GatewaySimulator } from '../../../ops/gateway-simulator.js'
import { sentCount, type StepMailEntryInput } from '../../../appliance/schedules/step-mail-calendar.js'
import { accepted, broadcastsBy, clock, restarts } from './schedule-harness.js'

function parent (
  appliance: Appliance, address: string, children: Array<[string, Child['kind']]>,
  options: { topics?: string[], organisation?: string } = {}
): number {
  const { subscriber } = appliance.directory.upsertSubscriber({
    address: parseAddress(address), topics: options.topics ?? ['child-rearing', 'disaster']
  })
  appliance.directory.addMembership(subscriber.id, options.organisation ?? 'hoshi-kg')
  saveHousehold(appliance.store, subscriber.id, children.map(([date, kind]) => ({ date, kind })))
  return subscriber.id
}

function entry (month: number, subject: string, fields: Partial<StepMailEntryInput> = {}): StepMailEntryInput {
  return {
    organisationId: 'matsuyama', month, day: 0, subject, body: `${subject}のお知らせです。`,
    topic: 'child-rearing', createdBy: 'test', ...fields
  }
}

function received (simulators: Record<string, GatewaySimulator>, address: string): number {
  return Object.values(simulators).reduce((n, s) => n + s.acceptedCount(address), 0)
}

async function finishAll (appliance: Appliance): Promise<void> {
  for (const b of appliance.book.list(undefined, 1000)) await appliance.finished(b.id)
}

t.test('each contact gets the entries due today for their children, once, across a restart', async (t) => {
  const { open, simulators, lines } = await restarts(t)
  const time = clock('2026-05-15T11:00:00+09:00')
  const first = await open(time.now)
  createSampleCity(first.directory)
  parent(first, 'one-month@docomo.ne.jp', [['2026-04-15', 'birth']])
  parent(first, 'two-months@au.com', [['2026-03-15', 'birth']])
  parent(first, 'expecting@softbank.ne.jp', [['2026-08-15', 'due']])
  parent(first, 'no-topic@docomo.ne.jp', [['2026-04-15', 'birth']], { topics: ['disaster'] })
  const left = parent(first, 'left@au.com', [['2026-04-15', 'birth']])
  first.directory.unsubscribeAll(left)
  parent(first, 'twins@gmail.com', [['2026-04-15', 'birth'], ['2026-04-15', 'birth'], ['2025-05-15', 'birth']])
  const entries = Object.fromEntries([
    [-3, '妊娠7か月'], [0, '誕生おめでとう'], [1, '1か月'], [2, '2か月'], [12, '1歳']
  ].map(([month, subject]) => [month, first.stepMail.add(entry(month as number, subject as string))]))

  const run = first.stepMail.runDue()
  t.match(run, { through: '2026-05-15', broadcasts: 4, recipients: 5 })
  await finishAll(first)
  const recipients = (month: number): number => broadcastsBy(first, `step-mail:${entries[month]?.id}`)
    .reduce((n, b) => n + b.total, 0)
  t.same([-3, 0, 1, 2, 12].map(recipients), [1, 0, 2, 1, 1], 'pregnancy, birth, 1, 2 and 12 months')
  t.ok(broadcastsBy(first, `step-mail:${entries[1]?.id}`).every((b) => b.priority === 'bulk'))
  const counts = ['one-month@docomo.ne.jp', 'two-months@au.com', 'expecting@softbank.ne.jp',
    'no-topic@docomo.ne.jp', 'left@au.com', 'twins@gmail.com'].map((a) => received(simulators, a))
  t.same(counts, [1, 1, 1, 0, 0, 2], 'twins share one mail; the 1-year-old sibling has their own')

  const second = await open(time.now)
  t.match(second.stepMail.runDue(), { broadcasts: 0, recipients: 0 }, 'the daily job after a restart')
  t.equal(second.book.list(undefined, 1000).length, 4, 'nor did the check on start send anything')
  t.equal(sentCount(second.store, entries[1]?.id as number), 2)

  time.set('2026-06-15T11:00:00+09:00')
  const third = await open(time.now)
  t.match(lines.filter((l) => l.msg === 'step mail run').at(-1), { through: '2026-06-15', broadcasts: 1, recipients: 2 })
  await finishAll(third)
  t.equal(received(simulators, 'twins@gmail.com'), 3, 'their second month')
  t.equal(accepted(simulators), 7, 'five mails in May, two in June, none twice')
  t.notOk(lines.some((l) => l.component === 'schedules' && JSON.stringify(l).includes('@')), 'no address in the log')
})

t.test('the day\'s entries go at stepMail.hour, not before', async (t) => {
  const { open } = await restarts(t, { stepMail: { hour: 10 } })
  const time = clock('2026-05-15T09:30:00+09:00')
  const appliance = await open(time.now)
  createSampleCity(appliance.directory)
  parent(appliance, 'one-month@docomo.ne.jp', [['2026-04-15', 'birth']])
  const one = appliance.stepMail.add(entry(1, '1か月'))
  t.match(appliance.stepMail.runDue(), { through: '2026-05-14', broadcasts: 0 })
  time.set('2026-05-15T10:00:00+09:00')
  t.match(appliance.stepMail.runDue(), { through: '2026-05-15', broadcasts: 1 })
  t.equal(broadcastsBy(appliance, `step-mail:${one.id}`).length, 1)
})

t.test('an entry added later reaches only children whose day passed within the grace', async (t) => {
  const { open } = await restarts(t, { stepMail: { graceDays: 3 } })
  const time = clock('2026-05-17T11:00:00+09:00')
  const appliance = await open(time.now)
  createSampleCity(appliance.directory)
  const recent = parent(appliance, 'recent@docomo.ne.jp', [['2026-04-15', 'birth']])
  parent(appliance, 'week-ago@au.com', [['2026-04-10', 'birth']])
  parent(appliance, 'end-of-month@softbank.ne.jp', [['2026-03-31', 'birth']])
  const one = appliance.stepMail.add(entry(1, '1か月'))
  const week = appliance.stepMail.add(entry(1, '1か月と1週間', { day: 7 }))

  appliance.stepMail.runDue()
  const [late] = broadcastsBy(appliance, `step-mail:${one.id}`)
  t.equal(late?.total, 1, 'two days late; the day a week ago is past the grace')
  t.same(late?.targets.subscribers, [recent])
  // 2026-03-31 + 1 month is 30 April (no 31st), + 7 days is 7 May: past the grace too.
  t.same(broadcastsBy(appliance, `step-mail:${week.id}`).map((b) => b.total), [1], 'only 2026-04-10 + 1 month + 7 days')
})

t.test('an entry without a topic reaches every contact with a child of that age', async (t) => {
  const { open } = await restarts(t)
  const appliance = await open(clock('2026-05-15T11:00:00+09:00').now)
  createSampleCity(appliance.directory)
  parent(appliance, 'no-topic@docomo.ne.jp', [['2026-04-15', 'birth']], { topics: ['disaster'], organisation: 'higashi-es' })
  parent(appliance, 'elsewhere@au.com', [['2026-04-15', 'birth']], { organisation: 'nishi-es' })
  const school = appliance.stepMail.add(entry(1, '健診のご案内', { topic: null, organisationId: 'higashi-es' }))
  appliance.stepMail.runDue()
  t.same(broadcastsBy(appliance, `step-mail:${school.id}`).map((b) => b.total), [1], 'members of the organisation only')
  t.throws(() => appliance.stepMail.add(entry(1, 'x', { topic: 'nope' })), { code: 'MIMAMORI_BAD_REQUEST' })
  t.throws(() => appliance.stepMail.add(entry(1, 'x', { organisationId: 'nowhere' })), { code: 'MIMAMORI_NOT_FOUND' })
})
