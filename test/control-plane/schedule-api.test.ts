import t from 'tap'
import type { InjectOptions } from 'fastify'
import { startApi, bearer, json, addMember, waitForAsync } from './harness.js'
import type { Schedule } from '../../appliance/schedules/schedule-book.js'

const JST = 9 * 3_600_000
const jst = (ms: number): string => new Date(ms + JST).toISOString().replace('Z', '+09:00')

const NOTICE = { organisation: 'higashi-es', subject: '【お知らせ】授業参観', body: '明日は授業参観です。' }

t.test('a school schedules a broadcast, sees it run, and no other school sees it', async (t) => {
  const { appliance, app, logLines } = await startApi(t)
  addMember(appliance, 'mama@docomo.ne.jp', 'higashi-es', { group: '1年/2組' })
  const higashi = bearer(appliance, ['broadcasts:read', 'broadcasts:write'], 'higashi-es')
  const nishi = bearer(appliance, ['broadcasts:read', 'broadcasts:write'], 'nishi-es')
  const due = Date.now() + 1500

  const created = await app.inject({
    method: 'POST', url: '/api/v1/schedules', headers: higashi,
    payload: { ...NOTICE, at: jst(due), targets: { groupPaths: ['1年/2組'] } }
  })
  t.equal(created.statusCode, 201)
  const schedule = json(created)
  t.match(schedule, {
    id: Number, organisationId: 'higashi-es', state: 'active', priority: 'normal', timeZone: 'Asia/Tokyo',
    nextRunAt: new Date(due).toISOString(), createdBy: /^token:/, targets: { groups: [String] }
  })

  const url = `/api/v1/schedules/${schedule.id}`
  await waitForAsync(async () => json(await app.inject({ method: 'GET', url, headers: higashi })).state === 'done')
  const done = json(await app.inject({ method: 'GET', url, headers: higashi }))
  t.match(done, { counts: { sent: 1 }, lastRunAt: new Date(due).toISOString(), runs: [{ state: 'sent', broadcastId: Number }] })
  t.equal((await appliance.finished(done.runs[0].broadcastId)).counts.accepted, 1)

  t.equal(json(await app.inject({ method: 'GET', url: '/api/v1/schedules', headers: higashi })).schedules.length, 1)
  t.same(json(await app.inject({ method: 'GET', url: '/api/v1/schedules', headers: nishi })).schedules, [])
  t.equal((await app.inject({ method: 'GET', url, headers: nishi })).statusCode, 403)
  t.equal((await app.inject({ method: 'DELETE', url, headers: nishi })).statusCode, 403)
  t.equal((await app.inject({ method: 'DELETE', url, headers: higashi })).statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url, headers: higashi })).statusCode, 404)
  t.notOk(logLines.some((l) => l.includes('mama@')), 'no address in the log')
})

t.test('a deleted repeating schedule runs no more', async (t) => {
  const { appliance, app } = await startApi(t)
  const city = bearer(appliance, ['broadcasts:read', 'broadcasts:write'])
  const created = json<Schedule & { nextRunAt: string }>(await app.inject({
    method: 'POST', url: '/api/v1/schedules', headers: city,
    payload: { ...NOTICE, cron: '0 8 * * 1-5', endsAt: '2099-03-31T00:00:00+09:00', targets: {} }
  }))
  t.match(created, { cron: '0 8 * * 1-5', nextRunAt: String })
  t.equal(new Date(created.nextRunAt).getUTCHours(), 23, '08:00 in Tokyo')
  const gone = await app.inject({ method: 'DELETE', url: `/api/v1/schedules/${created.id}`, headers: city })
  t.equal(gone.statusCode, 204)
  t.equal(appliance.scheduler.nextRun(created), undefined, 'its task is gone')
  t.same([...appliance.store.schedules.getKeys()], [], 'nor its record')
})

t.test('schedules are refused with a clear code', async (t) => {
  const { appliance, app } = await startApi(t)
  const reader = bearer(appliance, ['broadcasts:read'], 'higashi-es')
  const higashi = bearer(appliance, ['broadcasts:write'], 'higashi-es')
  const nishi = bearer(appliance, ['broadcasts:write'], 'nishi-es')
  const soon = jst(Date.now() + 3_600_000)
  const post = (headers: Record<string, string>, payload: Record<string, unknown>): InjectOptions =>
    ({ method: 'POST', url: '/api/v1/schedules', headers, payload: { ...NOTICE, targets: {}, ...payload } })

  const refusals: Array<[string, InjectOptions, number, string]> = [
    ['a read-only token', post(reader, { at: soon }), 403, 'MIMAMORI_FORBIDDEN'],
    ['another school', post(nishi, { at: soon }), 403, 'MIMAMORI_FORBIDDEN'],
    ['a bad cron expression', post(higashi, { cron: '0 25 * * *' }), 400, 'MIMAMORI_CRON_INVALID'],
    ['a time in the past', post(higashi, { at: jst(Date.now() - 60_000) }), 400, 'MIMAMORI_SCHEDULE_TIME_INVALID'],
    ['a time without its offset', post(higashi, { at: '2099-04-07T08:00:00' }), 400, 'MIMAMORI_SCHEDULE_TIME_INVALID'],
    ['an unknown organisation', post(bearer(appliance, ['broadcasts:write']), { organisation: 'nowhere', at: soon }), 404, 'MIMAMORI_NOT_FOUND'],
    ['an unknown group', post(higashi, { at: soon, targets: { groupPaths: ['9年'] } }), 404, 'MIMAMORI_NOT_FOUND'],
    ['an unknown key', post(higashi, { at: soon, colour: 'red' }), 400, 'MIMAMORI_BAD_REQUEST'],
    ['neither at nor cron', post(higashi, {}), 400, 'MIMAMORI_BAD_REQUEST']
  ]
  for (const [name, request, status, code] of refusals) {
    const response = await app.inject(request)
    t.equal(response.statusCode, status, name)
    t.equal(json(response).error?.code, code, name)
  }
  const cron = json(await app.inject(post(higashi, { cron: '0 25 * * *' })))
  t.match(cron.error.details, { cron: '0 25 * * *', problems: [/hour/] }, 'the field is named')
  t.same(json(await app.inject({ method: 'GET', url: '/api/v1/schedules', headers: reader })).schedules, [])
})

t.test('the child-rearing office keeps its step-mail calendar', async (t) => {
  const { appliance, app } = await startApi(t)
  const office = bearer(appliance, ['broadcasts:read', 'broadcasts:write'], 'matsuyama')
  const school = bearer(appliance, ['broadcasts:read', 'broadcasts:write'], 'higashi-es')
  const entry = { organisation: 'matsuyama', month: -3, subject: '妊娠7か月のあなたへ', body: '両親学級のご案内です。' }

  const created = await app.inject({ method: 'POST', url: '/api/v1/step-mail', headers: office, payload: entry })
  t.equal(created.statusCode, 201)
  t.match(json(created), { id: Number, organisationId: 'matsuyama', month: -3, day: 0, topic: 'child-rearing', sent: 0 })
  const open = await app.inject({
    method: 'POST', url: '/api/v1/step-mail', headers: office, payload: { ...entry, month: 1, day: 5, topic: null }
  })
  t.match(json(open), { month: 1, day: 5, topic: null })

  const listed = json(await app.inject({ method: 'GET', url: '/api/v1/step-mail', headers: office }))
  t.same(listed.entries.map((e: { month: number }) => e.month), [-3, 1])
  t.same(json(await app.inject({ method: 'GET', url: '/api/v1/step-mail', headers: school })).entries, [])

  const refusals: Array<[string, InjectOptions, number, string]> = [
    ['a school for the city', { method: 'POST', url: '/api/v1/step-mail', headers: school, payload: entry }, 403, 'MIMAMORI_FORBIDDEN'],
    ['a read-only token', { method: 'POST', url: '/api/v1/step-mail', headers: bearer(appliance, ['broadcasts:read']), payload: entry }, 403, 'MIMAMORI_FORBIDDEN'],
    ['month 300', { method: 'POST', url: '/api/v1/step-mail', headers: office, payload: { ...entry, month: 300 } }, 400, 'MIMAMORI_BAD_REQUEST'],
    ['an unknown topic', { method: 'POST', url: '/api/v1/step-mail', headers: office, payload: { ...entry, topic: 'nope' } }, 400, 'MIMAMORI_BAD_REQUEST'],
    ['a school deleting', { method: 'DELETE', url: `/api/v1/step-mail/${json(open).id}`, headers: school }, 403, 'MIMAMORI_FORBIDDEN']
  ]
  for (const [name, request, status, code] of refusals) {
    const response = await app.inject(request)
    t.equal(response.statusCode, status, name)
    t.equal(json(response).error?.code, code, name)
  }

  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/step-mail/${json(open).id}`, headers: office })).statusCode, 204)
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/step-mail/${json(open).id}`, headers: office })).statusCode, 404)
  t.equal(json(await app.inject({ method: 'GET', url: '/api/v1/step-mail', headers: office })).entries.length, 1)
})
