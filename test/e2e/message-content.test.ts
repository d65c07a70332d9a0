import t from 'tap'
import { simpleParser } from 'mailparser'
import { startAppliance } from '../helpers.js'
import { parseAddress } from '../../appliance/address.js'
import { readToken } from '../../appliance/recipient-token.js'
import type { LedgerRow } from '../../appliance/ledger.js'

const SUBJECT = ('【緊急】大雨特別警報が発表されました。松山市内の全小中学校は本日臨時休校とします。①②③ ㈱ 🚨 ' +
  '保護者の皆様は児童生徒の安全確保にご協力ください。避難所の開設状況は市のホームページでご確認ください。').repeat(2).slice(0, 200)

t.test('each recipient gets a personal message with its own links and headers', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t)
  const school = city.schools[0] as string
  const ids: number[] = []
  for (const a of ['mama.tanaka@docomo.ne.jp', 'papa.suzuki@docomo.ne.jp']) {
    const { subscriber } = appliance.directory.upsertSubscriber({ address: parseAddress(a) })
    appliance.directory.addMembership(subscriber.id, school)
    ids.push(subscriber.id)
  }
  const body = '本日12時に下校します。\n迎えが必要な場合は学校までご連絡ください。'
  const b = appliance.submit({ organisationId: school, subject: SUBJECT, body, priority: 'emergency', targets: {}, createdBy: 'test' })
  await appliance.finished(b.id)

  const received = simulators.docomo?.received ?? []
  t.equal(received.length, 2)
  const tokens = new Set<string>()
  for (const message of received) {
    const raw = message.raw as Buffer
    const parsed = await simpleParser(raw)
    const to = message.rcptTo[0] as string
    t.equal(parsed.subject, SUBJECT, 'a 200-character Japanese subject decodes back exactly')
    t.equal(parsed.to && 'text' in parsed.to ? parsed.to.text : '', to, 'To is the recipient alone')
    t.ok((parsed.text ?? '').includes(body), 'the body decodes back exactly')

    const bounceToken = /^bounce\+([A-Za-z0-9_-]+)@mimamori\.example\.jp$/.exec(message.mailFrom)?.[1] as string
    t.ok(bounceToken, 'the return path carries a per-recipient token (VERP)')
    const bounceRef = readToken(appliance.vault, bounceToken, 'bounce')
    t.equal(bounceRef?.broadcastId, b.id)
    const token = /^reply\+([A-Za-z0-9_-]+)@/.exec(parsed.replyTo?.value[0]?.address ?? '')?.[1] as string
    tokens.add(token)
    const ref = readToken(appliance.vault, token)
    t.same(ref, bounceRef, 'both tokens name the same ledger row')
    t.equal(readToken(appliance.vault, bounceToken), undefined, 'the return-path token opens no page or reply')
    t.equal(readToken(appliance.vault, token, 'bounce'), undefined, 'the reader\'s token opens no return path')
    t.equal(ref?.broadcastId, b.id)
    const row = appliance.store.ledger.get([b.id, ref?.seq ?? -1]) as LedgerRow
    t.equal(appliance.directory.contact(appliance.directory.subscriber(row.s)!).a, to, 'the token names this recipient')

    const text = raw.toString('latin1').replace(/\r\n[ \t]+/g, ' ')
    t.equal(text.match(/^List-Unsubscribe:/gim)?.length, 1, 'one List-Unsubscribe header')
    t.equal(text.match(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/gim)?.length, 1, 'RFC 8058 header')
    t.ok(text.includes(`List-Unsubscribe: <https://mimamori.example.jp/u/${token}>, ` +
      `<mailto:reply+${token}@mimamori.example.jp?subject=unsubscribe>\r\n`),
      'the one-click URL and a mailto to the reply address in the one header')
    t.equal(parsed.replyTo?.value[0]?.address, `reply+${token}@mimamori.example.jp`,
      'replies come back to the appliance with the recipient token')
    t.ok((parsed.text ?? '').includes('「配信停止」と書いて返信'), 'the footer offers stopping by reply')
    t.match(parsed.messageId, /@mimamori\.example\.jp>$/)
    t.ok((parsed.text ?? '').includes(`https://mimamori.example.jp/r/${token}`), 'a read-confirmation link')
    t.ok((parsed.text ?? '').includes(`https://mimamori.example.jp/u/${token}`), 'an unsubscribe link')
    t.ok((parsed.text ?? '').includes('松山市立東小学校') && (parsed.text ?? '').includes('愛媛県松山市東町1-1'),
      'the sender is identified by name and address')
    for (const line of raw.toString('latin1').split('\r\n')) {
      if (Buffer.byteLength(line, 'latin1') > 998) t.fail('a line is longer than 998 octets')
    }
  }
  t.equal(tokens.size, 2, 'every recipient has a different token')
})

t.test('CR or LF in a field that reaches a header is refused', async (t) => {
  const { appliance, city } = await startAppliance(t)
  t.throws(() => appliance.submit({
    organisationId: city.cityId, subject: '件名\r\nBcc: everyone@example.jp', body: 'x', priority: 'normal', targets: {}, createdBy: 't'
  }), { code: 'MIMAMORI_HEADER_INJECTION' })
  t.throws(() => appliance.submit({
    organisationId: city.cityId, subject: '件名\nX-Evil: 1', body: 'x', priority: 'normal', targets: {}, createdBy: 't'
  }), { code: 'MIMAMORI_HEADER_INJECTION' })
  t.throws(() => appliance.directory.createOrganisation({
    id: 'evil', name: '学校\r\nBcc: x@y.jp', kind: 'school', postalAddress: '松山市', parentId: city.cityId
  }), { code: 'MIMAMORI_HEADER_INJECTION' })
  t.throws(() => parseAddress('a@docomo.ne.jp\r\nRCPT TO:<b@c.jp>'), { code: 'MIMAMORI_BAD_ADDRESS' })
  t.equal(appliance.book.list().length, 0, 'nothing was submitted')
})
