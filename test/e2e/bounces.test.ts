import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { startAppliance } from '../helpers.js'
import { deliver, subscribe } from '../delivered-broadcast.js'
import { sendMessage } from '../smtp-session.js'
import type { Appliance } from '../../appliance/appliance.js'
import type { LedgerRow } from '../../appliance/ledger.js'
import { parseAddress, lookupKey } from '../../appliance/address.js'
import { handleBounce, pickRecipient } from '../../appliance/inbound/bounce-handler.js'
import { decodeMail } from '../../appliance/inbound/mail-decoding.js'
import type { InboundMail } from '../../appliance/inbound/inbox.js'

// Real DSNs (test/fixtures/bounces/MANIFEST.md); each names the recipient address used below.
const fixture = (name: string): Buffer => {
  const text = readFileSync(new URL(`../fixtures/bounces/bsd/${name}`, import.meta.url), 'latin1')
  return Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'latin1')
}
const DEAD = 'otsu-sakaba-hunter-neko-nyaaaaaaan@au.com' // rhost-kddi-02: 5.1.1 user unknown
const FULL = 'kijitora@ezweb.ne.jp' // lhost-kddi-01: mailbox full
const FILTERED = 'this-message-rejected-by-the-domain-filter@ezweb.ne.jp' // lhost-ezweb-01

/** Sends a DSN as a reporting MTA would: null sender, to the message's return path. */
async function bounce (t: Test, appliance: Appliance, returnPath: string, raw: Buffer): Promise<void> {
  const sent = await sendMessage(t, appliance.inboundPort as number, { from: '', to: [returnPath], data: raw })
  t.match(sent.data, /^250 /, 'the DSN is accepted')
  await appliance.inbound.idle()
}

function rowOf (appliance: Appliance, broadcastId: number, subscriberId: number): LedgerRow | undefined {
  for (const { value } of appliance.store.ledger.getRange({ start: [broadcastId, 0], end: [broadcastId, Infinity] })) {
    if ((value as LedgerRow).s === subscriberId) return value as LedgerRow
  }
  return undefined
}

/** A Postfix-style DSN with one delivery-status block per [address, status, server reply]. */
function dsn (blocks: Array<[string, string, string]>): Buffer {
  const fields = blocks.map(([address, status, said]) => [
    `Final-Recipient: rfc822; ${address}`, 'Action: failed', `Status: ${status}`,
    'Remote-MTA: dns; mx.example.net', `Diagnostic-Code: smtp; ${said}`, ''
  ].join('\r\n'))
  return Buffer.from([
    'From: MAILER-DAEMON@mx.example.net (Mail Delivery System)', 'To: bounce@mimamori.example.jp',
    'Subject: Undelivered Mail Returned to Sender', 'Auto-Submitted: auto-replied', 'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="DSN"', '',
    '--DSN', 'Content-Type: text/plain; charset=us-ascii', '',
    'This is the mail system at host mx.example.net.', '',
    "I'm sorry to have to inform you that your message could not be delivered.", '',
    '--DSN', 'Content-Type: message/delivery-status', '',
    'Reporting-MTA: dns; mx.example.net', '', ...fields, '--DSN--', ''
  ].join('\r\n'))
}

const suppressed = (appliance: Appliance, address: string): boolean =>
  appliance.directory.isSuppressed(appliance.vault.index(lookupKey(parseAddress(address))))

t.test('a user-unknown DSN marks the ledger row and suppresses the address for the next broadcast', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const dead = subscribe(appliance, school, DEAD)
  subscribe(appliance, school, 'alive@docomo.ne.jp')
  const first = await deliver(appliance, simulators, school)
  const returnPath = first.byAddress.get(DEAD)?.returnPath ?? ''
  t.match(returnPath, /^bounce\+[A-Za-z0-9_-]{27}@mimamori\.example\.jp$/)

  await bounce(t, appliance, returnPath, fixture('rhost-kddi-02.eml'))
  const row = rowOf(appliance, first.broadcastId, dead)
  t.equal(row?.st, 'accepted', 'the final state stays: the gateway did accept the message')
  t.match(row?.b, { v: 'hard', r: 'user-unknown' })
  t.ok(suppressed(appliance, DEAD))

  const next = await deliver(appliance, simulators, school, '二通目')
  t.equal(next.total, 1)
  t.equal(next.excluded, 1, 'the dead address is left out')
})

t.test('a bounce forged from what a reader of the message sees is refused; the return path differs', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const victim = subscribe(appliance, school, DEAD)
  const sent = await deliver(appliance, simulators, school)
  const mine = sent.byAddress.get(DEAD)
  const seen = /^reply\+([A-Za-z0-9_-]{27})@/.exec(mine?.replyTo ?? '')?.[1] ?? ''
  t.not(seen, mine?.token, 'the Reply-To, links and Message-ID carry another token than the return path')
  t.notMatch(mine?.messageId ?? '', mine?.token ?? '', 'the Message-ID does not carry the return-path token')

  const forged = await sendMessage(t, appliance.inboundPort as number, {
    from: '', to: [`bounce+${seen}@mimamori.example.jp`], data: fixture('rhost-kddi-02.eml')
  })
  t.match(forged.rcptTo[0], /^550 /, 'the recipient token does not open the return path')
  await appliance.inbound.idle()
  t.notOk(suppressed(appliance, DEAD), 'nobody is suppressed')
  t.equal(rowOf(appliance, sent.broadcastId, victim)?.b, undefined)
})

t.test('three soft bounces within 14 days suppress the address; two do not', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const full = subscribe(appliance, school, FULL)
  subscribe(appliance, school, 'alive@docomo.ne.jp')

  for (let n = 1; n <= 3; n++) {
    const sent = await deliver(appliance, simulators, school, `お知らせ${n}`)
    t.equal(sent.total, 2, `broadcast ${n} still reaches them`)
    await bounce(t, appliance, sent.byAddress.get(FULL)?.returnPath ?? '', fixture('lhost-kddi-01.eml'))
    t.match(rowOf(appliance, sent.broadcastId, full)?.b, { v: 'soft', r: 'mailbox-full' })
    t.equal(suppressed(appliance, FULL), n === 3, `after ${n} soft bounce(s)`)
  }
  const after = await deliver(appliance, simulators, school, 'お知らせ4')
  t.equal(after.excluded, 1)
})

t.test('a DSN handled twice (a crash before its inbox row was removed) counts once', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  subscribe(appliance, school, FULL)
  const sent = await deliver(appliance, simulators, school)
  const mine = sent.byAddress.get(FULL)
  const raw = fixture('lhost-kddi-01.eml')
  const mail: InboundMail = {
    id: 4242, kind: 'bounce', tag: mine?.token ?? '', envelopeFrom: '', recipient: mine?.returnPath ?? '',
    raw, mail: await decodeMail(raw), receivedAt: new Date().toISOString()
  }
  await handleBounce(appliance, mail)
  await handleBounce(appliance, mail)
  t.equal(appliance.store.bounces.getKeysCount(), 1, 'one event recorded')
})

t.test("a carrier's domain filter flags the person and never suppresses", async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const filtered = subscribe(appliance, school, FILTERED)
  for (let n = 1; n <= 3; n++) {
    const sent = await deliver(appliance, simulators, school, `お知らせ${n}`)
    await bounce(t, appliance, sent.byAddress.get(FILTERED)?.returnPath ?? '', fixture('lhost-ezweb-01.eml'))
  }
  t.notOk(suppressed(appliance, FILTERED), 'three filter refusals do not suppress')
  t.match(appliance.directory.subscriber(filtered)?.needsDomainAllow, { reason: 'filtered', source: 'dsn', at: /^\d{4}-/ })
  const next = await deliver(appliance, simulators, school, 'お知らせ4')
  t.equal(next.total, 1, 'they stay a recipient')
})

t.test('a feedback complaint opts the person out of the organisation', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const papa = subscribe(appliance, school, 'papa@au.com')
  const sent = await deliver(appliance, simulators, school)
  await bounce(t, appliance, sent.byAddress.get('papa@au.com')?.returnPath ?? '', fixture('arf-01.eml'))
  t.same(appliance.directory.subscriber(papa)?.left, [school])
  const events = [...appliance.store.consent.getRange()].map((e) => e.value)
  t.match(events, [{ kind: 'opt-out', channel: 'complaint', organisationId: school }])
  t.notOk(suppressed(appliance, 'papa@au.com'), 'a complaint is no dead address')
})

t.test('an auto-reply to the return path changes nothing', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const papa = subscribe(appliance, school, 'papa@au.com')
  const sent = await deliver(appliance, simulators, school)
  await bounce(t, appliance, sent.byAddress.get('papa@au.com')?.returnPath ?? '', fixture('rfc3834-01.eml'))
  t.equal(rowOf(appliance, sent.broadcastId, papa)?.b, undefined, 'the ledger row is not marked')
  t.equal(appliance.store.bounces.getKeysCount(), 0)
  t.equal(appliance.directory.subscriber(papa)?.left, undefined)
})

t.test('a DSN naming several recipients is read for ours, whatever the others say', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const mama = subscribe(appliance, school, 'mama@au.com')
  const sent = await deliver(appliance, simulators, school)
  await bounce(t, appliance, sent.byAddress.get('mama@au.com')?.returnPath ?? '', dsn([
    ['gone@example.net', '5.1.1', '550 5.1.1 <gone@example.net>: User unknown'],
    ['Mama@AU.com', '5.2.2', '552 5.2.2 Mailbox full']
  ]))
  t.match(rowOf(appliance, sent.broadcastId, mama)?.b, { v: 'soft', r: 'mailbox-full' }, 'our row gets our verdict')
  t.notOk(suppressed(appliance, 'mama@au.com'), "another's unknown user does not suppress ours")
})

t.test('a DSN that names only another mailbox (a forward) is a soft bounce, never a dead address', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const papa = subscribe(appliance, school, 'papa@docomo.ne.jp')
  const sent = await deliver(appliance, simulators, school)
  await bounce(t, appliance, sent.byAddress.get('papa@docomo.ne.jp')?.returnPath ?? '', dsn([
    ['papa.old@example.net', '5.1.1', '550 5.1.1 <papa.old@example.net>: User unknown']
  ]))
  t.match(rowOf(appliance, sent.broadcastId, papa)?.b, { v: 'soft', r: 'other' })
  t.notOk(suppressed(appliance, 'papa@docomo.ne.jp'), 'the address that was reached stays')
  const next = await deliver(appliance, simulators, school, '二通目')
  t.equal(next.total, 1, 'they stay a recipient')
})

t.test('the entry for our recipient: its own address, else one naming nobody, else another counted soft', async (t) => {
  const ours = '"taro..yamada."@docomo.ne.jp'
  const hardOther = { address: 'x@example.net', verdict: 'hard' as const, reason: 'user-unknown' as const }
  const softOurs = { address: 'Taro..Yamada.@DOCOMO.ne.jp', verdict: 'soft' as const, reason: 'mailbox-full' as const }
  const hardOurs = { address: 'taro..yamada.@docomo.ne.jp', verdict: 'hard' as const, reason: 'user-unknown' as const }
  const unnamed = { verdict: 'soft' as const, reason: 'expired' as const }
  t.equal(pickRecipient(ours, [hardOther, softOurs]), softOurs, 'the legacy address matches unquoted, in any case')
  t.equal(pickRecipient(ours, [softOurs, hardOurs]), hardOurs, 'the worst of ours')
  t.equal(pickRecipient(ours, [hardOther, unnamed]), unnamed, 'an entry naming nobody before another address')
  t.match(pickRecipient(ours, [hardOther]), { verdict: 'soft', reason: 'other', address: 'x@example.net' })
  t.same(pickRecipient(ours, []), { verdict: 'soft', reason: 'other' })
  const moved = { address: 'hanako@au.com', verdict: 'hard' as const, reason: 'user-unknown' as const }
  t.equal(pickRecipient('hanako@ezweb.ne.jp', [moved]), moved, 'au names an ezweb.ne.jp mailbox by its au.com spelling')
  t.match(pickRecipient('hanako@ezweb.ne.jp', [{ ...moved, address: 'taro@au.com' }]), { verdict: 'soft' },
    'another au.com mailbox is still another')
})

t.test('a global (RFC 6533) DSN for an unknown user suppresses the address like a classic one', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { inbound: true })
  const school = city.schools[0] as string
  const address = 'hanako.yamada@mail.example.ne.jp' // written/global-dsn-01.eml, made for this project
  const hanako = subscribe(appliance, school, address)
  const sent = await deliver(appliance, simulators, school)
  const raw = readFileSync(new URL('../fixtures/bounces/written/global-dsn-01.eml', import.meta.url), 'utf8')
  await bounce(t, appliance, sent.byAddress.get(address)?.returnPath ?? '', Buffer.from(raw.replace(/\r?\n/g, '\r\n')))
  t.match(rowOf(appliance, sent.broadcastId, hanako)?.b, { v: 'hard', r: 'user-unknown' })
  t.ok(suppressed(appliance, address))
})
