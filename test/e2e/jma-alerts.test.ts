import t from 'tap'
import { startAppliance, waitFor } from '../helpers.js'
import { subscribe } from '../delivered-broadcast.js'
import { JmaFeedServer, fixture } from '../appliance/feeds/jma-feed-server.js'
import type { Appliance } from '../../appliance/appliance.js'
import type { AlertDraft } from '../../appliance/feeds/hazard-desk.js'
import { metricsText } from '../../control-plane/health-routes.js'

const KIKEN = fixture('hand-made/VPWW54_matsuyama_kiken.xml')
const EEW = fixture('official-samples/37_01_01_240613_VXSE43.xml')
const SHIZUOKA = fixture('official-samples/32-35_01_01_100806_VXSE51.xml')

// Derived in the test from the fixtures above: the cancellation of the 危険警報 ten minutes
// later, and the early warning sent again as a drill (訓練) of another earthquake.
const KIKEN_CANCELLED = KIKEN
  .replace('<InfoType>発表</InfoType>', '<InfoType>取消</InfoType>')
  .replace('<ReportDateTime>2026-07-01T06:10:00+09:00</ReportDateTime>', '<ReportDateTime>2026-07-01T06:20:00+09:00</ReportDateTime>')
const EEW_DRILL = EEW
  .replace('<Status>通常</Status>', '<Status>訓練</Status>')
  .replace('<EventID>20240417231454</EventID>', '<EventID>20260701060000</EventID>')

interface Entry { title: string, file: string, author: string }

function atom (base: string, entries: Entry[]): string {
  const now = new Date().toISOString()
  const items = entries.map((e) => `<entry><title>${e.title}</title><id>${base}/data/${e.file}</id>` +
    `<updated>${now}</updated><author><name>${e.author}</name></author>` +
    `<link type="application/xml" href="${base}/data/${e.file}"/><content type="text">${e.title}</content></entry>`)
  return `<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" lang="ja">` +
    `<title>高頻度（随時）</title><updated>${now}</updated><id>urn:test:feed</id>${items.join('')}</feed>`
}

const ENTRIES = {
  kiken: { title: '気象警報・注意報（Ｈ２７）', file: '20260701061000_0_VPWW54_380000.xml', author: '松山地方気象台' },
  kikenCancel: { title: '気象警報・注意報（Ｈ２７）', file: '20260701062000_0_VPWW54_380000.xml', author: '松山地方気象台' },
  eew: { title: '緊急地震速報（警報）', file: '20260701060010_0_VXSE43_010000.xml', author: '気象庁本庁' },
  eewDrill: { title: '緊急地震速報（警報）', file: '20260701060020_0_VXSE43_010000.xml', author: '気象庁本庁' },
  shizuoka: { title: '震度速報', file: '20260701060030_0_VXSE51_010000.xml', author: '気象庁本庁' }
}

function draftsOf (appliance: Appliance, ruleId: string): AlertDraft[] {
  return appliance.hazards.drafts().filter((d) => d.ruleId === ruleId)
}

t.test('JMA telegrams from the feed become the right alerts: held then sent, at once, withdrawn, drilled', async (t) => {
  const server = await JmaFeedServer.start(t)
  const feed: Entry[] = [ENTRIES.kiken, ENTRIES.eew, ENTRIES.shizuoka, ENTRIES.eewDrill]
  server.routes.set('/feed/extra.xml', () => atom(server.base, feed))
  server.routes.set(`/data/${ENTRIES.kiken.file}`, () => KIKEN)
  server.routes.set(`/data/${ENTRIES.kikenCancel.file}`, () => KIKEN_CANCELLED)
  server.routes.set(`/data/${ENTRIES.eew.file}`, () => EEW)
  server.routes.set(`/data/${ENTRIES.eewDrill.file}`, () => EEW_DRILL)
  server.routes.set(`/data/${ENTRIES.shizuoka.file}`, () => SHIZUOKA)

  const base = { organisation: 'matsuyama', targets: {}, priority: 'emergency', action: 'alert', enabled: true }
  const { appliance } = await startAppliance(t, {
    config: {
      feeds: {
        jma: { enabled: true, feeds: [{ url: `${server.base}/feed/extra.xml`, everySeconds: 1 }] },
        maxBackoffSeconds: 15,
        rules: [
          { ...base, id: 'rain-auto', name: '危険警報（松山市）', kind: 'weather-warning', minLevel: '危険警報', mode: 'auto', holdMinutes: 0.02, areas: ['3820100'] },
          { ...base, id: 'rain-draft', name: '危険警報（中予・確認）', kind: 'weather-warning', minLevel: '危険警報', mode: 'draft', areas: ['380010'] },
          {
            ...base, id: 'eew', name: '緊急地震速報（中予）', kind: 'eew', minLevel: '緊急地震速報', mode: 'auto',
            drill: { enabled: true, targets: { organisations: ['higashi-es'] } }
          },
          { ...base, id: 'quake-chuyo', name: '震度5弱以上（中予）', kind: 'earthquake', minLevel: '5弱', mode: 'auto' }
        ]
      }
    }
  })
  subscribe(appliance, 'higashi-es', 'mama@docomo.ne.jp')
  subscribe(appliance, 'nishi-es', 'papa@au.com')

  await waitFor(() => draftsOf(appliance, 'eew').length === 2)
  const eew = draftsOf(appliance, 'eew').find((d) => !d.drill)
  const drill = draftsOf(appliance, 'eew').find((d) => d.drill)
  t.match(eew, { state: 'sent', subject: /^【緊急地震速報】緊急地震速報（警報） 予想震度4（愛媛県中予）$/ },
    'the early warning for 中予 went at once')
  t.match(drill, { state: 'sent', drill: true, subject: /^【訓練】【緊急地震速報】/ })
  t.equal((await appliance.finished(drill?.broadcastId as number)).total, 1, 'the drill reached the drill school only')
  t.equal((await appliance.finished(eew?.broadcastId as number)).total, 2)
  t.same(draftsOf(appliance, 'quake-chuyo'), [], 'the Shizuoka earthquake makes no alert for 中予')

  const waiting = draftsOf(appliance, 'rain-draft')[0]
  t.match(waiting, { state: 'awaiting-approval', subject: '【気象警報】大雨危険警報（中予）' })
  t.match(draftsOf(appliance, 'rain-auto')[0], { state: /held|sending|sent/ })
  await waitFor(() => draftsOf(appliance, 'rain-auto')[0]?.state === 'sent')
  const rain = draftsOf(appliance, 'rain-auto')[0] as AlertDraft
  t.match(rain.history.map((h) => h.state), ['held', 'sending', 'sent'], 'held first, then sent')
  t.match(rain.body, /【レベル４大雨危険警報】中予では/)

  feed.push(ENTRIES.kikenCancel)
  await waitFor(() => appliance.hazards.draft(waiting?.id as number).state === 'withdrawn')
  t.equal(appliance.hazards.draft(waiting?.id as number).reason, 'cancelled by the source',
    'the cancellation withdraws the draft still waiting')
  await waitFor(() => draftsOf(appliance, 'rain-auto').some((d) => d.noticeOf === rain.id && d.state === 'sent'))
  const notice = draftsOf(appliance, 'rain-auto').find((d) => d.noticeOf === rain.id) as AlertDraft
  t.equal(notice.subject, `【取消】${rain.subject}`, 'the alert already sent is followed by a notice')
  t.equal((await appliance.finished(notice.broadcastId as number)).total, 2)

  const telegrams = server.requests.filter((r) => r.path.startsWith('/data/'))
  t.equal(telegrams.length, 5, 'each telegram fetched once')
  t.equal(new Set(telegrams.map((r) => r.path)).size, 5)
  t.match(appliance.feeds.status()[0], { failures: 0, entriesSeen: 5 })
  const metrics = metricsText(appliance)
  t.match(metrics, `mimamori_feed_failures{feed="${server.base}/feed/extra.xml"} 0`)
  t.match(metrics, /mimamori_feed_last_success_seconds\{feed="[^"]+"\} 1\d{9}/, 'the last good read is on /metrics')
  t.match(metrics, 'mimamori_alert_drafts{state="withdrawn"} 1')
  t.match(metrics, 'mimamori_alert_drafts{state="sent"} 4')
})

t.test('a feed that keeps failing shows on /metrics', async (t) => {
  const server = await JmaFeedServer.start(t)
  server.routes.set('/feed/extra.xml', () => ({ status: 503 }))
  const { appliance } = await startAppliance(t, {
    config: { feeds: { jma: { enabled: true, feeds: [{ url: `${server.base}/feed/extra.xml`, everySeconds: 1 }] } } }
  })
  await waitFor(() => (appliance.feeds.status()[0]?.failures ?? 0) >= 1)
  const metrics = metricsText(appliance)
  t.match(metrics, new RegExp(`mimamori_feed_failures\\{feed="${server.base}/feed/extra.xml"\\} [1-9]`))
  t.match(metrics, /mimamori_feed_last_success_seconds\{feed="[^"]+"\} 0\n/, 'never read')
})
