import t, { type Test } from 'tap'
import nodemailer from 'nodemailer'
import { simpleParser } from 'mailparser'
import { startAppliance } from '../helpers.js'
import { deliver, subscribe } from '../delivered-broadcast.js'
import { plainMail, sendMessage } from '../smtp-session.js'
import { listReplies } from '../../appliance/inbound/reply-handler.js'
import type { Appliance } from '../../appliance/appliance.js'

const DOMAIN = 'mimamori.example.jp'
const MAMA = 'mama.tanaka@docomo.ne.jp'
const PAPA = 'papa.suzuki@au.com'

async function replyWith (t: Test, appliance: Appliance, from: string, to: string, subject: string, text: string,
  headers: Record<string, string> = {}): Promise<void> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: appliance.inboundPort, ignoreTLS: true })
  t.teardown(() => transport.close())
  await transport.sendMail({ from, to, subject, text, headers })
  await appliance.inbound.idle()
  await appliance.outbox.idle()
}

t.test('a 配信停止 reply opts the person out of that organisation at once, with a confirmation', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const mama = subscribe(appliance, school, MAMA)
  subscribe(appliance, school, PAPA)
  const first = await deliver(appliance, simulators, school)
  const mine = first.byAddress.get(MAMA)
  t.match(mine?.replyTo, new RegExp(`^reply\\+[A-Za-z0-9_-]{27}@${DOMAIN.replace(/\./g, '\\.')}$`),
    'the Reply-To carries the recipient token')
  simulators.docomo?.reset()

  await replyWith(t, appliance, MAMA, mine?.replyTo ?? '', `Re: ${mine?.subject ?? ''}`,
    '配信停止\n\n2024/05/07 9:30 松山市立東小学校 のメール:\n> 明日は14時に下校します。')

  t.same(appliance.directory.subscriber(mama)?.left, [school])
  const events = [...appliance.store.consent.getRange()].map((e) => e.value as Record<string, unknown>)
  t.match(events, [{ kind: 'opt-out', channel: 'reply', organisationId: school, broadcastId: first.broadcastId }])

  const confirmation = simulators.docomo?.received[0]
  t.same(confirmation?.rcptTo, [MAMA], 'the confirmation goes to the person who replied')
  const parsed = await simpleParser(confirmation?.raw as Buffer)
  t.equal(parsed.subject, '配信停止を受け付けました')
  t.match(parsed.text, /松山市立東小学校 からのメールの配信を停止しました。/)
  t.match(parsed.text, `entry+${school}@${DOMAIN}`, 'it says how to sign up again')
  t.equal(parsed.from?.value[0]?.name, '松山市立東小学校')
  t.ok(parsed.inReplyTo, 'it answers the reply')

  const next = await deliver(appliance, simulators, school, '【連絡】二通目')
  t.equal(next.total, 1, 'the next broadcast of the school leaves them out')
  t.equal(next.excluded, 1)
  t.notOk(next.byAddress.has(MAMA))
  const cityWide = await deliver(appliance, simulators, city.cityId, '【防災】大雨警報')
  t.ok(cityWide.byAddress.has(MAMA), "the city's own broadcasts still reach them")
  const stored = listReplies(appliance, school)
  t.match(stored, [{ action: 'opt-out', subscriberId: mama, broadcastId: first.broadcastId }])
})

t.test('a 確認 reply confirms reading; other words are kept for the organisation, newest first', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const mama = subscribe(appliance, school, MAMA)
  const papa = subscribe(appliance, school, PAPA)
  const sent = await deliver(appliance, simulators, school)
  const mine = sent.byAddress.get(MAMA)
  const his = sent.byAddress.get(PAPA)

  await replyWith(t, appliance, MAMA, mine?.replyTo ?? '', `Re: ${mine?.subject ?? ''}`, '確認しました')
  const seq = [...appliance.store.ledger.getRange({ start: [sent.broadcastId, 0], end: [sent.broadcastId, Infinity] })]
    .find((e) => (e.value as { s: number }).s === mama)?.key as [number, number]
  t.match(appliance.store.responses.get(seq), { readAt: /^\d{4}-/ }, 'read is recorded for that recipient')

  await replyWith(t, appliance, PAPA, his?.replyTo ?? '', `Re: ${his?.subject ?? ''}`,
    'うちの子は明日欠席します。\n迎えは祖母が行きます。')
  await replyWith(t, appliance, MAMA, mine?.replyTo ?? '', 'Re: 質問', 'ＳＴＯＰではなく、時間を教えてください')

  const stored = listReplies(appliance, school)
  t.equal(stored.length, 3)
  t.match(stored[0], { action: 'none', subscriberId: mama, subject: 'Re: 質問' }, 'newest first')
  t.match(stored[1], {
    action: 'none', subscriberId: papa, broadcastId: sent.broadcastId,
    subject: `Re: ${his?.subject ?? ''}`, text: /うちの子は明日欠席します。\n迎えは祖母が行きます。/
  })
  t.match(stored[2], { action: 'read' })
  t.notOk(JSON.stringify(stored).includes('@'), 'no address in the stored replies')
  t.equal(appliance.directory.subscriber(mama)?.left, undefined, 'nobody was opted out')
  t.equal(simulators.docomo?.received.length, 1, 'and nothing was sent back')
})

t.test('an auto-reply is kept but never acts and is never answered', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const mama = subscribe(appliance, school, MAMA)
  const sent = await deliver(appliance, simulators, school)
  const mine = sent.byAddress.get(MAMA)
  await replyWith(t, appliance, MAMA, mine?.replyTo ?? '', '自動応答: 不在です', '停止', { 'Auto-Submitted': 'auto-replied' })

  t.equal(appliance.directory.subscriber(mama)?.left, undefined, 'not opted out')
  t.match(listReplies(appliance, school), [{ action: 'none', autoSubmitted: true }])
  t.equal(simulators.docomo?.received.length, 1, 'no answer was sent')
})

t.test("a mail client's List-Unsubscribe mailto opts out", async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const papa = subscribe(appliance, school, PAPA)
  await deliver(appliance, simulators, school)
  const raw = simulators.au?.received[0]?.raw?.toString('latin1').replace(/\r\n[ \t]+/g, ' ') ?? ''
  const mailto = /<mailto:([^?>]+)\?subject=([^>]+)>/.exec(raw)
  t.ok(mailto, 'the List-Unsubscribe header offers a mailto URI')
  await replyWith(t, appliance, PAPA, mailto?.[1] ?? '', mailto?.[2] ?? '', 'This message was automatically generated by Gmail.')
  t.same(appliance.directory.subscriber(papa)?.left, [school])
})

t.test('a reply to a token of no recipient is dropped without effect', async (t) => {
  const { appliance } = await startAppliance(t, { inbound: true })
  // A well-signed token naming a row that does not exist (as after data was restored).
  const { makeToken } = await import('../../appliance/recipient-token.js')
  const token = makeToken(appliance.vault, { broadcastId: 999, seq: 3 })
  const sent = await sendMessage(t, appliance.inboundPort as number, {
    from: MAMA, to: [`reply+${token}@${DOMAIN}`], data: plainMail({ From: MAMA, Subject: 'Re: x' }, '停止')
  })
  t.match(sent.data, /^250 /)
  await appliance.inbound.idle()
  t.equal(appliance.store.inbox.getKeysCount(), 0, 'handled: dropped with a log line')
  t.equal(appliance.store.replies.getKeysCount(), 0)
  t.equal(appliance.store.consent.getKeysCount(), 0)
})
