// Empty-mail sign-up end to end: the real empty mail a SoftBank phone sent goes through the
// appliance's inbound SMTP service to entry@, the link comes back through the SoftBank gateway
// simulator, the page is filled in, and the new subscriber receives a broadcast to their class.

import t from 'tap'
import { readFileSync } from 'node:fs'
import { parseAddress } from '../../appliance/address.js'
import { householdOf } from '../../appliance/households.js'
import { sendMessage } from '../smtp-session.js'
import {
  ENTRY, consentEvents, daysFromToday, entryMail, linkPath, mailsTo, postForm, shownVersion, startSignup
} from '../control-plane/signup-harness.js'

const FIXTURE = new URL('../fixtures/jp-mail/softbank-blank.eml', import.meta.url)
const PHONE = 'softbank@softbank.ne.jp'

t.test('the real SoftBank empty mail to entry@ ends in a confirmed subscriber who receives a broadcast', async (t) => {
  const h = await startSignup(t)
  const { appliance, app, simulators, city } = h
  const classId = city.groups['higashi-es']?.['1年/2組'] as string
  appliance.directory.setGroupPassword(classId, 'sakura')

  // The file keeps the LF line ends of a mailbox; on the wire it travels with CRLF.
  const raw = readFileSync(FIXTURE, 'latin1').replace(/\r?\n/g, '\r\n')
  const sent = await sendMessage(t, h.port, { from: PHONE, to: [ENTRY], data: Buffer.from(raw, 'latin1') })
  t.match(sent.rcptTo[0], /^250/, 'entry@ is accepted at RCPT')
  t.match(sent.data, /^250/, 'the empty mail is accepted')
  await appliance.inbound.idle()
  await appliance.outbox.idle()

  const [linkMail, ...others] = await mailsTo(simulators, PHONE)
  t.equal(others.length, 0, 'one link mail')
  t.ok(simulators.softbank?.received.some((m) => m.rcptTo.includes(PHONE)), 'it went out over the SoftBank route')
  t.equal(linkMail?.subject, '登録用リンク / Sign-up link')
  t.equal(linkMail?.inReplyTo, '<20100324143713295002.5cd1@0016E68C4366>', 'it answers the empty mail')
  const path = linkPath(linkMail as NonNullable<typeof linkMail>)
  t.match(linkMail?.text, /60分間/, 'the mail says how long the link works')

  const page = await app.inject({ method: 'GET', url: path })
  t.equal(page.statusCode, 200)
  t.match(page.body, /<html lang="ja">/, 'Japanese by default')
  t.match(page.body, '受け取るお知らせを選ぶ')
  t.match(page.body, 'so***@softbank.ne.jp', 'the page names the address, masked')
  t.match(page.body, /<details open><summary>ソフトバンク/, 'the SoftBank guidance is open')
  t.match(page.body, '受信許可リスト設定')
  t.match(page.body, '後方一致')
  t.match(page.body, '「mimamori.example.jp」を入力', 'the guidance names our domain')
  t.notMatch(page.body, /<script/i, 'no JavaScript')

  const due = daysFromToday(90)
  const done = await postForm(app, path, [
    ['group', classId], [`pw.${classId}`, 'sakura'], ['org', 'matsuyama'],
    ['topic', 'suspicious-person'], ['topic', 'disaster'], ['language', 'ja'],
    ['child', '2017-05-10'], ['child', due], ['child', ''], ['consentVersion', shownVersion(page.body)]
  ])
  t.equal(done.statusCode, 200, done.body.slice(0, 300))
  t.match(done.body, '登録が完了しました')
  t.match(done.body, '松山市立東小学校: 1年/2組')

  const subscriber = appliance.directory.findSubscriber(parseAddress(PHONE))
  if (subscriber === undefined) throw new Error('no subscriber')
  t.equal(subscriber.status, 'active')
  t.same(subscriber.topics, ['suspicious-person', 'disaster'])
  t.equal(subscriber.language, 'ja')
  t.ok(appliance.directory.membersOfGroups([classId]).has(subscriber.id), 'member of 1年/2組')
  t.ok(appliance.directory.isMember(subscriber.id, 'matsuyama'), 'member of the city')
  t.same(householdOf(appliance.store, subscriber.id)?.children,
    [{ date: '2017-05-10', kind: 'birth' }, { date: due, kind: 'due' }], 'the household holds both children')

  const events = consentEvents(appliance)
  t.equal(events.length, 2, 'one consent event per organisation')
  const school = events.find((e) => e.organisationId === 'higashi-es')
  t.match(school, { kind: 'sign-up', channel: 'mail', textVersion: 'signup-2025-1', groups: [classId] })
  t.match(school?.at, /^\d{4}-\d\d-\d\dT/)

  await appliance.outbox.idle()
  const welcome = (await mailsTo(simulators, PHONE))[1]
  t.equal(welcome?.subject, '登録が完了しました')
  t.match(welcome?.text, ENTRY, 'the welcome says how to change')
  t.match(welcome?.text, '配信停止', 'and how to stop')
  t.match(welcome?.text, '後方一致', 'and how to allow our mail on SoftBank')

  const broadcast = appliance.submit({
    organisationId: 'higashi-es', subject: '【東小】不審者情報', body: '下校時に不審者が目撃されました。',
    priority: 'emergency', targets: { groups: [classId] }, createdBy: 'test'
  })
  const report = await appliance.finished(broadcast.id)
  t.equal(report.counts.accepted, 1)
  const alert = (await mailsTo(simulators, PHONE))[2]
  t.equal(alert?.subject, '【東小】不審者情報', 'the broadcast reached the phone at the SoftBank simulator')
})

t.test('mail that must not be answered gets no link: null sender, auto-submitted, our own domain', async (t) => {
  const h = await startSignup(t)
  const { appliance, simulators } = h
  const cases: Array<{ name: string, envelope: string, from: string, extra?: string[] }> = [
    { name: 'null sender', envelope: '', from: 'mailer@docomo.ne.jp' },
    { name: 'Auto-Submitted', envelope: 'a1@docomo.ne.jp', from: 'a1@docomo.ne.jp', extra: ['Auto-Submitted: auto-replied'] },
    { name: 'Precedence bulk', envelope: 'a2@docomo.ne.jp', from: 'a2@docomo.ne.jp', extra: ['Precedence: bulk'] },
    { name: 'our own From', envelope: 'a3@docomo.ne.jp', from: 'alert@mimamori.example.jp' },
    { name: 'our own envelope', envelope: 'bounce+x@mimamori.example.jp', from: 'a4@docomo.ne.jp' },
    { name: 'a mailer daemon', envelope: 'MAILER-DAEMON@docomo.ne.jp', from: 'MAILER-DAEMON@docomo.ne.jp' }
  ]
  for (const c of cases) {
    const sent = await sendMessage(t, h.port, { from: c.envelope, to: [ENTRY], data: entryMail(c.from, { extra: c.extra ?? [] }) })
    t.match(sent.data, /^250/, `${c.name}: accepted`)
  }
  await appliance.inbound.idle()
  await appliance.outbox.idle()
  const all = Object.values(simulators).flatMap((s) => s.received)
  t.equal(all.length, 0, 'nothing was sent to anybody')
  t.equal([...appliance.store.signups.getRange()].length, 0, 'no link was made')

  // The same mail from a person's phone is answered: the cases above failed for their reason.
  const sent = await sendMessage(t, h.port, { from: 'a5@docomo.ne.jp', to: [ENTRY], data: entryMail('a5@docomo.ne.jp') })
  t.match(sent.data, /^250/)
  await appliance.inbound.idle()
  await appliance.outbox.idle()
  t.equal((await mailsTo(simulators, 'a5@docomo.ne.jp')).length, 1, 'a person gets a link')
})

t.test('a legacy quoted carrier address signs up through SMTP, and its link goes back to it quoted', async (t) => {
  const h = await startSignup(t)
  const { appliance, app, simulators } = h
  const legacy = '"taro..yamada."@docomo.ne.jp'
  const sent = await sendMessage(t, h.port, {
    from: legacy, to: ['"entry+higashi-es"@mimamori.example.jp'], data: entryMail(legacy)
  })
  t.match(sent.mailFrom, /^250/, 'MAIL FROM takes the quoted legacy address')
  t.match(sent.rcptTo[0], /^250/, 'RCPT TO takes our address with its local part quoted')
  t.match(sent.data, /^250/)
  await appliance.inbound.idle()
  await appliance.outbox.idle()

  const out = simulators.docomo?.received ?? []
  t.same(out.map((m) => m.rcptTo), [[legacy]], 'the link went out over the docomo route, to the quoted address')
  const [linkMail] = await mailsTo(simulators, legacy)
  const path = linkPath(linkMail as NonNullable<typeof linkMail>)
  const page = await app.inject({ method: 'GET', url: path })
  t.equal(page.statusCode, 200)
  t.match(page.body, 'ta***@docomo.ne.jp', 'the page names the address, masked')
  t.match(page.body, '松山市立東小学校', 'the code in the address chose the school')

  const done = await postForm(app, path, [['org', 'higashi-es'], ['language', 'ja'], ['consentVersion', shownVersion(page.body)]])
  t.equal(done.statusCode, 200, done.body.slice(0, 300))
  const subscriber = appliance.directory.findSubscriber(parseAddress('taro..yamada.@docomo.ne.jp'))
  t.equal(subscriber?.status, 'active', 'the legacy address is a subscriber')
  t.equal(appliance.directory.contact(subscriber as NonNullable<typeof subscriber>).a, legacy, 'kept in its quoted SMTP form')
})
