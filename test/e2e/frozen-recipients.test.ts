// A broadcast's recipients are fixed when it is submitted: a member who joins the group later is
// not added to it, while an opt-out takes effect at once, also in the broadcast already running.

import t from 'tap'
import { startAppliance } from '../helpers.js'
import { addMember, ledgerRows } from '../control-plane/harness.js'
import type { Appliance } from '../../appliance/appliance.js'
import { parseAddress } from '../../appliance/address.js'
import { makeToken } from '../../appliance/recipient-token.js'
import { optOut, recipientOf } from '../../appliance/recipient-actions.js'

type Row = Awaited<ReturnType<typeof ledgerRows>>[number]

const SCHOOL = 'higashi-es'
const CLASS = '1年/2組'
// One recipient a batch, one batch at a time: the broadcast is paused with most rows untouched.
const ONE_BY_ONE = { delivery: { workers: 1, batchSize: 1, tasksPerRoute: 1, retryBaseSeconds: 0.05 } }

function sendToClass (appliance: Appliance, groupId: string): number {
  const broadcast = appliance.submit({
    organisationId: SCHOOL, subject: '遠足の持ち物', body: '水筒を忘れずに。', priority: 'normal',
    targets: { groups: [groupId] }, createdBy: 'test'
  })
  // Paused at once: the broadcast runs, but only the batch already started goes out.
  appliance.pause(broadcast.id)
  return broadcast.id
}

function addressOf (appliance: Appliance, subscriberId: number): string {
  const subscriber = appliance.directory.subscriber(subscriberId)
  if (subscriber === undefined) throw new Error(`no subscriber ${subscriberId}`)
  return appliance.directory.contact(subscriber).a
}

t.test('a member added to the group after submission is not a recipient of the broadcast', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { config: ONE_BY_ONE })
  const groupId = city.groups[SCHOOL]?.[CLASS] as string
  for (const a of ['mama.a@docomo.ne.jp', 'papa.b@au.com', 'mama.c@softbank.ne.jp']) {
    addMember(appliance, a, SCHOOL, { group: CLASS })
  }
  const id = sendToClass(appliance, groupId)
  const late = addMember(appliance, 'late.parent@docomo.ne.jp', SCHOOL, { group: CLASS })
  t.equal(appliance.book.count({ organisationId: SCHOOL, targets: { groups: [groupId] } }).recipients, 4,
    'the group has the new member now')

  appliance.resume(id)
  const report = await appliance.finished(id)
  t.equal(report.total, 3, 'the broadcast kept the three recipients it was submitted with')
  t.equal(report.counts.accepted, 3)
  t.notOk((await ledgerRows(appliance, id)).some((r) => r.row.s === late), 'no ledger row for the late member')
  t.equal(simulators.docomo?.acceptedCount('late.parent@docomo.ne.jp'), 0, 'the late member got nothing')

  const next = appliance.submit({
    organisationId: SCHOOL, subject: '次の連絡', body: '本文', priority: 'normal', targets: { groups: [groupId] }, createdBy: 'test'
  })
  t.equal(next.total, 4, 'the next broadcast to the group reaches the late member')
  await appliance.finished(next.id)
})

t.test('recipients who opt out or are suppressed after submission are not mailed by the running broadcast', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, { config: ONE_BY_ONE })
  const groupId = city.groups[SCHOOL]?.[CLASS] as string
  for (let n = 0; n < 12; n++) addMember(appliance, `parent${n}@docomo.ne.jp`, SCHOOL, { group: CLASS })
  const id = sendToClass(appliance, groupId)

  // Rows still queued after the pause have not been looked at by the dispatcher yet.
  const queued = (await ledgerRows(appliance, id)).filter((r) => r.row.st === 'queued')
  t.ok(queued.length >= 3, `${queued.length} recipients not yet sent`)
  const [leaving, leavingAll, bounced] = queued.slice(-3) as [Row, Row, Row]
  const context = recipientOf(appliance, makeToken(appliance.vault, { broadcastId: id, seq: leaving.seq }))
  if (context === undefined) throw new Error('the token names no recipient')
  optOut(appliance, context, 'web')
  appliance.directory.unsubscribeAll(leavingAll.row.s)
  appliance.directory.suppress(parseAddress(addressOf(appliance, bounced.row.s)), 'user-unknown (dsn)')

  appliance.resume(id)
  const report = await appliance.finished(id)
  t.equal(report.total, 12)
  t.equal(report.counts.accepted, 9)
  t.equal(report.counts.suppressed, 3)
  const rows = new Map((await ledgerRows(appliance, id)).map((r) => [r.seq, r.row]))
  t.match(rows.get(leaving.seq), { st: 'suppressed', m: 'unsubscribed' }, 'the opt-out from the school')
  t.match(rows.get(leavingAll.seq), { st: 'suppressed', m: 'unsubscribed' }, 'the opt-out from all mail')
  t.match(rows.get(bounced.seq), { st: 'suppressed', m: 'suppressed' }, 'the address suppressed meanwhile')
  for (const r of [leaving, leavingAll, bounced]) {
    t.equal(simulators.docomo?.acceptedCount(addressOf(appliance, r.row.s)), 0, 'the gateway never got it')
  }
  t.equal(simulators.docomo?.stats().acceptedRecipients, 9)
})
