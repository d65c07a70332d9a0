import t from 'tap'
import pino from 'pino'
import { Appliance } from '../../../appliance/appliance.js'
import type { InboxRow, InboundMail } from '../../../appliance/inbound/inbox.js'
import { startSimulators, testConfig, waitFor } from '../../helpers.js'
import { deliver, subscribe } from '../../delivered-broadcast.js'
import { plainMail, sendMessage } from '../../smtp-session.js'
import { createSampleCity } from '../../../ops/sample-city.js'

const DOMAIN = 'mimamori.example.jp'
const PARENT = 'mama.tanaka@docomo.ne.jp'

function optOutEvents (appliance: Appliance): unknown[] {
  return [...appliance.store.consent.getRange()].map((e) => e.value)
    .filter((v) => (v as { kind: string }).kind === 'opt-out')
}

t.test('a mail answered 250 but not handled before a crash is handled once at the next open', async (t) => {
  const simulators = await startSimulators(t)
  const config = testConfig(t.testdir(), simulators)
  const open = (): Appliance => Appliance.open(config, { log: pino({ level: 'silent' }) })

  // First run: the reply is accepted, and the handler never gets to finish — as in a crash.
  const first = open()
  const city = createSampleCity(first.directory)
  const school = city.schools[0] as string
  const subscriberId = subscribe(first, school, PARENT)
  const sent = await deliver(first, simulators, school)
  const mine = sent.byAddress.get(PARENT)
  t.ok(mine?.replyTo.startsWith('reply+'), 'the message offers a reply address')
  const started: InboundMail[] = []
  first.inbound.on('reply', async (mail) => { started.push(mail); await new Promise(() => {}) })
  const port = await first.listenInbound()
  const reply = plainMail({
    From: PARENT, To: mine?.replyTo ?? '', Subject: `Re: ${mine?.subject ?? ''}`, 'Message-ID': '<r1@docomo.ne.jp>'
  }, '配信停止')
  const answer = await sendMessage(t, port, { from: PARENT, to: [mine?.replyTo ?? ''], data: reply })
  t.match(answer.data, /^250 /, 'the reply was accepted')
  const kept = [...first.store.inbox.getRange()].map((e) => e.value as InboxRow)
  t.equal(kept.length, 1, 'it is in the inbox, on disk, before any handling')
  t.equal(kept[0]?.state, 'new')
  await waitFor(() => started.length === 1)
  t.equal(optOutEvents(first).length, 0, 'nothing was done before the crash')
  await first.close()

  // Second run: the real reply handler takes the mail up by itself.
  const second = open()
  await second.inbound.idle()
  await second.outbox.idle()
  t.same(second.directory.subscriber(subscriberId)?.left, [school], 'opted out of the school')
  t.equal(optOutEvents(second).length, 1, 'one consent event')
  t.equal(second.store.inbox.getKeysCount(), 0, 'the row is removed once handled')
  const confirmations = (): number => (simulators.docomo?.received ?? [])
    .filter((m) => m.raw?.includes('In-Reply-To: <r1@docomo.ne.jp>') === true).length
  t.equal(confirmations(), 1, 'one confirmation mail')

  // A crash after the handler but before the row was removed: the mail comes round again.
  await second.store.inbox.put(kept[0]?.id as number, kept[0])
  await second.close()
  const third = open()
  t.teardown(async () => { await third.close() })
  await third.inbound.idle()
  await third.outbox.idle()
  t.equal(third.store.inbox.getKeysCount(), 0)
  t.equal(optOutEvents(third).length, 1, 'handled again, it changes nothing')
  t.equal(confirmations(), 1, 'and sends nothing again')
})

t.test('a handler that throws keeps the mail for inspection and is not tried again', async (t) => {
  const simulators = await startSimulators(t)
  const config = testConfig(t.testdir(), simulators)
  const first = Appliance.open(config, { log: pino({ level: 'silent' }) })
  let calls = 0
  first.inbound.on('postmaster', async () => { calls++; throw new Error('handler bug') })
  const raw = Buffer.from(plainMail({ From: 'someone@example.net', Subject: 'hello' }, 'hi'))
  await first.inbound.receive(raw, { from: 'someone@example.net', to: [`postmaster@${DOMAIN}`] })
  await first.inbound.idle()
  t.equal(calls, 1)
  const failed = first.inbound.failed()
  t.equal(failed.length, 1)
  t.match(failed[0], { state: 'failed', error: 'handler bug', kind: 'postmaster' })
  t.ok(Buffer.from(failed[0]?.raw ?? []).equals(raw), 'the mail is kept whole')
  await first.close()

  const second = Appliance.open(config, { log: pino({ level: 'silent' }) })
  t.teardown(async () => { await second.close() })
  let later = 0
  second.inbound.on('postmaster', async () => { later++ })
  await second.inbound.receive(raw, { from: 'someone@example.net', to: [`abuse@${DOMAIN}`] })
  await second.inbound.idle()
  t.equal(later, 1, 'only the new mail reached the handler')
  t.equal(second.inbound.failed().length, 1, 'the failed one is still kept')
})
