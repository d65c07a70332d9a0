import t, { type Test } from 'tap'
import pino from 'pino'
import { startAppliance, testConfig, waitFor, type Harness } from '../../helpers.js'
import { subscribe } from '../../delivered-broadcast.js'
import { parseAddress } from '../../../appliance/address.js'
import { Appliance } from '../../../appliance/appliance.js'
import type { HazardArea, HazardEvent } from '../../../appliance/feeds/hazard-event.js'
import type { AlertRuleConfig } from '../../../appliance/feeds/feeds-config.js'

const MATSUYAMA = { table: 'jma-weather', code: '3820100', name: '松山市' } as const
const CHUYO = { table: 'jma-seismic', code: '621', name: '愛媛県中予' } as const

let serial = 0
function event (fields: Partial<HazardEvent> & Pick<HazardEvent, 'kind' | 'areas'>): HazardEvent {
  serial++
  return {
    source: 'jma',
    id: `test-${serial}`,
    eventKey: 'event-1',
    status: 'actual',
    infoType: 'issue',
    type: fields.kind === 'earthquake' ? 'VXSE53' : 'VPWW54',
    title: '気象警報・注意報',
    headline: '松山市に大雨特別警報を発表しました。',
    issuedBy: '松山地方気象台',
    reportedAt: '2026-07-01T05:00:00+09:00',
    ...fields
  }
}

function rain (
  label: string, level: number, change: HazardArea['change'] = 'new',
  area: Pick<HazardArea, 'table' | 'code' | 'name'> = MATSUYAMA
): HazardArea {
  return { ...area, label, level, change }
}

function quake (label: string, level: number): HazardArea {
  return { ...CHUYO, label, level, change: 'new' }
}

function rule (fields: Partial<AlertRuleConfig> & Pick<AlertRuleConfig, 'id' | 'kind' | 'minLevel'>): AlertRuleConfig {
  return {
    name: fields.id, organisation: 'matsuyama', targets: {}, priority: 'emergency', mode: 'auto',
    action: 'alert', enabled: true, ...fields
  }
}

async function city (t: Test, rules: AlertRuleConfig[]): Promise<Harness> {
  const harness = await startAppliance(t, { config: { feeds: { rules } } })
  const { appliance } = harness
  subscribe(appliance, 'higashi-es', 'mama@docomo.ne.jp')
  subscribe(appliance, 'nishi-es', 'papa@au.com')
  const staff = appliance.directory.groupByPath('higashi-es', ['教職員'], true)
  const { subscriber } = appliance.directory.upsertSubscriber({
    address: parseAddress('sensei@softbank.ne.jp')
  })
  appliance.directory.addMembership(subscriber.id, 'higashi-es', staff?.id)
  return harness
}

function broadcastsBy (appliance: Appliance): Array<{ id: number, subject: string, createdBy: string, total: number }> {
  return appliance.book.list().filter((b) => b.createdBy.startsWith('alert-draft:'))
}

t.test('a draft rule waits for a person; approving sends it to the rule targets', async (t) => {
  const { appliance } = await city(t, [rule({ id: 'rain', kind: 'weather-warning', minLevel: '特別警報', mode: 'draft' })])
  const result = appliance.hazards.ingest(event({ kind: 'weather-warning', areas: [rain('大雨特別警報', 5)] }))
  t.equal(result.drafts.length, 1)
  const draft = appliance.hazards.draft(result.drafts[0] as number)
  t.equal(draft.state, 'awaiting-approval')
  t.equal(draft.subject, '【気象警報】大雨特別警報（松山市）')
  t.match(draft.body, /松山市に大雨特別警報を発表しました。/)
  t.match(draft.body, /・松山市：大雨特別警報/)
  t.match(draft.body, /発表：松山地方気象台/)
  t.same(broadcastsBy(appliance), [], 'nothing is sent before approval')

  const approved = appliance.hazards.approve(draft.id, 'staff:1')
  t.equal(approved.state, 'sent')
  const report = await appliance.finished(approved.broadcastId as number)
  t.equal(report.counts.accepted, 3, 'every member of the city tree received it')
  t.equal(report.priority, 'emergency')
  t.throws(() => appliance.hazards.approve(draft.id, 'staff:1'), { code: 'MIMAMORI_CONFLICT' }, 'only once')
})

t.test('only the watched areas at or above the level, newly in force, make a draft', async (t) => {
  const { appliance } = await city(t, [rule({ id: 'rain', kind: 'weather-warning', minLevel: '警報', mode: 'draft' })])
  const elsewhere = { table: 'jma-weather', code: '3620100', name: '徳島市' } as const
  const cases: Array<[string, HazardEvent]> = [
    ['another city', event({ kind: 'weather-warning', areas: [rain('大雨警報', 3, 'new', elsewhere)] })],
    ['an advisory only', event({ kind: 'weather-warning', areas: [rain('大雨注意報', 2)] })],
    ['a warning that continues', event({ kind: 'weather-warning', areas: [rain('大雨警報', 3, 'continued')] })],
    ['a warning lifted', event({ kind: 'weather-warning', areas: [rain('大雨警報', 0, 'lifted')] })],
    ['another kind', event({ kind: 'earthquake', areas: [quake('震度6弱', 7)] })],
    ['a test telegram', event({ kind: 'weather-warning', status: 'test', areas: [rain('大雨警報', 3)] })],
    ['a drill without drill mode', event({ kind: 'weather-warning', status: 'drill', areas: [rain('大雨警報', 3)] })]
  ]
  for (const [name, e] of cases) t.same(appliance.hazards.ingest(e).drafts, [], name)
  const prefecture = { table: 'jma-weather', code: '380000', name: '愛媛県' } as const
  t.equal(appliance.hazards.ingest(event({ kind: 'weather-warning', areas: [rain('大雨警報', 3, 'new', prefecture)] }))
    .drafts.length, 1, 'the prefecture code is watched by default too')
})

t.test('an automatic rule holds the alert, then sends it; an earthquake goes at once', async (t) => {
  const { appliance } = await city(t, [
    rule({ id: 'rain', kind: 'weather-warning', minLevel: '警報', holdMinutes: 0.01 }),
    rule({ id: 'quake', kind: 'earthquake', minLevel: '5弱', targets: { groupPaths: ['教職員'] }, organisation: 'higashi-es' })
  ])
  const held = appliance.hazards.ingest(event({ kind: 'weather-warning', areas: [rain('大雨警報', 3)] }))
  t.equal(appliance.hazards.draft(held.drafts[0] as number).state, 'held')
  t.same(broadcastsBy(appliance), [], 'not yet')
  await waitFor(() => appliance.hazards.draft(held.drafts[0] as number).state === 'sent')

  const now = appliance.hazards.ingest(event({ kind: 'earthquake', eventKey: 'eq-1', areas: [quake('震度5弱', 5)] }))
  const sent = appliance.hazards.draft(now.drafts[0] as number)
  t.equal(sent.state, 'sent', 'no hold for earthquakes by default')
  t.equal(sent.subject, '【地震】震度5弱（愛媛県中予）')
  const report = await appliance.finished(sent.broadcastId as number)
  t.equal(report.total, 1, 'only the staff group of the school')
  t.same(appliance.hazards.ingest(event({ kind: 'earthquake', eventKey: 'eq-1', areas: [quake('震度4', 4)] })).drafts, [],
    'a lower level is no new alert')
})

t.test('one alert per incident; a higher level of the same incident alerts again', async (t) => {
  const { appliance } = await city(t, [rule({ id: 'quake', kind: 'earthquake', minLevel: '5弱' })])
  const first = appliance.hazards.ingest(event({ kind: 'earthquake', eventKey: 'VXSE51-1', incidentKey: 'E1', areas: [quake('震度5弱', 5)] }))
  const same = appliance.hazards.ingest(event({ kind: 'earthquake', eventKey: 'VXSE53-1', incidentKey: 'E1', areas: [quake('震度5弱', 5)] }))
  const higher = appliance.hazards.ingest(event({ kind: 'earthquake', eventKey: 'VXSE53-1', incidentKey: 'E1', areas: [quake('震度6弱', 7)] }))
  t.equal(first.drafts.length, 1)
  t.same(same.drafts, [], 'the detailed report of the same quake is no second alert')
  t.equal(higher.drafts.length, 1, 'a higher intensity is')
  const repeat = event({ kind: 'earthquake', eventKey: 'VXSE53-1', incidentKey: 'E2', areas: [quake('震度5弱', 5)] })
  t.equal(appliance.hazards.ingest(repeat).drafts.length, 1)
  t.equal(appliance.hazards.ingest(repeat).duplicate, true, 'the same telegram twice is taken once')
  t.equal(broadcastsBy(appliance).length, 3)
})

t.test('a cancellation withdraws a held alert; after sending it sends a notice', async (t) => {
  const { appliance } = await city(t, [
    rule({ id: 'rain', kind: 'weather-warning', minLevel: '警報', holdMinutes: 10 }),
    rule({ id: 'quake', kind: 'earthquake', minLevel: '5弱' })
  ])
  const held = appliance.hazards.ingest(event({ kind: 'weather-warning', eventKey: 'W1', areas: [rain('大雨警報', 3)] }))
  const cancel = appliance.hazards.ingest(event({ kind: 'weather-warning', eventKey: 'W1', infoType: 'cancel', areas: [] }))
  t.same(cancel.withdrawn, held.drafts)
  t.equal(appliance.hazards.draft(held.drafts[0] as number).reason, 'cancelled by the source')

  const sent = appliance.hazards.ingest(event({ kind: 'earthquake', eventKey: 'Q1', areas: [quake('震度5強', 6)] }))
  const original = appliance.hazards.draft(sent.drafts[0] as number)
  const revoked = appliance.hazards.ingest(event({
    kind: 'earthquake', eventKey: 'Q1', infoType: 'cancel', areas: [], headline: '震源・震度情報を取り消します。'
  }))
  const notice = appliance.hazards.draft(revoked.drafts[0] as number)
  t.equal(notice.state, 'sent')
  t.equal(notice.noticeOf, original.id)
  t.equal(notice.subject, `【取消】${original.subject}`)
  t.match(notice.body, /発表元により取り消されました/)
  const report = await appliance.finished(notice.broadcastId as number)
  t.equal(report.total, 3, 'the notice reaches the same people')
  t.equal(broadcastsBy(appliance).length, 2, 'the withdrawn warning never went')
})

t.test('a correction updates a waiting draft, or withdraws it when it falls below the rule', async (t) => {
  const { appliance } = await city(t, [rule({ id: 'rain', kind: 'weather-warning', minLevel: '特別警報', mode: 'draft' })])
  const made = appliance.hazards.ingest(event({ kind: 'weather-warning', eventKey: 'W2', areas: [rain('大雨特別警報', 5)] }))
  appliance.hazards.ingest(event({
    kind: 'weather-warning', eventKey: 'W2', infoType: 'correction', headline: '訂正：松山市に大雨特別警報。',
    areas: [rain('大雨特別警報', 5)]
  }))
  const draft = appliance.hazards.draft(made.drafts[0] as number)
  t.equal(draft.state, 'awaiting-approval')
  t.match(draft.body, /訂正：松山市に大雨特別警報。/)
  const lower = appliance.hazards.ingest(event({
    kind: 'weather-warning', eventKey: 'W2', infoType: 'correction', areas: [rain('大雨警報', 3)]
  }))
  t.same(lower.withdrawn, made.drafts)
})

t.test('a drill telegram alerts only in drill mode, marked 【訓練】, to the drill targets', async (t) => {
  const { appliance } = await city(t, [rule({
    id: 'quake', kind: 'earthquake', minLevel: '5弱',
    drill: { enabled: true, targets: { organisations: ['higashi-es'] } }
  })])
  const drill = appliance.hazards.ingest(event({ kind: 'earthquake', status: 'drill', areas: [quake('震度6強', 8)] }))
  const draft = appliance.hazards.draft(drill.drafts[0] as number)
  t.equal(draft.drill, true)
  t.match(draft.subject, /^【訓練】【地震】震度6強/)
  t.match(draft.body, /^【訓練】これは訓練です。実際の災害ではありません。/)
  const report = await appliance.finished(draft.broadcastId as number)
  t.equal(report.total, 2, 'the drill targets only: one school')
})

t.test('a held alert survives a restart and goes out once; a lost send is not repeated', async (t) => {
  const rules = [rule({ id: 'rain', kind: 'weather-warning', minLevel: '警報', holdMinutes: 0.03 })]
  const { appliance, simulators, config } = await city(t, rules)
  const held = appliance.hazards.ingest(event({ kind: 'weather-warning', areas: [rain('大雨警報', 3)] }))
  const id = held.drafts[0] as number
  await appliance.close()

  const again = Appliance.open(testConfig(config.dataDir, simulators, { feeds: { rules } }), { log: pino({ level: 'silent' }) })
  t.teardown(async () => { await again.close() })
  await waitFor(() => again.hazards.draft(id).state === 'sent')
  await again.finished(again.hazards.draft(id).broadcastId as number)
  t.equal(broadcastsBy(again).length, 1)

  // a crash between submitting and recording: the draft says sending, the broadcast exists
  again.store.alertDrafts.putSync(id, { ...again.hazards.draft(id), state: 'sending' })
  again.hazards.stop()
  again.hazards.start()
  t.equal(again.hazards.draft(id).state, 'sent', 'matched to its broadcast')
  t.equal(broadcastsBy(again).length, 1, 'not sent again')
})

t.test('a rule whose targets cannot be resolved fails alone; the others still act', async (t) => {
  const { appliance } = await city(t, [
    rule({ id: 'broken', kind: 'earthquake', minLevel: '5弱', organisation: 'higashi-es', targets: { groupPaths: ['9年/9組'] } }),
    rule({ id: 'good', kind: 'earthquake', minLevel: '5弱' })
  ])
  const result = appliance.hazards.ingest(event({ kind: 'earthquake', areas: [quake('震度5弱', 5)] }))
  t.equal(result.drafts.length, 1)
  t.equal(appliance.hazards.draft(result.drafts[0] as number).ruleId, 'good')
})

t.test('a telegram that arrives after its own cancellation makes no alert; a later issue does', async (t) => {
  const { appliance } = await city(t, [rule({ id: 'rain', kind: 'weather-warning', minLevel: '警報', mode: 'draft' })])
  const at = (minute: number): string => `2026-07-01T06:${String(minute).padStart(2, '0')}:00+09:00`
  appliance.hazards.ingest(event({ kind: 'weather-warning', eventKey: 'W9', infoType: 'cancel', areas: [], reportedAt: at(20) }))
  const late = appliance.hazards.ingest(event({ kind: 'weather-warning', eventKey: 'W9', areas: [rain('大雨警報', 3)], reportedAt: at(10) }))
  t.same(late.drafts, [], 'the cancelled telegram, read late from the long feed, is not alerted')
  const again = appliance.hazards.ingest(event({ kind: 'weather-warning', eventKey: 'W9', areas: [rain('大雨警報', 3)], reportedAt: at(30) }))
  t.equal(again.drafts.length, 1, 'a warning issued after the cancellation is')
})
