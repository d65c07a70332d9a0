import { readFileSync } from 'node:fs'
import t from 'tap'
import type { FastifyInstance, InjectOptions } from 'fastify'
import type { BroadcastReport } from '../../appliance/appliance.js'
import { parseAddress } from '../../appliance/address.js'
import { LEDGER_STATES } from '../../appliance/ledger.js'
import { makeToken } from '../../appliance/recipient-token.js'
import { seedSubscribers } from '../../ops/sample-city.js'
import { waitFor } from '../helpers.js'
import {
  acceptedBySimulators, addMember, bearer, deliveriesTo, followReport, isFinal, json, ledgerRows,
  recipientIds, slowDelivery, startApi
} from './harness.js'

const fixture = (name: string): Buffer =>
  readFileSync(new URL(`../fixtures/csv/${name}`, import.meta.url))

const message = { subject: '【お知らせ】下校時刻の変更', body: '本日は14時に一斉下校します。' }

async function post (
  app: FastifyInstance, headers: Record<string, string>, payload: Record<string, unknown>
): Promise<{ status: number, body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const response = await app.inject({ method: 'POST', url: '/api/v1/broadcasts', headers, payload })
  return { status: response.statusCode, body: json(response) }
}

function sumCounts (counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0)
}

t.test('a token with broadcasts:write creates a broadcast that GET follows to done', async (t) => {
  const { appliance, app, city, simulators } = await startApi(t)
  const ids = seedSubscribers(appliance.directory, city, 150)
  const writer = bearer(appliance, ['broadcasts:write'])
  const headers = bearer(appliance, ['broadcasts:read'])

  const created = await post(app, writer, {
    organisation: city.cityId, ...message, priority: 'emergency', targets: {}
  })
  t.equal(created.status, 201)
  const report = created.body as BroadcastReport
  t.equal(report.total, ids.length, 'every subscriber of the city is a recipient')
  t.equal(report.excluded, 0)
  t.equal(report.priority, 'emergency')
  t.same(Object.keys(report.counts).sort(), [...LEDGER_STATES].sort(), 'counts name every ledger state')
  t.equal(sumCounts(report.counts), report.total, 'the counts by state add up to the total')
  t.same(Object.keys(report.routes).sort(), ['au', 'default', 'docomo', 'softbank'])
  const perRoute = Object.values(report.routes).reduce((n, c) => n + sumCounts(c), 0)
  t.equal(perRoute, report.total, 'the counts by route add up to the total')

  const done = await followReport(app, headers, report.id, (r) => r.status === 'done')
  t.equal(done.counts.accepted, ids.length)
  t.ok(done.completedAt !== undefined)
  t.match(done.firstAcceptedAt, /^\d{4}-\d\d-\d\dT/)
  t.match(done.lastAcceptedAt, /^\d{4}-\d\d-\d\dT/)
  t.ok(Date.parse(done.firstAcceptedAt as string) <= Date.parse(done.lastAcceptedAt as string))
  for (const [route, counts] of Object.entries(done.routes)) {
    t.equal(counts.accepted, simulators[route]?.stats().acceptedRecipients, `route ${route} matches its gateway`)
  }
  t.equal(acceptedBySimulators(simulators), ids.length)

  const list = await app.inject({ method: 'GET', url: '/api/v1/broadcasts', headers })
  t.equal(list.statusCode, 200)
  t.same(json(list).broadcasts.map((b: BroadcastReport) => b.id), [report.id])
})

t.test('targets choose exactly the people: classes, topics, named parents, the city, no one twice', async (t) => {
  const { appliance, app, city, simulators } = await startApi(t)
  const school = 'higashi-es'
  const member = (address: string, org: string, group?: string, topics?: string[]): number => {
    const options: { group?: string, topics?: string[] } = {}
    if (group !== undefined) options.group = group
    if (topics !== undefined) options.topics = topics
    return addMember(appliance, address, org, options)
  }

  const a1 = member('a1@docomo.ne.jp', school, '1年/2組')
  const a2 = member('a2@au.com', school, '1年/2組')
  const a3 = member('a3@softbank.ne.jp', school, '1年/2組', ['school-notice'])
  const d1 = member('d1@gmail.com', school, '1年/2組')
  member('d1@gmail.com', school, 'PTA')
  const b1 = member('b1@docomo.ne.jp', school, '1年/1組')
  const p1 = member('p1@au.com', school, 'PTA')
  member('n1@docomo.ne.jp', 'nishi-es', '1年/2組')
  const u1 = member('u1@au.com', school, '1年/2組')
  appliance.directory.unsubscribeAll(u1)
  member('s1@softbank.ne.jp', school, '1年/2組')
  appliance.directory.suppress(parseAddress('s1@softbank.ne.jp'), 'no-mailbox: test')
  // Child-rearing information, chosen in every kind of organisation below the city.
  const c1 = member('c1@docomo.ne.jp', school, '2年/1組', ['child-rearing'])
  const c2 = member('c2@au.com', city.kindergarten, '年長', ['child-rearing', 'disaster'])
  const c3 = member('c3@softbank.ne.jp', 'nishi-es', undefined, ['child-rearing'])
  const c4 = member('c4@yahoo.co.jp', city.cityId, undefined, ['child-rearing'])
  const c5 = member('c5@docomo.ne.jp', city.fireDepartment, undefined, ['child-rearing'])
  const c6 = member('c6@au.com', city.kindergarten, '年少', ['child-rearing'])
  appliance.directory.unsubscribeAll(c6)

  const schoolToken = bearer(appliance, ['broadcasts:write', 'broadcasts:read'], school)
  const cityToken = bearer(appliance, ['broadcasts:write', 'broadcasts:read'])

  const cases: Array<{
    name: string, headers: Record<string, string>, organisation: string,
    targets: Record<string, unknown>, expect: number[], excluded: number
  }> = [
    { name: 'a class', headers: schoolToken, organisation: school, targets: { groupPaths: ['1年/2組'] }, expect: [a1, a2, a3, d1], excluded: 2 },
    { name: 'a class on a topic', headers: schoolToken, organisation: school, targets: { groupPaths: ['1年/2組'], topics: ['suspicious-person'] }, expect: [a1, a2, d1], excluded: 2 },
    { name: 'three named parents', headers: schoolToken, organisation: school, targets: { subscribers: [a1, b1, p1] }, expect: [a1, b1, p1], excluded: 0 },
    { name: 'named parents, one of them unsubscribed', headers: schoolToken, organisation: school, targets: { subscribers: [a1, u1] }, expect: [a1], excluded: 1 },
    { name: 'a topic by its Japanese name', headers: schoolToken, organisation: school, targets: { groupPaths: ['2年/1組'], topics: ['子育て情報'] }, expect: [c1], excluded: 0 },
    { name: 'the city on a topic', headers: cityToken, organisation: city.cityId, targets: { topics: ['child-rearing'] }, expect: [c1, c2, c3, c4, c5], excluded: 1 },
    { name: 'two groups sharing a parent', headers: schoolToken, organisation: school, targets: { groupPaths: ['1年/2組', 'PTA'] }, expect: [a1, a2, a3, d1, p1], excluded: 2 }
  ]

  for (const c of cases) {
    for (const sim of Object.values(simulators)) sim.reset()
    const created = await post(app, c.headers, { organisation: c.organisation, ...message, targets: c.targets })
    t.equal(created.status, 201, `${c.name}: created`)
    t.equal(created.body.priority, 'normal', `${c.name}: priority normal by default`)
    const expected = [...c.expect].sort((x, y) => x - y)
    t.same(await recipientIds(appliance, created.body.id), expected, `${c.name}: the recipients`)
    t.equal(created.body.total, expected.length, `${c.name}: total`)
    t.equal(created.body.excluded, c.excluded, `${c.name}: unsubscribed and suppressed are excluded`)

    const done = await followReport(app, c.headers, created.body.id, (r) => r.status === 'done')
    t.equal(done.counts.accepted, expected.length, `${c.name}: all accepted`)
    const addresses = expected.map((id) => {
      const subscriber = appliance.directory.subscriber(id)
      return subscriber === undefined ? '' : appliance.directory.contact(subscriber).a
    })
    for (const address of addresses) t.equal(deliveriesTo(simulators, address), 1, `${c.name}: ${address} got one message`)
    t.equal(acceptedBySimulators(simulators), expected.length, `${c.name}: nobody else got it`)
  }
})

t.test('refusals answer with a status and a stable error code, and store nothing', async (t) => {
  const { appliance, app, city } = await startApi(t)
  const schoolA = 'higashi-es'
  const schoolB = 'nishi-es'
  addMember(appliance, 'a1@docomo.ne.jp', schoolA, { group: '1年/2組' })
  const b1 = addMember(appliance, 'b1@docomo.ne.jp', schoolB, { group: '1年/2組' })
  const cityToken = bearer(appliance, ['admin'])
  const tokenA = bearer(appliance, ['broadcasts:write', 'broadcasts:read', 'members:write'], schoolA)
  const readOnly = bearer(appliance, ['broadcasts:read'])
  const good = { organisation: schoolA, ...message, targets: { groupPaths: ['1年/2組'] } }

  const broadcastB = await post(app, cityToken, { ...good, organisation: schoolB })
  t.equal(broadcastB.status, 201, 'the city sends for school B')
  await followReport(app, cityToken, broadcastB.body.id, (r) => r.status === 'done')
  const before = appliance.book.list().length

  const expectError = async (
    name: string, request: InjectOptions, status: number, code: string
  ): Promise<void> => {
    const response = await app.inject(request)
    t.equal(response.statusCode, status, `${name}: status`)
    t.equal(json(response).error?.code, code, `${name}: code`)
  }
  const send = (headers: Record<string, string>, payload: Record<string, unknown>): InjectOptions =>
    ({ method: 'POST', url: '/api/v1/broadcasts', headers, payload })

  await expectError('no token', send({}, good), 401, 'MIMAMORI_UNAUTHORIZED')
  await expectError('a wrong token', send({ authorization: 'Bearer mmr_notatokenatall' }, good), 401, 'MIMAMORI_UNAUTHORIZED')
  await expectError('not a bearer token', send({ authorization: 'Basic dXNlcjpwYXNz' }, good), 401, 'MIMAMORI_UNAUTHORIZED')
  await expectError('reading without a token', { method: 'GET', url: `/api/v1/broadcasts/${broadcastB.body.id as number}` }, 401, 'MIMAMORI_UNAUTHORIZED')
  await expectError('a token lacking the scope', send(readOnly, good), 403, 'MIMAMORI_FORBIDDEN')

  await expectError('school A sends for school B', send(tokenA, { ...good, organisation: schoolB }), 403, 'MIMAMORI_FORBIDDEN')
  await expectError('school A reads B\'s broadcast',
    { method: 'GET', url: `/api/v1/broadcasts/${broadcastB.body.id as number}`, headers: tokenA }, 403, 'MIMAMORI_FORBIDDEN')
  await expectError('school A pauses B\'s broadcast',
    { method: 'POST', url: `/api/v1/broadcasts/${broadcastB.body.id as number}/pause`, headers: tokenA }, 403, 'MIMAMORI_FORBIDDEN')
  await expectError('school A imports into B', {
    method: 'POST', url: `/api/v1/organisations/${schoolB}/members/import`,
    headers: { ...tokenA, 'content-type': 'text/csv' }, payload: 'メールアドレス\r\nx1@docomo.ne.jp\r\n'
  }, 403, 'MIMAMORI_FORBIDDEN')
  const groupB = city.groups[schoolB]?.['1年/2組'] as string
  await expectError('school A targets B\'s groups from the city',
    send(tokenA, { ...good, organisation: city.cityId, targets: { groups: [groupB] } }), 403, 'MIMAMORI_FORBIDDEN')
  await expectError('school A targets B\'s group by id',
    send(tokenA, { ...good, targets: { groups: [groupB] } }), 403, 'MIMAMORI_FORBIDDEN')
  await expectError('school A targets organisation B',
    send(tokenA, { ...good, targets: { organisations: [schoolB] } }), 403, 'MIMAMORI_FORBIDDEN')
  await expectError('school A names a parent of B',
    send(tokenA, { ...good, targets: { subscribers: [b1] } }), 403, 'MIMAMORI_FORBIDDEN')
  const listA = await app.inject({ method: 'GET', url: '/api/v1/broadcasts', headers: tokenA })
  t.same(json(listA).broadcasts, [], 'school A does not see B\'s broadcasts in the list')

  const { subject: _subject, ...noSubject } = good
  await expectError('a missing subject', send(cityToken, noSubject), 400, 'MIMAMORI_BAD_REQUEST')
  await expectError('an empty subject', send(cityToken, { ...good, subject: '' }), 400, 'MIMAMORI_BAD_REQUEST')
  await expectError('a subject with CR LF', send(cityToken, { ...good, subject: '休校\r\nBcc: x@example.com' }), 400, 'MIMAMORI_HEADER_INJECTION')
  await expectError('a subject with LF', send(cityToken, { ...good, subject: '休校\nX-Test: 1' }), 400, 'MIMAMORI_HEADER_INJECTION')
  await expectError('an unknown priority', send(cityToken, { ...good, priority: 'urgent' }), 400, 'MIMAMORI_BAD_REQUEST')
  await expectError('an unknown property', send(cityToken, { ...good, cc: 'x@example.com' }), 400, 'MIMAMORI_BAD_REQUEST')
  await expectError('an unknown target', send(cityToken, { ...good, targets: { groupPaths: ['1年/2組'], everyone: true } }), 400, 'MIMAMORI_BAD_REQUEST')
  await expectError('a subscriber who does not exist',
    send(cityToken, { ...good, organisation: city.cityId, targets: { subscribers: [999999] } }), 404, 'MIMAMORI_NOT_FOUND')
  await expectError('a topic that does not exist', send(cityToken, { ...good, targets: { topics: ['weather-on-mars'] } }), 400, 'MIMAMORI_BAD_REQUEST')
  await expectError('a subscriber id that is no integer', send(cityToken, { ...good, targets: { subscribers: [1.5] } }), 400, 'MIMAMORI_BAD_REQUEST')
  await expectError('a body that is not JSON',
    { method: 'POST', url: '/api/v1/broadcasts', headers: { ...cityToken, 'content-type': 'application/json' }, payload: '{"subject":' },
    400, 'MIMAMORI_BAD_REQUEST')
  for (const id of ['1.5', 'abc', '0', '-3']) {
    await expectError(`broadcast id "${id}"`, { method: 'GET', url: `/api/v1/broadcasts/${id}`, headers: cityToken }, 400, 'MIMAMORI_BAD_REQUEST')
  }

  await expectError('an unknown broadcast', { method: 'GET', url: '/api/v1/broadcasts/9999', headers: cityToken }, 404, 'MIMAMORI_NOT_FOUND')
  await expectError('cancelling an unknown broadcast', { method: 'POST', url: '/api/v1/broadcasts/9999/cancel', headers: cityToken }, 404, 'MIMAMORI_NOT_FOUND')
  await expectError('an unknown organisation', send(cityToken, { ...good, organisation: 'no-such-school' }), 404, 'MIMAMORI_NOT_FOUND')
  await expectError('an unknown group path', send(cityToken, { ...good, targets: { groupPaths: ['9年/9組'] } }), 404, 'MIMAMORI_NOT_FOUND')
  await expectError('a class nobody is in', send(cityToken, { ...good, targets: { groupPaths: ['6年/3組'] } }), 422, 'MIMAMORI_NO_RECIPIENTS')
  await expectError('a topic nobody chose', send(cityToken, { ...good, targets: { groupPaths: ['1年/2組'], topics: ['food-education'] } }), 422, 'MIMAMORI_NO_RECIPIENTS')

  const noRoute = await app.inject({ method: 'GET', url: '/api/v1/broadcast/1?x=1', headers: cityToken })
  t.equal(noRoute.statusCode, 404)
  t.same(json(noRoute).error, { code: 'MIMAMORI_NOT_FOUND', message: 'no route GET /api/v1/broadcast/1' })

  t.equal(appliance.book.list().length, before, 'no refused request made a broadcast')
})

t.test('pause holds a running broadcast, resume finishes it, and each recipient gets one message', async (t) => {
  const { appliance, app, city, simulators } = await startApi(t, slowDelivery())
  const ids = seedSubscribers(appliance.directory, city, 300)
  const watcher = addMember(appliance, 'watcher@example.org', city.fireDepartment)
  const headers = bearer(appliance, ['broadcasts:write', 'broadcasts:read'])

  const created = await post(app, headers, {
    organisation: city.cityId, ...message, priority: 'bulk', targets: { organisations: [...city.schools, city.kindergarten] }
  })
  t.equal(created.status, 201)
  const id = created.body.id as number
  t.equal(created.body.total, ids.length)
  await waitFor(() => acceptedBySimulators(simulators) >= 20)

  const paused = await app.inject({ method: 'POST', url: `/api/v1/broadcasts/${id}/pause`, headers })
  t.equal(paused.statusCode, 200)
  t.equal(json(paused).status, 'paused')
  const inFlight = json(paused).counts.sending as number
  const acceptedAtPause = json(paused).counts.accepted as number

  // The messages in flight at the pause end; then nothing more leaves.
  const settled = await followReport(app, headers, id, (r) => r.counts.sending === 0)
  t.equal(settled.status, 'paused')
  const stalled = acceptedBySimulators(simulators)
  t.equal(stalled, settled.counts.accepted, 'the gateways have what the ledger counts as accepted')
  t.ok(stalled <= acceptedAtPause + inFlight, 'only the messages in flight left after the pause')
  t.ok(stalled < ids.length, 'the pause came before the end')

  // Another broadcast runs through while this one waits; the paused one does not move.
  const other = await post(app, headers, { organisation: city.fireDepartment, ...message, targets: { subscribers: [watcher] } })
  t.equal(other.status, 201)
  await followReport(app, headers, other.body.id, (r) => r.status === 'done')
  t.equal(acceptedBySimulators(simulators) - 1, stalled, 'nothing of the paused broadcast left meanwhile')
  const still = await followReport(app, headers, id, () => true)
  t.equal(still.counts.accepted, stalled)
  t.equal(still.status, 'paused')

  const again = await app.inject({ method: 'POST', url: `/api/v1/broadcasts/${id}/pause`, headers })
  t.equal(again.statusCode, 409, 'a paused broadcast cannot pause again')

  const resumed = await app.inject({ method: 'POST', url: `/api/v1/broadcasts/${id}/resume`, headers })
  t.equal(resumed.statusCode, 200)
  t.equal(json(resumed).status, 'sending')
  const done = await followReport(app, headers, id, (r) => r.status === 'done')
  t.equal(done.counts.accepted, done.total)
  t.equal(acceptedBySimulators(simulators), done.total + 1)
  let duplicates = 0
  for (const sim of Object.values(simulators)) duplicates += sim.duplicates()
  t.equal(duplicates, 0, 'no recipient got the message twice')

  for (const action of ['pause', 'resume', 'cancel']) {
    const response = await app.inject({ method: 'POST', url: `/api/v1/broadcasts/${id}/${action}`, headers })
    t.equal(response.statusCode, 409, `${action} on a finished broadcast`)
    t.equal(json(response).error.code, 'MIMAMORI_CONFLICT')
  }
})

t.test('cancel ends a running broadcast with the rest cancelled and every recipient in one final state', async (t) => {
  const { appliance, app, city, simulators } = await startApi(t, slowDelivery())
  const ids = seedSubscribers(appliance.directory, city, 300)
  const headers = bearer(appliance, ['broadcasts:write', 'broadcasts:read'])

  const created = await post(app, headers, { organisation: city.cityId, ...message, targets: {} })
  const id = created.body.id as number
  await waitFor(() => acceptedBySimulators(simulators) >= 20)
  const cancelled = await app.inject({ method: 'POST', url: `/api/v1/broadcasts/${id}/cancel`, headers })
  t.equal(cancelled.statusCode, 200)
  // Until the messages in flight are answered the broadcast still reads `sending`.
  t.ok(['sending', 'cancelled'].includes(json(cancelled).status))
  t.equal(json(cancelled).counts.queued, 0, 'nothing is left queued once cancel answers')
  t.equal(json(cancelled).counts.sending + json(cancelled).counts.accepted + json(cancelled).counts.cancelled,
    ids.length, 'the rest is cancelled at once')

  const done = await followReport(app, headers, id, (r) => r.status === 'cancelled')
  t.equal(done.total, ids.length)
  t.ok(done.counts.cancelled > 0, 'some recipients were cancelled')
  t.ok(done.counts.accepted >= 20, 'what was accepted stays accepted')
  t.equal(done.counts.accepted + done.counts.cancelled + done.counts.failed + done.counts.suppressed, done.total,
    'the final states add up to the total')
  t.equal(done.counts.queued + done.counts.sending + done.counts.deferred, 0)
  t.equal(acceptedBySimulators(simulators), done.counts.accepted, 'the gateways got only the accepted ones')

  const rows = await ledgerRows(appliance, id)
  t.equal(rows.length, done.total)
  t.ok(rows.every((r) => isFinal(r.row)), 'every ledger row is in a final state')
  t.equal(rows.filter((r) => r.row.st === 'cancelled').length, done.counts.cancelled)

  // A cancelled recipient's message never leaves, even after the in-flight ones are answered.
  const cancelledRow = rows.find((r) => r.row.st === 'cancelled')
  const subscriber = appliance.directory.subscriber(cancelledRow?.row.s ?? 0)
  t.ok(subscriber !== undefined)
  if (subscriber !== undefined) t.equal(deliveriesTo(simulators, appliance.directory.contact(subscriber).a), 0)

  const again = await app.inject({ method: 'POST', url: `/api/v1/broadcasts/${id}/cancel`, headers })
  t.equal(again.statusCode, 409)
  t.equal(json(again).error.code, 'MIMAMORI_CONFLICT')
})

t.test('a paused broadcast can be cancelled and then counts every recipient once', async (t) => {
  const { appliance, app, city, simulators } = await startApi(t, slowDelivery())
  seedSubscribers(appliance.directory, city, 200)
  const headers = bearer(appliance, ['broadcasts:write', 'broadcasts:read'])

  const created = await post(app, headers, { organisation: city.cityId, ...message, targets: {} })
  const id = created.body.id as number
  await waitFor(() => acceptedBySimulators(simulators) >= 10)
  t.equal((await app.inject({ method: 'POST', url: `/api/v1/broadcasts/${id}/pause`, headers })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: `/api/v1/broadcasts/${id}/cancel`, headers })).statusCode, 200)
  const done = await followReport(app, headers, id, (r) => r.status === 'cancelled')
  t.equal(done.counts.accepted + done.counts.cancelled, done.total)
  t.equal(acceptedBySimulators(simulators), done.counts.accepted)
  t.ok((await ledgerRows(appliance, id)).every((r) => isFinal(r.row)))
})

t.test('a Shift_JIS roster imports through the API and its classes then receive broadcasts', async (t) => {
  const { appliance, app, simulators } = await startApi(t)
  appliance.directory.createOrganisation({
    id: 'minami-es', name: '松山市立南小学校', kind: 'school', parentId: 'matsuyama', postalAddress: '愛媛県松山市南町5-5'
  })
  const headers = bearer(appliance, ['members:write', 'broadcasts:write', 'broadcasts:read'], 'minami-es')
  const url = '/api/v1/organisations/minami-es/members/import'
  const subscribersBefore = appliance.store.subscribers.getCount()

  const dry = await app.inject({
    method: 'POST', url: `${url}?dryRun=true`, headers: { ...headers, 'content-type': 'text/csv' },
    payload: fixture('roster-cp932.csv')
  })
  t.equal(dry.statusCode, 200)
  t.match(json(dry), { imported: 14, created: 14, updated: 0 }, 'the dry run counts the people it would add')
  t.ok(json(dry).groupsCreated.includes('1年/2組'), 'the dry run lists the classes it would make')
  t.equal(appliance.store.subscribers.getCount(), subscribersBefore, 'a dry run stores no subscriber')
  t.same(appliance.directory.groups('minami-es'), [], 'a dry run makes no group')

  const real = await app.inject({
    method: 'POST', url, headers: { ...headers, 'content-type': 'application/vnd.ms-excel' },
    payload: fixture('roster-cp932.csv')
  })
  t.equal(real.statusCode, 200, 'a browser uploading a .csv as application/vnd.ms-excel is read as CSV')
  const report = json(real)
  t.same(report.groupsCreated.sort(), json(dry).groupsCreated.sort(), 'the dry run listed the groups made')
  t.match(report, {
    organisationId: 'minami-es', encoding: 'cp932', totalRecords: 18, imported: 14, created: 14, updated: 0,
    duplicates: [{ line: 10, firstLine: 4 }]
  })
  t.same(report.errors.map((e: { line: number, code: string }) => [e.line, e.code]),
    [[11, 'duplicate-conflict'], [13, 'bad-address'], [14, 'missing-address']])
  for (const path of ['1年/1組', '1年/2組', '2年/A組', '3年/1組', 'PTA', '登校班1', '見守り隊~朝~']) {
    t.ok(report.groupsCreated.includes(path), `group ${path} created`)
  }
  t.equal(appliance.store.subscribers.getCount(), subscribersBefore + 14)

  const again = await app.inject({
    method: 'POST', url, headers: { ...headers, 'content-type': 'text/csv; charset=Shift_JIS' }, payload: fixture('roster-utf8-bom.csv')
  })
  t.equal(again.statusCode, 200, 'a content type with a charset parameter is taken')
  t.match(json(again), { encoding: 'utf-8-bom', imported: 14, created: 0, updated: 14, groupsCreated: [] })

  const broken = await app.inject({
    method: 'POST', url, headers: { ...headers, 'content-type': 'text/csv' }, payload: fixture('broken-quote.csv')
  })
  t.equal(broken.statusCode, 200)
  t.match(json(broken).errors, [{ line: 4, code: 'malformed-row' }])

  const noAddress = await app.inject({
    method: 'POST', url, headers: { ...headers, 'content-type': 'text/csv' }, payload: fixture('tab_comma_mixed.csv')
  })
  t.equal(noAddress.statusCode, 400)
  t.equal(json(noAddress).error.code, 'MIMAMORI_CSV_NO_ADDRESS_COLUMN')

  const asJson = await app.inject({ method: 'POST', url, headers, payload: { rows: [] } })
  t.equal(asJson.statusCode, 400)
  t.equal(json(asJson).error.code, 'MIMAMORI_BAD_REQUEST')

  const noScope = await app.inject({
    method: 'POST', url, headers: { ...bearer(appliance, ['broadcasts:write']), 'content-type': 'text/csv' },
    payload: fixture('roster-cp932.csv')
  })
  t.equal(noScope.statusCode, 403)

  const created = await post(app, headers, { organisation: 'minami-es', ...message, targets: { groupPaths: ['1年/2組'] } })
  t.equal(created.status, 201)
  t.equal(created.body.total, 2, 'the two families of 1年 2組')
  await followReport(app, headers, created.body.id, (r) => r.status === 'done')
  t.equal(simulators.docomo?.acceptedCount('"kenta..sato."@docomo.ne.jp'), 1, 'the legacy address, quoted')
  t.equal(simulators.au?.acceptedCount('misaki_suzuki@au.com'), 1)
  t.equal(acceptedBySimulators(simulators), 2)
})

t.test('/healthz answers and /metrics counts what each route sent', async (t) => {
  const { appliance, app, city, simulators } = await startApi(t)
  seedSubscribers(appliance.directory, city, 80)

  const health = await app.inject({ method: 'GET', url: '/healthz' })
  t.equal(health.statusCode, 200)
  t.match(json(health), { status: 'ok' })

  const broadcast = appliance.submit({
    organisationId: city.cityId, ...message, priority: 'normal', targets: {}, createdBy: 'test'
  })
  await appliance.finished(broadcast.id)

  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(metrics.statusCode, 200)
  t.match(metrics.headers['content-type'], /^text\/plain/)
  const text = metrics.body
  t.match(text, /# TYPE mimamori_route_sent_total counter/)
  for (const route of ['docomo', 'au', 'softbank', 'default']) {
    const match = new RegExp(`^mimamori_route_sent_total\\{route="${route}"\\} (\\d+)$`, 'm').exec(text)
    t.ok(match !== null, `a sent counter for ${route}`)
    t.equal(Number(match?.[1]), simulators[route]?.stats().acceptedRecipients, `${route} counts what its gateway accepted`)
  }
  const lines = text.trimEnd().split('\n')
  for (const line of lines) {
    t.ok(line.startsWith('#') || /^[a-z_]+(\{[a-z]+="[^"]*"\})? -?[0-9.e+]+$/.test(line), `a valid sample line: ${line}`)
  }
})

t.test('no log line holds an address after a broadcast, an import and an opt-out', async (t) => {
  const { appliance, app, city, simulators, logLines } = await startApi(t)
  const ids = seedSubscribers(appliance.directory, city, 60)
  const headers = bearer(appliance, ['admin'])

  const created = await post(app, headers, { organisation: city.cityId, ...message, targets: {} })
  t.equal(created.status, 201)
  await followReport(app, headers, created.body.id, (r) => r.status === 'done')

  const imported = await app.inject({
    method: 'POST', url: '/api/v1/organisations/higashi-es/members/import',
    headers: { ...headers, 'content-type': 'text/csv' }, payload: fixture('roster-cp932.csv')
  })
  t.equal(imported.statusCode, 200)

  const rows = await ledgerRows(appliance, created.body.id)
  const token = makeToken(appliance.vault, { broadcastId: created.body.id, seq: rows[0]?.seq ?? 0 })
  const optOut = await app.inject({
    method: 'POST', url: `/u/${token}`, headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'List-Unsubscribe=One-Click'
  })
  t.equal(optOut.statusCode, 200)

  // A bad import row and a refused request carry addresses in their input.
  await app.inject({
    method: 'POST', url: '/api/v1/broadcasts', headers,
    payload: { organisation: city.cityId, subject: 'x\r\nBcc: leak@docomo.ne.jp', body: '', targets: {} }
  })

  t.ok(logLines.some((l) => l.includes('"broadcast submitted"')), 'the appliance log is captured')
  t.ok(logLines.some((l) => l.includes('"members imported"')), 'the import is logged')
  t.ok(logLines.some((l) => l.includes('"opt-out"')), 'the opt-out is logged')
  t.ok(logLines.some((l) => l.includes('"component":"http"')), 'the HTTP server logs into the same logger')

  const addresses = new Set<string>(['@docomo.ne.jp', 'leak@docomo.ne.jp', 'takahashi.ichiro', 'kenta..sato.'])
  for (const id of ids) {
    const subscriber = appliance.directory.subscriber(id)
    if (subscriber !== undefined) addresses.add(appliance.directory.contact(subscriber).a)
  }
  for (const sim of Object.values(simulators)) for (const address of sim.perRecipient().keys()) addresses.add(address)
  const secret = headers.authorization?.slice('Bearer '.length) ?? ''
  const leaks = logLines.filter((line) =>
    [...addresses].some((a) => line.includes(a)) || line.includes(token) || line.includes(secret))
  t.same(leaks, [], 'no address, recipient token or bearer secret in the log')
})
