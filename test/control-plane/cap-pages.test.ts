import t, { type Test } from 'tap'
import type { AlertRuleConfig } from '../../appliance/feeds/feeds-config.js'
import type { HazardEvent } from '../../appliance/feeds/hazard-event.js'
import { readCapAlert } from '../../appliance/feeds/cap-alert.js'
import { all, readXml, textAt } from '../../appliance/feeds/xml-document.js'
import { senderAddress } from '../../appliance/config.js'
import { addMember, startApi, type ApiHarness } from './harness.js'

const RULE: AlertRuleConfig = {
  id: 'suspicious', name: '不審者 <東町> & 周辺', kind: 'other', minLevel: 'Severe',
  organisation: 'higashi-es', targets: {}, priority: 'emergency', mode: 'auto', holdMinutes: 0,
  action: 'alert', enabled: true, drill: { enabled: true, targets: {} }
}
const AREA = {
  table: 'cap', code: '382019', name: '東町 <北> & 南', label: '不審者 "注意"', level: 3, change: 'new'
} as const

function event (id: string, status: HazardEvent['status']): HazardEvent {
  return {
    source: 'cap', id, eventKey: id, kind: 'other', status, infoType: 'issue', type: '不審者 "注意"',
    title: '不審者情報', headline: '東町で不審者が目撃されました。<下校> & 登校に注意。', issuedBy: '松山市消防局',
    reportedAt: '2026-07-01T14:05:00+09:00', areas: [AREA]
  }
}

interface Sent { staff: number, rule: number, drill: number, notice: number, picked: number }

// A staff emergency, an alert rule's alert and its drill, and two broadcasts that are no alert.
async function broadcasts (t: Test): Promise<ApiHarness & Sent> {
  const feeds = { areas: { cap: ['382019'] }, rules: [RULE] }
  const harness = await startApi(t, { config: { feeds } })
  const { appliance } = harness
  const member = addMember(appliance, 'mama@docomo.ne.jp', 'higashi-es')
  type Priority = 'emergency' | 'normal'
  const submit = (subject: string, body: string, priority: Priority, picked = false): number =>
    appliance.submit({
      organisationId: 'higashi-es', subject, body, priority, createdBy: 'staff:1',
      targets: picked ? { subscribers: [member] } : {}
    }).id
  const staff = submit('【緊急】不審者情報 <東町> & "校門"',
    '東町1丁目で不審者が目撃されました。\r\n下校は <必ず> 複数で & 保護者と。\n\n松山市立東小学校', 'emergency')
  const sentBy = (e: HazardEvent): number =>
    appliance.hazards.draft(appliance.hazards.ingest(e).drafts[0] as number).broadcastId as number
  const rule = sentBy(event('city,A1', 'actual'))
  const notice = submit('運動会のお知らせ', '10月5日に運動会を行います。', 'normal')
  const drill = sentBy(event('city,A2', 'drill'))
  const picked = submit('【緊急】お子さまの件', 'お迎えをお願いします。', 'emergency', true)
  for (const id of [staff, rule, notice, drill, picked]) await appliance.finished(id)
  return { ...harness, staff, rule, drill, notice, picked }
}

async function get (harness: ApiHarness, url: string) {
  return await harness.app.inject({ method: 'GET', url })
}

t.test('a staff emergency reads back from its CAP document, its words intact', async (t) => {
  const harness = await broadcasts(t)
  const { appliance, staff } = harness
  const response = await get(harness, `/cap/alerts/${staff}.xml`)
  t.equal(response.statusCode, 200)
  t.equal(response.headers['content-type'], 'application/cap+xml; charset=UTF-8')
  t.match(response.body, /^<\?xml version="1.0" encoding="UTF-8"\?>/)
  t.match(response.body, /&lt;東町&gt; &amp; &quot;校門&quot;/, 'escaped, not dropped')

  const alert = readCapAlert(Buffer.from(response.rawPayload))
  const broadcast = appliance.book.get(staff)
  t.match(alert, {
    id: `${senderAddress(appliance.config)},mimamori.example.jp-${staff}`,
    status: 'actual', infoType: 'issue', type: '緊急連絡',
    title: '【緊急】不審者情報 <東町> & "校門"', issuedBy: '松山市立東小学校'
  })
  t.equal(alert.headline, '東町1丁目で不審者が目撃されました。\n下校は <必ず> 複数で & 保護者と。\n\n松山市立東小学校',
    'line breaks kept in the description, CR LF as LF')
  t.match(alert.reportedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00$/, 'Japan time, with offset')
  t.equal(Date.parse(alert.reportedAt), Math.floor(Date.parse(broadcast.submittedAt) / 1000) * 1000)
  t.same(alert.areas.map((a) => [a.code, a.name]), [['松山市立東小学校', '松山市立東小学校']])

  const root = readXml(response.body)
  t.same(['scope', 'msgType'].map((n) => textAt(root, n)), ['Public', 'Alert'])
  const info = ['language', 'category', 'urgency', 'severity', 'certainty', 'web']
  t.same(info.map((n) => textAt(root, 'info', n)),
    ['ja-JP', 'Safety', 'Immediate', 'Severe', 'Unknown', 'https://mimamori.example.jp'])
  t.notMatch(response.body, /mama@|docomo/, 'no recipient')
})

t.test('an alert rule broadcast carries its areas; its drill is an Exercise', async (t) => {
  const harness = await broadcasts(t)
  const { appliance, rule, drill } = harness
  const response = await get(harness, `/cap/alerts/${rule}.xml`)
  const alert = readCapAlert(response.body)
  const broadcast = appliance.book.get(rule)
  t.match(alert, {
    status: 'actual', type: '不審者 "注意"', title: broadcast.subject, headline: broadcast.body.trim()
  })
  t.equal(broadcast.subject, '【警報】不審者 "注意"（東町 <北> & 南）')
  t.match(alert.headline, /<下校> & 登校に注意。/)
  t.same(alert.areas.map((a) => [a.code, a.name]),
    [['松山市立東小学校', '松山市立東小学校'], ['382019', '東町 <北> & 南']])
  t.equal(textAt(readXml(response.body), 'info', 'certainty'), 'Observed')

  const exercise = readCapAlert((await get(harness, `/cap/alerts/${drill}.xml`)).body)
  t.equal(exercise.status, 'drill')
  t.match(exercise.title, /^【訓練】/)
})

t.test('other broadcasts and unknown ids are not found', async (t) => {
  const harness = await broadcasts(t)
  for (const url of [
    `/cap/alerts/${harness.notice}.xml`, `/cap/alerts/${harness.picked}.xml`,
    '/cap/alerts/9999.xml', '/cap/alerts/0.xml', `/cap/alerts/${harness.staff}.json`,
    '/cap/alerts/abc.xml'
  ]) {
    const response = await get(harness, url)
    t.equal(response.statusCode, 404, url)
    t.notMatch(response.body, /運動会|お迎え/, 'nothing of the broadcast is shown')
  }
})

t.test('the Atom feed lists the CAP broadcasts newest first, linking each document', async (t) => {
  const harness = await broadcasts(t)
  const response = await get(harness, '/cap/alerts.atom')
  t.equal(response.statusCode, 200)
  t.equal(response.headers['content-type'], 'application/atom+xml; charset=UTF-8')
  const feed = readXml(response.body)
  t.equal(feed.name, 'feed')
  t.equal(textAt(feed, 'id'), 'https://mimamori.example.jp/cap/alerts.atom')
  const entries = all(feed, 'entry')
  const urls = [harness.drill, harness.rule, harness.staff]
    .map((id) => `https://mimamori.example.jp/cap/alerts/${id}.xml`)
  t.same(entries.map((e) => textAt(e, 'id')), urls)
  t.same(entries.map((e) => all(e, 'link')[0]?.attributes),
    urls.map((href) => ({ rel: 'alternate', type: 'application/cap+xml', href })))
  t.equal(textAt(entries[2], 'title'), '【緊急】不審者情報 <東町> & "校門"')
  t.equal(textAt(feed, 'updated'), textAt(entries[0], 'updated'), 'as new as its newest alert')
  for (const entry of entries) {
    const href = all(entry, 'link')[0]?.attributes.href ?? ''
    t.equal((await get(harness, new URL(href).pathname)).statusCode, 200, href)
  }
})
