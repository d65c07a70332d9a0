import t from 'tap'
import { startAppliance, waitFor } from '../../helpers.js'
import { subscribe } from '../../delivered-broadcast.js'
import { createSampleCity } from '../../../ops/sample-city.js'
import { getSchedule, recentRuns, type ScheduleInput } from '../../../appliance/schedules/schedule-book.js'
import { accepted, broadcastsBy, clock, duplicates, jst, restarts } from './schedule-harness.js'

const NOTICE = {
  organisationId: 'higashi-es', subject: '【お知らせ】明日の授業参観', body: '明日は授業参観です。',
  priority: 'normal', targets: {}, createdBy: 'test'
} as const

function input (timing: Pick<ScheduleInput, 'at' | 'cron' | 'endsAt'>): ScheduleInput {
  return { ...NOTICE, targets: {}, ...timing }
}

t.test('a one-time schedule sends its broadcast at its time, once', async (t) => {
  const { appliance, simulators } = await startAppliance(t)
  subscribe(appliance, 'higashi-es', 'mama@docomo.ne.jp')
  subscribe(appliance, 'higashi-es', 'papa@au.com')
  const due = Date.now() + 1500
  const schedule = appliance.scheduler.create(input({ at: jst(due) }))
  t.equal(appliance.scheduler.nextRun(schedule)?.getTime(), due)

  await waitFor(() => broadcastsBy(appliance, `schedule:${schedule.id}`).length === 1)
  const [broadcast] = broadcastsBy(appliance, `schedule:${schedule.id}`)
  t.ok(Date.parse(broadcast?.submittedAt as string) >= due, 'not before its time')
  const report = await appliance.finished(broadcast?.id as number)
  t.equal(report.counts.accepted, 2)
  t.equal(accepted(simulators), 2)

  const done = getSchedule(appliance.store, schedule.id)
  t.equal(done.state, 'done')
  t.same(done.counts, { sent: 1, missed: 0, failed: 0 })
  t.match(recentRuns(appliance.store, schedule.id), [{ state: 'sent', broadcastId: broadcast?.id, due: new Date(due).toISOString() }])
  t.equal(appliance.scheduler.nextRun(done), undefined)
})

t.test('a repeating schedule runs on each tick of its cron expression until its end', async (t) => {
  const { appliance } = await startAppliance(t)
  subscribe(appliance, 'higashi-es', 'mama@docomo.ne.jp')
  const endsAt = Math.floor(Date.now() / 1000) * 1000 + 3000
  const schedule = appliance.scheduler.create(input({ cron: '* * * * * *', endsAt: jst(endsAt) }))
  const created = Date.parse(schedule.createdAt)

  await waitFor(() => getSchedule(appliance.store, schedule.id).state === 'ended')
  const ticks: number[] = []
  for (let s = Math.floor(created / 1000) * 1000 + 1000; s <= endsAt; s += 1000) ticks.push(s)
  const runs = recentRuns(appliance.store, schedule.id).reverse()
  t.same(runs.map((r) => Date.parse(r.due)), ticks, 'one run per second, through its end')
  t.ok(runs.every((r) => r.state === 'sent'))
  const broadcasts = broadcastsBy(appliance, `schedule:${schedule.id}`)
  t.equal(broadcasts.length, ticks.length)
  for (const b of broadcasts) t.equal((await appliance.finished(b.id)).counts.accepted, 1)
  t.equal(appliance.scheduler.nextRun(getSchedule(appliance.store, schedule.id)), undefined)
})

t.test('a run that fell due during a restart is sent once, by the next start', async (t) => {
  const { open, simulators, lines } = await restarts(t)
  const first = await open()
  createSampleCity(first.directory)
  subscribe(first, 'higashi-es', 'mama@docomo.ne.jp')
  const due = Date.now() + 1000
  const schedule = first.scheduler.create(input({ at: jst(due) }))
  await first.close()
  await waitFor(() => Date.now() > due + 100)

  const second = await open()
  const sent = broadcastsBy(second, `schedule:${schedule.id}`)
  t.equal(sent.length, 1, 'caught up on start')
  t.equal((await second.finished(sent[0]?.id as number)).counts.accepted, 1)

  const third = await open()
  t.equal(broadcastsBy(third, `schedule:${schedule.id}`).length, 1, 'not again after another restart')
  t.equal(accepted(simulators), 1)
  t.equal(duplicates(simulators), 0)
  t.match(lines.find((l) => l.msg === 'scheduled run sent'), { schedule: schedule.id, lateSeconds: Number })
})

t.test('after a downtime runs within the grace are caught up, the latest only; older ones are missed and logged', async (t) => {
  const { open, lines } = await restarts(t)
  const time = clock('2026-04-06T12:00:00+09:00')
  const first = await open(time.now)
  createSampleCity(first.directory)
  subscribe(first, 'higashi-es', 'mama@docomo.ne.jp')
  const daily = first.scheduler.create(input({ cron: '0 8 * 4 *' }))
  const quarterly = first.scheduler.create(input({ cron: '*/15 7-8 * 4 *' }))
  const once = first.scheduler.create(input({ at: '2026-04-07T07:00:00+09:00' }))

  // Down from the 6th at noon until 08:40 on the 7th: 07:00 is late, 08:00 within the hour.
  time.set('2026-04-07T08:40:00+09:00')
  const second = await open(time.now)
  const [sent] = broadcastsBy(second, `schedule:${daily.id}`)
  t.ok(sent !== undefined, 'the 08:00 run is sent 40 minutes late')
  t.match(recentRuns(second.store, daily.id), [{ due: '2026-04-06T23:00:00.000Z', state: 'sent' }])

  const quarters = recentRuns(second.store, quarterly.id)
  t.same(quarters.map((r) => [r.due.slice(11, 16), r.state, r.reason]), [
    ['23:30', 'sent', undefined], ['23:15', 'missed', 'superseded'], ['23:00', 'missed', 'superseded'],
    ['22:45', 'missed', 'superseded'], ['22:30', 'missed', 'late'], ['22:15', 'missed', 'late'], ['22:00', 'missed', 'late']
  ], 'of the runs within the grace only the latest goes')
  t.equal(broadcastsBy(second, `schedule:${quarterly.id}`).length, 1)

  t.equal(broadcastsBy(second, `schedule:${once.id}`).length, 0, 'a notice 100 minutes late is not sent')
  t.match(getSchedule(second.store, once.id), { state: 'done', counts: { sent: 0, missed: 1, failed: 0 } })
  t.match(lines.find((l) => l.msg === 'scheduled runs missed' && l.schedule === once.id),
    { level: 40, late: 1, first: '2026-04-06T22:00:00.000Z', organisation: 'higashi-es' })

  time.set('2026-04-07T08:44:00+09:00')
  const third = await open(time.now)
  for (const s of [daily, quarterly, once]) {
    t.equal(broadcastsBy(third, `schedule:${s.id}`).length, s === once ? 0 : 1, `schedule ${s.id}: nothing twice`)
  }
})

t.test('a run whose broadcast cannot be submitted is recorded as failed and not retried', async (t) => {
  const { open, lines } = await restarts(t)
  const time = clock('2026-04-06T12:00:00+09:00')
  const first = await open(time.now)
  const city = createSampleCity(first.directory)
  const empty = city.groups['higashi-es']?.['6年/3組'] as string
  const schedule = first.scheduler.create({ ...input({ at: '2026-04-06T12:30:00+09:00' }), targets: { groups: [empty] } })

  time.set('2026-04-06T12:31:00+09:00')
  const second = await open(time.now)
  t.match(getSchedule(second.store, schedule.id), { state: 'done', counts: { failed: 1 } })
  t.match(recentRuns(second.store, schedule.id), [{ state: 'failed', reason: 'MIMAMORI_NO_RECIPIENTS' }])
  t.match(lines.find((l) => l.msg === 'scheduled run failed'), { level: 40, code: 'MIMAMORI_NO_RECIPIENTS' })
  const third = await open(time.now)
  t.equal(recentRuns(third.store, schedule.id).length, 1)
})

t.test('schedules are checked before they are stored', async (t) => {
  const { appliance } = await startAppliance(t)
  const refusals: Array<[string, ScheduleInput, string]> = [
    ['a bad minute', input({ cron: '61 * * * *' }), 'MIMAMORI_CRON_INVALID'],
    ['30 February', input({ cron: '0 0 30 2 *' }), 'MIMAMORI_CRON_INVALID'],
    ['three fields', input({ cron: '* * *' }), 'MIMAMORI_CRON_INVALID'],
    ['a past time', input({ at: jst(Date.now() - 60_000) }), 'MIMAMORI_SCHEDULE_TIME_INVALID'],
    ['no offset', input({ at: '2099-04-07T08:00:00' }), 'MIMAMORI_SCHEDULE_TIME_INVALID'],
    ['an end before the first run', input({ cron: '0 8 1 1 *', endsAt: jst(Date.now() + 60_000) }), 'MIMAMORI_SCHEDULE_TIME_INVALID'],
    ['neither time nor cron', input({}), 'MIMAMORI_BAD_REQUEST'],
    ['both', input({ at: jst(Date.now() + 60_000), cron: '* * * * *' }), 'MIMAMORI_BAD_REQUEST'],
    ['an unknown organisation', { ...input({ cron: '0 8 * * *' }), organisationId: 'nowhere' }, 'MIMAMORI_NOT_FOUND'],
    ['a group elsewhere', { ...input({ cron: '0 8 * * *' }), targets: { groups: ['nishi-es/1'] } }, 'MIMAMORI_FORBIDDEN'],
    ['an unknown topic', { ...input({ cron: '0 8 * * *' }), targets: { topics: ['nope'] } }, 'MIMAMORI_BAD_REQUEST']
  ]
  for (const [name, schedule, code] of refusals) {
    t.throws(() => appliance.scheduler.create(schedule), { code }, name)
  }
  t.same([...appliance.store.schedules.getKeys()], [], 'nothing stored')
})
