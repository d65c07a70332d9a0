import t from 'tap'
import { startAppliance, waitFor } from '../helpers.js'
import { subscribe } from '../delivered-broadcast.js'
import { JmaFeedServer } from '../appliance/feeds/jma-feed-server.js'
import { capFixture, capLinkFeed, type LinkedEntry } from '../appliance/feeds/cap-link-feed.js'
import type { AlertDraft } from '../../appliance/feeds/hazard-desk.js'
import { metricsText } from '../../control-plane/health-routes.js'

const RULE = {
  id: 'fire', name: '林野火災（松山市）', kind: 'other', minLevel: 'Severe', areas: ['382019'],
  organisation: 'matsuyama', targets: {}, priority: 'emergency', action: 'alert',
  mode: 'auto', holdMinutes: 0, enabled: true
}

t.test('a Japanese CAP alert from a feed is sent to the rule\'s targets, and its cancellation sends the 【取消】 notice', async (t) => {
  const server = await JmaFeedServer.start(t)
  const entries: LinkedEntry[] = [
    ['urn:mfd:0042', new Date().toISOString(), `${server.base}/alerts/0042.cap`]
  ]
  server.routes.set('/cap/feed.atom', () => capLinkFeed(entries))
  server.routes.set('/alerts/0042.cap', () => capFixture('matsuyama-ja.cap'))
  server.routes.set('/alerts/0043.cap', () => capFixture('matsuyama-ja-cancel.cap'))
  const feed = `${server.base}/cap/feed.atom`
  const { appliance } = await startAppliance(t, {
    config: {
      feeds: {
        cap: { feeds: [{ url: feed, everySeconds: 1 }] },
        areas: { cap: ['382019'] },
        rules: [RULE]
      }
    }
  })
  subscribe(appliance, 'higashi-es', 'mama@docomo.ne.jp')
  subscribe(appliance, 'nishi-es', 'papa@au.com')
  const drafts = (): AlertDraft[] => appliance.hazards.drafts().filter((d) => d.ruleId === 'fire')

  // held for no time: sent as soon as it is taken in, so the cancellation finds it sent
  await waitFor(() => drafts()[0]?.state === 'sent')
  const alert = drafts()[0] as AlertDraft
  t.match(alert, { subject: /林野火災/, body: /東部地区の住民は直ちに避難してください/ })
  t.match(alert.areas, [{ code: '382019', name: '松山市' }], 'the Japanese info is read')
  t.equal((await appliance.finished(alert.broadcastId as number)).total, 2, 'both schools\' parents')

  entries.unshift(['urn:mfd:0043', new Date().toISOString(), `${server.base}/alerts/0043.cap`])
  await waitFor(() => drafts().some((d) => d.noticeOf === alert.id && d.state === 'sent'))
  const notice = drafts().find((d) => d.noticeOf === alert.id) as AlertDraft
  t.equal(notice.subject, `【取消】${alert.subject}`)
  t.equal((await appliance.finished(notice.broadcastId as number)).total, 2)

  t.same(server.requests.filter((r) => r.path.startsWith('/alerts/')).map((r) => r.path),
    ['/alerts/0042.cap', '/alerts/0043.cap'], 'each alert fetched once')
  t.match(appliance.capFeeds.status(), [{ url: feed, failures: 0, entriesSeen: 2 }])
  t.match(metricsText(appliance), `mimamori_feed_failures{feed="${feed}"} 0`)
})

t.test('an unsafe CAP feed and one answering 500 show on /metrics until they are fixed', async (t) => {
  const server = await JmaFeedServer.start(t)
  let fixed = false
  const good = capFixture('weather.atom')
  server.routes.set('/cap/xee.atom', () => fixed ? good : capFixture('xee.atom'))
  server.routes.set('/cap/down.atom', () => fixed ? good : { status: 500 })
  const urls = [`${server.base}/cap/xee.atom`, `${server.base}/cap/down.atom`]
  const { appliance } = await startAppliance(t, {
    config: { feeds: { cap: { feeds: urls.map((url) => ({ url, everySeconds: 60 })) } } }
  })

  await waitFor(() => appliance.capFeeds.status().every((f) => f.failures >= 1))
  const failing = metricsText(appliance)
  for (const url of urls) t.match(failing, new RegExp(`mimamori_feed_failures\\{feed="${url}"\\} [1-9]`))
  t.match(appliance.capFeeds.status(), [{ lastError: /DTD|entit/i }, { lastError: 'HTTP 500' }])
  const retry = Date.parse(appliance.capFeeds.status()[0]?.nextPollAt ?? '') - Date.now()
  t.ok(retry > 10_000 && retry <= 15_000, `the first retry waits 15 s (${retry} ms)`)

  // fixed, and read again at once rather than after the back-off: the poller restarted
  fixed = true
  await appliance.capFeeds.stop()
  appliance.capFeeds.start()
  await waitFor(() => appliance.capFeeds.status().every((f) => f.failures === 0))
  const recovered = metricsText(appliance)
  for (const url of urls) t.match(recovered, `mimamori_feed_failures{feed="${url}"} 0`)
  t.match(recovered, new RegExp(`mimamori_feed_last_success_seconds\\{feed="${urls[1]}"\\} 1\\d{9}`))
})
