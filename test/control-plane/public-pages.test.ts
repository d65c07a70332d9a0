import t from 'tap'
import { simpleParser } from 'mailparser'
import type { InjectOptions } from 'fastify'
import type { Appliance } from '../../appliance/appliance.js'
import type { Broadcast } from '../../appliance/broadcasts.js'
import { makeToken } from '../../appliance/recipient-token.js'
import type { GatewaySimulator } from '../../ops/gateway-simulator.js'
import { seedSubscribers } from '../../ops/sample-city.js'
import { waitFor } from '../helpers.js'
import { applyBouncePolicy } from '../../appliance/bounce-policy.js'
import {
  acceptedBySimulators, addMember, bearer, deliveriesTo, ledgerRows, recipientIds, slowDelivery, startApi
} from './harness.js'

const BASE = 'https://mimamori.example.jp'
const message = { subject: '【東小】授業参観のお知らせ', body: '6月12日(水) 5校時に授業参観を行います。' }

function send (appliance: Appliance, organisationId: string, targets: Broadcast['targets'] = {}): Broadcast {
  return appliance.submit({ organisationId, ...message, priority: 'normal', targets, createdBy: 'test' })
}

interface Links { unsubscribe: string, read: string, listUnsubscribe: string, listUnsubscribePost: string }

/** The per-recipient links of the message a simulator received for this address. */
async function linksFor (simulators: Record<string, GatewaySimulator>, address: string): Promise<Links> {
  const received = Object.values(simulators).flatMap((s) => s.received).filter((m) => m.rcptTo.includes(address))
  if (received.length !== 1 || received[0]?.raw === undefined) throw new Error(`${received.length} messages to ${address}`)
  const parsed = await simpleParser(received[0].raw)
  const text = parsed.text ?? ''
  const path = (kind: string): string => {
    const found = new RegExp(`${BASE.replace(/\./g, '\\.')}(/${kind}/[A-Za-z0-9_-]+)`).exec(text)
    if (found?.[1] === undefined) throw new Error(`no /${kind}/ link in the message`)
    return found[1]
  }
  const header = (name: string): string =>
    parsed.headerLines.find((h) => h.key === name)?.line.replace(/\r\n\s+/g, ' ') ?? ''
  return {
    unsubscribe: path('u'),
    read: path('r'),
    listUnsubscribe: header('list-unsubscribe'),
    listUnsubscribePost: header('list-unsubscribe-post')
  }
}

function consentEvents (appliance: Appliance): Array<Record<string, unknown>> {
  return [...appliance.store.consent.getRange()].map((e) => e.value as Record<string, unknown>)
}

const ONE_CLICK = 'List-Unsubscribe=One-Click'

t.test('the unsubscribe link names the sender and the RFC 8058 one-click POST stops its mail in any body', async (t) => {
  const { appliance, app, simulators } = await startApi(t)
  const school = 'higashi-es'
  const parents = ['p1@docomo.ne.jp', 'p2@au.com', 'p3@softbank.ne.jp', 'p4@gmail.com', 'p5@docomo.ne.jp', 'p6@au.com']
  const ids = parents.map((a) => addMember(appliance, a, school, { group: '1年/2組' }))
  const stay = addMember(appliance, 'stay@docomo.ne.jp', school, { group: '1年/2組' })
  // p1 has a younger child in the kindergarten too.
  addMember(appliance, 'p1@docomo.ne.jp', 'hoshi-kg', { group: '年長' })

  const first = send(appliance, school, { groups: [] })
  await appliance.finished(first.id)

  const links = await Promise.all(parents.map(async (a) => await linksFor(simulators, a)))
  const p1 = links[0] as Links
  t.match(p1.listUnsubscribe, `<${BASE}${p1.unsubscribe}>`, 'List-Unsubscribe carries the same link')
  t.equal(p1.listUnsubscribePost, `List-Unsubscribe-Post: ${ONE_CLICK}`)

  const page = await app.inject({ method: 'GET', url: p1.unsubscribe })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, '松山市立東小学校', 'the page names the organisation')
  t.match(page.body, /<form method="post">/)
  t.equal(consentEvents(appliance).length, 0, 'looking at the page changes nothing')
  t.equal(appliance.directory.subscriber(ids[0] as number)?.left, undefined)

  const bodies: Array<{ name: string, headers: Record<string, string>, payload?: string }> = [
    { name: 'form-urlencoded', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: ONE_CLICK },
    {
      name: 'multipart/form-data',
      headers: { 'content-type': 'multipart/form-data; boundary=XyZ' },
      payload: '--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--XyZ--\r\n'
    },
    { name: 'text/plain', headers: { 'content-type': 'text/plain' }, payload: ONE_CLICK },
    { name: 'application/json', headers: { 'content-type': 'application/json' }, payload: '{"List-Unsubscribe":"One-Click"}' },
    { name: 'no body at all', headers: {} },
    { name: 'broken JSON', headers: { 'content-type': 'application/json' }, payload: '{' }
  ]
  for (const [i, b] of bodies.entries()) {
    const request: InjectOptions = { method: 'POST', url: links[i]?.unsubscribe ?? '', headers: b.headers }
    if (b.payload !== undefined) request.payload = b.payload
    const response = await app.inject(request)
    t.equal(response.statusCode, 200, `one-click POST with ${b.name}`)
    t.match(response.body, '松山市立東小学校')
    t.same(appliance.directory.subscriber(ids[i] as number)?.left, [school], `${b.name}: has left the school`)
  }
  await appliance.store.root.committed
  const events = consentEvents(appliance)
  t.equal(events.length, parents.length, 'one consent event per opt-out')
  t.match(events[0], { kind: 'opt-out', organisationId: school, channel: 'one-click', broadcastId: first.id, subscriberId: ids[0] })
  t.same(events.map((e) => e.channel), ['one-click', 'one-click', 'one-click', 'one-click', 'web', 'web'],
    'a body naming List-Unsubscribe=One-Click is a one-click opt-out')

  // The page's own button posts an empty form: a web opt-out, not a mail client's one-click.
  const web = send(appliance, 'hoshi-kg')
  await appliance.finished(web.id)
  const webRows = await ledgerRows(appliance, web.id)
  const webToken = makeToken(appliance.vault, { broadcastId: web.id, seq: webRows[0]?.seq ?? 0 })
  const button = await app.inject({
    method: 'POST', url: `/u/${webToken}`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: ''
  })
  t.equal(button.statusCode, 200)
  t.match(consentEvents(appliance).at(-1), { channel: 'web', organisationId: 'hoshi-kg' })

  // p1 again: stopped the school, not the kindergarten (until the button above).
  const second = send(appliance, school)
  t.same(await recipientIds(appliance, second.id), [stay], 'the school now reaches only those who stayed')
  t.equal(second.excluded, parents.length, 'those who left are counted as excluded')
  await appliance.finished(second.id)
  for (const a of parents) t.equal(deliveriesTo(simulators, a) - (a === 'p1@docomo.ne.jp' ? 1 : 0), 1, `${a} got nothing more from the school`)
})

t.test('an opt-out from one organisation leaves the mail of another organisation the person belongs to', async (t) => {
  const { appliance, app, simulators } = await startApi(t)
  const parent = addMember(appliance, 'oyako@docomo.ne.jp', 'higashi-es', { group: '1年/2組' })
  addMember(appliance, 'oyako@docomo.ne.jp', 'hoshi-kg', { group: '年長' })
  const other = addMember(appliance, 'other@au.com', 'higashi-es', { group: '1年/2組' })

  const school = send(appliance, 'higashi-es')
  await appliance.finished(school.id)
  const { unsubscribe } = await linksFor(simulators, 'oyako@docomo.ne.jp')
  const response = await app.inject({
    method: 'POST', url: unsubscribe, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: ONE_CLICK
  })
  t.equal(response.statusCode, 200)

  const again = send(appliance, 'higashi-es')
  t.same(await recipientIds(appliance, again.id), [other], 'the school no longer includes the parent')
  const named = await app.inject({
    method: 'POST', url: '/api/v1/broadcasts', headers: bearer(appliance, ['admin']),
    payload: { organisation: 'higashi-es', ...message, targets: { subscribers: [parent, other] } }
  })
  t.equal(named.statusCode, 201, 'naming the parent who left is no error')
  t.same(await recipientIds(appliance, (JSON.parse(named.body) as { id: number }).id), [other], 'and the parent is left out')

  t.equal(again.excluded, 1, 'the parent is counted as excluded')

  const kindergarten = send(appliance, 'hoshi-kg')
  t.same(await recipientIds(appliance, kindergarten.id), [parent], 'the kindergarten still reaches the parent')
  // The page said "stop mail from 東小学校"; the city's warnings are another sender's.
  const cityWide = send(appliance, 'matsuyama', { topics: ['disaster'] })
  t.same(await recipientIds(appliance, cityWide.id), [parent, other], 'the city still reaches the parent')
  for (const b of [again, kindergarten, cityWide]) await appliance.finished(b.id)
  t.equal(deliveriesTo(simulators, 'oyako@docomo.ne.jp'), 3, 'the first school message, the kindergarten and the city')
})

t.test('the unsubscribe page also stops everything: no organisation reaches the person after it', async (t) => {
  const { appliance, app, simulators } = await startApi(t)
  const parent = addMember(appliance, 'zenbu@docomo.ne.jp', 'higashi-es', { group: '1年/2組' })
  addMember(appliance, 'zenbu@docomo.ne.jp', 'hoshi-kg', { group: '年長' })
  const other = addMember(appliance, 'other@au.com', 'hoshi-kg', { group: '年長' })
  const school = send(appliance, 'higashi-es')
  await appliance.finished(school.id)
  const { unsubscribe } = await linksFor(simulators, 'zenbu@docomo.ne.jp')

  const page = await app.inject({ method: 'GET', url: unsubscribe })
  t.equal(page.statusCode, 200)
  t.match(page.body, '配信を停止する / Stop', 'leaving this organisation is offered')
  t.match(page.body, 'すべての配信を停止する / Stop all mail', 'and so is stopping everything')
  t.match(page.body, '災害・防災のお知らせも届かなくなります', 'saying what that includes')
  t.notMatch(page.body, /<script/i, 'no JavaScript')
  const action = /<form method="post" action="([^"]+)">/.exec(page.body)?.[1] ?? ''
  // where a phone's browser posts the second form: its action resolved against the page's URL
  const target = new URL(action, `${BASE}${unsubscribe}`)
  t.equal(target.pathname, `${unsubscribe}/all`)
  t.equal(consentEvents(appliance).length, 0, 'looking at the page changes nothing')

  const response = await app.inject({
    method: 'POST', url: target.pathname, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: ''
  })
  t.equal(response.statusCode, 200)
  t.match(response.body, 'すべての組織からのメールを停止しました')
  t.match(response.body, 'entry@mimamori.example.jp', 'it says how to sign up again')
  t.equal(appliance.directory.subscriber(parent)?.status, 'unsubscribed')
  await appliance.store.root.committed
  const events = consentEvents(appliance)
  t.equal(events.length, 1, 'one consent event')
  t.match(events[0], { kind: 'opt-out', scope: 'all', channel: 'web', broadcastId: school.id, subscriberId: parent })
  t.notOk('organisationId' in (events[0] ?? {}), 'it is about no one organisation')

  const kindergarten = send(appliance, 'hoshi-kg')
  t.same(await recipientIds(appliance, kindergarten.id), [other], "another organisation's new broadcast leaves them out")
  t.equal(kindergarten.excluded, 1)
  const cityWide = send(appliance, 'matsuyama', { topics: ['disaster'] })
  t.same(await recipientIds(appliance, cityWide.id), [other], "and so does the city's")
  for (const b of [kindergarten, cityWide]) await appliance.finished(b.id)
  t.equal(deliveriesTo(simulators, 'zenbu@docomo.ne.jp'), 1, 'nothing reached them after the school message')

  const forged = makeToken(appliance.vault, { broadcastId: school.id, seq: 999 })
  const refused = await app.inject({ method: 'POST', url: `/u/${forged}/all` })
  t.equal(refused.statusCode, 404, 'a token of nobody stops nothing')
  t.equal(consentEvents(appliance).length, 1)
})

t.test('an opt-out during a running broadcast stops further mail to that address', async (t) => {
  const { appliance, app, city, simulators } = await startApi(t, slowDelivery())
  seedSubscribers(appliance.directory, city, 250, { domains: ['docomo.ne.jp'] })
  const broadcast = send(appliance, city.cityId)
  const rows = await ledgerRows(appliance, broadcast.id)
  // The docomo route sends its slice in seq order: its last recipient is sent last.
  const last = rows.at(-1)
  if (last === undefined) throw new Error('no ledger rows')
  const subscriber = appliance.directory.subscriber(last.row.s)
  const address = subscriber === undefined ? '' : appliance.directory.contact(subscriber).a
  const token = makeToken(appliance.vault, { broadcastId: broadcast.id, seq: last.seq })

  await waitFor(() => acceptedBySimulators(simulators) >= 10)
  t.ok(acceptedBySimulators(simulators) < rows.length - 20, 'the broadcast is still running')
  const response = await app.inject({
    method: 'POST', url: `/u/${token}`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: ONE_CLICK
  })
  t.equal(response.statusCode, 200)

  const report = await appliance.finished(broadcast.id)
  t.equal(report.status, 'done')
  t.equal(report.counts.suppressed, 1)
  t.equal(report.counts.accepted, rows.length - 1)
  const after = (await ledgerRows(appliance, broadcast.id)).find((r) => r.seq === last.seq)
  t.equal(after?.row.st, 'suppressed', 'the recipient ends suppressed')
  t.equal(deliveriesTo(simulators, address), 0, 'the gateway never received the message')
  t.equal(acceptedBySimulators(simulators), rows.length - 1)
})

t.test('the read link shows the subject and a button, and only the POST records the read once', async (t) => {
  const { appliance, app, simulators } = await startApi(t)
  addMember(appliance, 'yomu@au.com', 'higashi-es', { group: '3年/1組' })
  const broadcast = send(appliance, 'higashi-es')
  await appliance.finished(broadcast.id)
  const { read } = await linksFor(simulators, 'yomu@au.com')
  const [row] = await ledgerRows(appliance, broadcast.id)
  const key = [broadcast.id, row?.seq ?? 0]

  for (let i = 0; i < 2; i++) {
    const page = await app.inject({ method: 'GET', url: read })
    t.equal(page.statusCode, 200)
    t.match(page.body, '【東小】授業参観のお知らせ', 'the page shows the subject')
    t.match(page.body, /<form method="post"><button/, 'and a button')
  }
  const head = await app.inject({ method: 'HEAD', url: read })
  t.equal(head.statusCode, 200)
  t.equal(appliance.store.responses.get(key), undefined, 'opening the link records nothing')

  const confirmed = await app.inject({ method: 'POST', url: read, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: '' })
  t.equal(confirmed.statusCode, 200)
  t.match(confirmed.body, '【東小】授業参観のお知らせ')
  await appliance.store.root.committed
  const first = appliance.store.responses.get(key) as { readAt?: string } | undefined
  t.match(first?.readAt, /^\d{4}-\d\d-\d\dT/)

  await waitFor(() => Date.now() > Date.parse(first?.readAt ?? '') + 5)
  const twice = await app.inject({ method: 'POST', url: read })
  t.equal(twice.statusCode, 200)
  t.same(appliance.store.responses.get(key), first, 'a second tap keeps the first time')
  t.equal([...appliance.store.responses.getRange()].length, 1)
})

t.test("a person a carrier's filter refused is shown how to allow our mail, until they confirm reading", async (t) => {
  const { appliance, app, simulators } = await startApi(t)
  const id = addMember(appliance, 'filter@ezweb.ne.jp', 'higashi-es', { group: '3年/1組' })
  const broadcast = send(appliance, 'higashi-es')
  await appliance.finished(broadcast.id)
  const { read } = await linksFor(simulators, 'filter@ezweb.ne.jp')

  const plain = await app.inject({ method: 'GET', url: read })
  t.notMatch(plain.body, 'ドメイン指定受信', 'no help for a person whose mail was never refused')

  const subscriber = appliance.directory.subscriber(id)
  if (subscriber === undefined) throw new Error('no subscriber')
  applyBouncePolicy(appliance, subscriber, {
    verdict: 'soft', reason: 'filtered', source: 'dsn', eventId: 'dsn:test', at: Date.now()
  })
  const flagged = await app.inject({ method: 'GET', url: read })
  t.match(flagged.body, '届かなかったメールがあります')
  t.match(flagged.body, /<details open><summary>au/, "the person's own carrier is open")
  t.match(flagged.body, 'mimamori.example.jp', 'naming the domain to allow')

  const confirmed = await app.inject({ method: 'POST', url: read })
  t.match(confirmed.body, '届かなかったメールがあります', 'the help is shown once more')
  t.equal(appliance.directory.subscriber(id)?.needsDomainAllow, undefined, 'and the flag is taken off')
  const after = await app.inject({ method: 'GET', url: read })
  t.notMatch(after.body, '届かなかったメールがあります')
})

t.test('a forged, truncated or altered token gets the invalid-link page and records nothing', async (t) => {
  const { appliance, app, simulators } = await startApi(t)
  const id = addMember(appliance, 'nise@docomo.ne.jp', 'higashi-es', { group: '2年/2組' })
  const broadcast = send(appliance, 'higashi-es')
  await appliance.finished(broadcast.id)
  const { unsubscribe, read } = await linksFor(simulators, 'nise@docomo.ne.jp')
  const token = unsubscribe.slice('/u/'.length)
  t.equal(read, `/r/${token}`, 'both links carry one token')

  const flip = (s: string, i: number): string => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)
  // The last of 27 base64url characters carries 4 bits of data and 2 bits of padding.
  const lastChar = token.at(-1) as string
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const samePaddingTwin = alphabet[alphabet.indexOf(lastChar) ^ 1] as string
  const forged = makeToken(appliance.vault, { broadcastId: broadcast.id, seq: 0 }).slice(0, 8) + 'A'.repeat(19)
  const bad: Array<[string, string]> = [
    ['forged MAC', forged],
    ['truncated', token.slice(0, 26)],
    ['one more character', `${token}A`],
    ['altered broadcast id', flip(token, 3)],
    ['altered seq', flip(token, 9)],
    ['altered MAC', flip(token, 20)],
    ['altered padding bits', token.slice(0, 26) + samePaddingTwin],
    ['not base64url', `${token.slice(0, 26)}.`],
    ['a made-up broadcast', makeToken(appliance.vault, { broadcastId: 999, seq: 0 })],
    ['a made-up recipient', makeToken(appliance.vault, { broadcastId: broadcast.id, seq: 999 })]
  ]
  for (const [name, value] of bad) {
    for (const [method, kind] of [['GET', 'u'], ['POST', 'u'], ['GET', 'r'], ['POST', 'r']] as const) {
      const response = await app.inject({ method, url: `/${kind}/${encodeURIComponent(value)}` })
      t.equal(response.statusCode, 404, `${name}: ${method} /${kind}/ is 404`)
      t.match(response.body, 'リンクが無効です', `${name}: the invalid-link page`)
    }
  }
  await appliance.store.root.committed
  t.same(consentEvents(appliance), [], 'no opt-out recorded')
  t.same([...appliance.store.responses.getRange()], [], 'no read recorded')
  t.equal(appliance.directory.subscriber(id)?.left, undefined, 'the subscriber has left nothing')
})
