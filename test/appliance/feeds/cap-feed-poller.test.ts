import t, { type Test } from 'tap'
import pino from 'pino'
import { Value } from '@sinclair/typebox/value'
import { openStore, type Store } from '../../../appliance/store/store.js'
import { FeedsConfigSchema } from '../../../appliance/feeds/feeds-config.js'
import {
  CapFeedPoller, type CapFeedPollerOptions
} from '../../../appliance/feeds/cap-feed-poller.js'
import type { EntryRecord } from '../../../appliance/feeds/entry-records.js'
import type { HazardEvent } from '../../../appliance/feeds/hazard-event.js'
import { waitFor } from '../../helpers.js'
import { JmaFeedServer } from './jma-feed-server.js'
import { capFixture, capLinkFeed } from './cap-link-feed.js'

const JA = capFixture('matsuyama-ja.cap')
const JA_CANCEL = capFixture('matsuyama-ja-cancel.cap')
const NWS_ID = 'http://www.weather.gov/alerts-beta/wwacapget.php?x=DC20120829202900LWXAirQualityAlertLWX20120831040000DC'

interface Run { poller: CapFeedPoller, events: HazardEvent[] }

/** short waits: the first retry, a request's timeout; and no entry too old to be read */
const QUICK = { firstRetrySeconds: 0.05, timeoutSeconds: 2, maxEntryAgeHours: Infinity }

function startPoller (
  t: Test, store: Store, feeds: Array<{ url: string, everySeconds: number }>,
  options: Partial<CapFeedPollerOptions> = {}
): Run {
  // maxBackoffSeconds below the schema's 15 s floor, so that the tests do not wait for back-off
  const config = { ...Value.Create(FeedsConfigSchema), cap: { feeds }, maxBackoffSeconds: 0.2 }
  const events: HazardEvent[] = []
  const onAlert = (event: HazardEvent): void => { events.push(event) }
  const log = pino({ level: 'silent' })
  const poller = new CapFeedPoller({ store, config, log, onAlert, ...QUICK, ...options })
  t.teardown(async () => { await poller.stop() })
  poller.start()
  return { poller, events }
}

const delay = async (ms: number): Promise<void> => {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

function freshStore (t: Test): Store {
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  return store
}

/** Stops the poller and closes its store, as a restart does; the store opened again. */
async function restart (t: Test, dir: string, run: Run, store: Store): Promise<Store> {
  await run.poller.stop()
  await store.close()
  const reopened = openStore(dir).store
  t.teardown(async () => { await reopened.close() })
  return reopened
}

const capRecord = (store: Store, id: string, updated: string): EntryRecord | undefined =>
  store.feedEntries.get(['cap', id, updated]) as EntryRecord | undefined

t.test('an alert embedded in the feed is handed on without a GET for it', async (t) => {
  const server = await JmaFeedServer.start(t)
  server.routes.set('/cap/weather.atom', () => capFixture('weather.atom'))
  const store = freshStore(t)
  const run = startPoller(t, store, [{ url: `${server.base}/cap/weather.atom`, everySeconds: 60 }])
  await run.poller.idle()

  t.match(run.events, [{
    source: 'cap', id: 'w-nws.webmaster@noaa.gov,NOAA-NWS-ALERTS-MT20120830100700TFXFlashFloodWatchTFX20120830180000MT',
    type: 'Flash Flood Watch', areas: [{ table: 'cap', code: '030049' }, { code: 'MTZ014' }]
  }])
  t.same(server.requests.map((r) => r.path), ['/cap/weather.atom'], 'only the feed was asked')
  t.match(capRecord(store, NWS_ID, '2012-08-29T16:29:00-04:00'),
    { outcome: 'ok', type: 'embedded', pending: undefined })
  t.match(run.poller.status(), [{ url: `${server.base}/cap/weather.atom`, failures: 0, entriesSeen: 1 }])
})

t.test('linked alerts are fetched once, across a restart; the feed is then asked conditionally', async (t) => {
  const server = await JmaFeedServer.start(t)
  const feed = capLinkFeed([
    ['urn:mfd:0043', '2026-07-01T14:12:00+09:00', `${server.base}/alerts/0043.cap`],
    ['urn:mfd:0042', '2026-07-01T14:05:00+09:00', `${server.base}/alerts/0042.cap`]
  ])
  server.routes.set('/cap/feed.atom', () => feed)
  server.routes.set('/alerts/0042.cap', () => JA)
  server.routes.set('/alerts/0043.cap', () => JA_CANCEL)
  const dir = t.testdir()
  const feeds = [{ url: `${server.base}/cap/feed.atom`, everySeconds: 60 }]
  const alerts = (): string[] => server.requests.filter((r) => r.path.startsWith('/alerts/')).map((r) => r.path)

  let { store } = openStore(dir)
  const first = startPoller(t, store, feeds)
  await first.poller.idle()
  t.same(alerts(), ['/alerts/0042.cap', '/alerts/0043.cap'], 'each alert once, the oldest first')
  t.match(first.events, [
    { id: 'bousai@fire.matsuyama.example.jp,MFD-2026-0042', infoType: 'issue' },
    { id: 'bousai@fire.matsuyama.example.jp,MFD-2026-0043', infoType: 'cancel' }
  ])
  t.match(first.poller.status()[0], { failures: 0, entriesSeen: 2 })
  t.ok(Date.parse(first.poller.status()[0]?.nextPollAt ?? '') > Date.now(), 'the next poll is ahead')

  store = await restart(t, dir, first, store)
  const before = server.requests.length
  const second = startPoller(t, store, feeds)
  await second.poller.idle()
  t.same(server.requests.slice(before).map((r) => [r.path, r.status, r.conditional]),
    [['/cap/feed.atom', 304, true]], 'after the restart the feed is asked conditionally: 304')
  t.equal(second.events.length, 0)

  await second.poller.stop()
  server.ignoreConditionals = true
  const third = startPoller(t, store, feeds)
  await third.poller.idle()
  t.equal(alerts().length, 2, 'the feed read in full again fetches no alert again')
  t.equal(third.events.length, 0)
})

t.test('an entry updated in place is a new entry; an alert read once is not handed on twice', async (t) => {
  const server = await JmaFeedServer.start(t)
  let updated = '2026-07-01T14:05:00+09:00'
  server.routes.set('/cap/feed.atom', () =>
    capLinkFeed([['urn:mfd:0042', updated, `${server.base}/alerts/0042.cap`]]))
  server.routes.set('/alerts/0042.cap', () => JA)
  const store = freshStore(t)
  const run = startPoller(t, store, [{ url: `${server.base}/cap/feed.atom`, everySeconds: 0.1 }])
  await waitFor(() => run.events.length === 1)

  updated = '2026-07-01T14:06:00+09:00'
  await waitFor(() => server.count((r) => r.path === '/alerts/0042.cap') === 2)
  await run.poller.idle()
  t.ok(capRecord(store, 'urn:mfd:0042', updated), 'the new version has its own record')
  t.equal(run.events.length, 2, 'it is handed on; the desk knows the alert by its id')
  const polls = server.count((r) => r.path === '/cap/feed.atom')
  await waitFor(() => server.count((r) => r.path === '/cap/feed.atom') >= polls + 2)
  t.equal(server.count((r) => r.path === '/alerts/0042.cap'), 2, 'and fetched once too')
})

t.test('a refused or invalid alert is recorded with its reason and not fetched again', async (t) => {
  const server = await JmaFeedServer.start(t)
  server.routes.set('/cap/feed.atom', () => capLinkFeed([
    ['urn:bad:2', '2026-07-01T14:02:00+09:00', `${server.base}/alerts/xee.cap`],
    ['urn:bad:1', '2026-07-01T14:01:00+09:00', `${server.base}/alerts/invalid.cap`]
  ]))
  server.routes.set('/alerts/invalid.cap', () => capFixture('invalid.cap'))
  server.routes.set('/alerts/xee.cap', () => capFixture('xee.cap'))
  const store = freshStore(t)
  server.ignoreConditionals = true
  const run = startPoller(t, store, [{ url: `${server.base}/cap/feed.atom`, everySeconds: 0.1 }])
  await waitFor(() => server.count((r) => r.path === '/cap/feed.atom') >= 3)
  await run.poller.idle()

  t.equal(server.count((r) => r.path === '/alerts/invalid.cap'), 1, 'the invalid alert once')
  t.equal(server.count((r) => r.path === '/alerts/xee.cap'), 1, 'the attack once')
  t.match(capRecord(store, 'urn:bad:1', '2026-07-01T14:01:00+09:00'),
    { outcome: 'refused', type: 'linked', reason: /^MIMAMORI_CAP_INVALID: .*<scope> is missing/ })
  t.match(capRecord(store, 'urn:bad:2', '2026-07-01T14:02:00+09:00'),
    { outcome: 'refused', reason: /^MIMAMORI_XML_REFUSED/ })
  t.equal(run.events.length, 0)
  t.match(run.poller.status()[0], { failures: 0, entriesSeen: 2 }, 'a refused alert is no failed poll')
})

t.test('an unsafe feed and a 500 back off, then recover when the feed is fixed', async (t) => {
  const server = await JmaFeedServer.start(t)
  const answers = [capFixture('xee.atom'), { status: 500 }, capFixture('xee.atom')]
  server.routes.set('/cap/feed.atom', () => answers.shift() ?? capFixture('weather.atom'))
  const store = freshStore(t)
  const lines: Array<{ msg: string, failures?: number, retryInSeconds?: number, reason?: string }> = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
  const url = `${server.base}/cap/feed.atom`
  const run = startPoller(t, store, [{ url, everySeconds: 60 }], { log })

  await waitFor(() => run.poller.status()[0]?.failures === 3)
  t.match(run.poller.status()[0], { failures: 3, lastError: /DTD|entit/i })
  await waitFor(() => run.events.length === 1)
  await run.poller.idle()
  t.match(run.poller.status()[0], { failures: 0, lastError: undefined, entriesSeen: 1 })
  t.same(lines.map((l) => [l.msg, l.failures, l.retryInSeconds]), [
    ['feed poll failed', 1, 0.05], ['feed poll failed', 2, 0.1], ['feed poll failed', 3, 0.2],
    ['feed polled', undefined, undefined]
  ], 'the retries double up to maxBackoffSeconds')
  t.match(lines[1], { reason: 'HTTP 500' })
})

t.test('a linked alert that fails for a moment is asked again, and given up after three tries', async (t) => {
  const server = await JmaFeedServer.start(t)
  server.routes.set('/cap/feed.atom', () => capLinkFeed([
    ['urn:mfd:0043', '2026-07-01T14:12:00+09:00', `${server.base}/alerts/0043.cap`],
    ['urn:mfd:0042', '2026-07-01T14:05:00+09:00', `${server.base}/alerts/0042.cap`]
  ]))
  server.routes.set('/alerts/0042.cap', () => ({ status: 503 }))
  server.routes.set('/alerts/0043.cap', () => JA_CANCEL)
  const store = freshStore(t)
  const run = startPoller(t, store, [{ url: `${server.base}/cap/feed.atom`, everySeconds: 60 }])
  await waitFor(() => server.count((r) => r.path === '/alerts/0042.cap') === 3)
  await run.poller.idle()

  t.equal(server.count((r) => r.path === '/alerts/0043.cap'), 1, 'the alert after it was not held up')
  t.equal(run.events.length, 1)
  t.match(capRecord(store, 'urn:mfd:0042', '2026-07-01T14:05:00+09:00'),
    { outcome: 'error', attempts: 3, reason: 'HTTP 503' })
  const conditional = server.requests.filter((r) => r.path === '/cap/feed.atom').map((r) => r.conditional)
  t.same(conditional, [false, false, false], 'the feed is read in full while an alert is owed')
  t.match(run.poller.status()[0], { failures: 0 }, 'giving up ends the back-off')
})

t.test('stale entries are recorded without a GET; a feed with everySeconds 0 is read on start only', async (t) => {
  const server = await JmaFeedServer.start(t)
  server.routes.set('/cap/feed.atom', () => capLinkFeed([
    ['urn:mfd:0042', '2026-07-01T14:05:00+09:00', `${server.base}/alerts/0042.cap`]
  ]))
  const store = freshStore(t)
  const run = startPoller(t, store, [{ url: `${server.base}/cap/feed.atom`, everySeconds: 0 }],
    { maxEntryAgeHours: 1 })
  await run.poller.idle()
  t.match(capRecord(store, 'urn:mfd:0042', '2026-07-01T14:05:00+09:00'),
    { outcome: 'skipped', reason: 'stale' })
  t.same(server.requests.map((r) => r.path), ['/cap/feed.atom'])
  t.equal(run.poller.status()[0]?.nextPollAt, undefined, 'no timer')
})

t.test('an alert recorded but not handed on before a crash is handed on at start', async (t) => {
  const store = freshStore(t)
  const event = { id: 'cap:test', type: '林野火災' } as unknown as HazardEvent
  const entry = { id: 'urn:x', updated: '2026-07-01T00:00:00Z' }
  const record = { at: new Date().toISOString(), feed: 'f', type: 'linked', outcome: 'ok', pending: { event, entry } }
  store.feedEntries.putSync(['cap', entry.id, entry.updated], record)
  // a JMA record waiting too: it is the JMA poller's to hand on, not this one's
  store.feedEntries.putSync(['https://x/a.xml', 'a'], { ...record, pending: { event: { id: 'jma:x' }, entry } })

  const run = startPoller(t, store, [{ url: 'http://127.0.0.1:9/cap/feed.atom', everySeconds: 0 }])
  await run.poller.idle()
  t.same(run.events.map((e) => e.id), ['cap:test'])
  t.equal(capRecord(store, entry.id, entry.updated)?.pending, undefined)
})

t.test('stop waits for the poll in flight and nothing runs after it; no feeds, no polls', async (t) => {
  const server = await JmaFeedServer.start(t)
  server.routes.set('/cap/feed.atom', () => capLinkFeed([
    ['urn:mfd:0042', '2026-07-01T14:05:00+09:00', `${server.base}/alerts/0042.cap`]
  ]))
  server.routes.set('/alerts/0042.cap', () => 'hang')
  const store = freshStore(t)
  const run = startPoller(t, store, [{ url: `${server.base}/cap/feed.atom`, everySeconds: 0.2 }],
    { timeoutSeconds: 0.5 })
  await waitFor(() => server.count((r) => r.path === '/alerts/0042.cap') === 1)
  const stopping = run.poller.stop()
  const first = await Promise.race([stopping.then(() => 'stopped'), delay(100).then(() => 'waiting')])
  t.equal(first, 'waiting', 'stop waits while the alert is being fetched')
  await stopping
  t.match(capRecord(store, 'urn:mfd:0042', '2026-07-01T14:05:00+09:00'),
    { outcome: 'retry', attempts: 1, reason: 'timed out' }, 'the alert is owed to the next start')
  const asked = server.requests.length
  // the feed's timer would have fired twice within this time
  await delay(600)
  t.equal(server.requests.length, asked, 'no poll after stop')

  const none = startPoller(t, store, [])
  await none.poller.idle()
  t.same(none.poller.status(), [])
})
