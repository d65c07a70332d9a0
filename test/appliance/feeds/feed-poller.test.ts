import t, { type Test } from 'tap'
import pino from 'pino'
import { Value } from '@sinclair/typebox/value'
import { openStore, type Store } from '../../../appliance/store/store.js'
import { FeedsConfigSchema, type FeedsConfig } from '../../../appliance/feeds/feeds-config.js'
import { FeedPoller, type FeedPollerOptions } from '../../../appliance/feeds/feed-poller.js'
import type { EntryRecord } from '../../../appliance/feeds/feed-entries.js'
import type { HazardEvent } from '../../../appliance/feeds/hazard-event.js'
import type { AtomEntry } from '../../../appliance/feeds/atom-feed.js'
import { JmaFeedServer, fixture } from './jma-feed-server.js'

const SAMPLES: Record<string, string> = {
  VPWW54: 'official-samples/15_15_01_220314_VPWW54.xml',
  VXWW50: 'official-samples/17_01_01_190529_VXWW50.xml',
  震度速報: 'official-samples/32-35_01_01_100806_VXSE51.xml',
  震源に関する情報: 'official-samples/32-35_01_02_240613_VXSE52.xml',
  '震源・震度に関する情報': 'official-samples/32-35_04_04_240613_VXSE53.xml'
}

const drill52 = (): string => fixture('official-samples/32-35_01_02_240613_VXSE52.xml')
const dataId = (server: JmaFeedServer, name: string): [string, string] =>
  [`${server.base}/data/${name}`, `${server.base}/data/${name}`]

interface Run { poller: FeedPoller, events: HazardEvent[], entries: AtomEntry[] }

function feedsConfig (feeds: Array<{ url: string, everySeconds: number }>): FeedsConfig {
  const config = Value.Create(FeedsConfigSchema)
  config.jma = { enabled: true, offices: [], feeds }
  // below the schema's 15 s floor, so that the tests do not wait for back-off
  config.maxBackoffSeconds = 0.2
  return config
}

function startPoller (
  t: Test, store: Store, feeds: Array<{ url: string, everySeconds: number }>,
  options: Partial<FeedPollerOptions> = {}, offices: string[] = []
): Run {
  const run: Run = { poller: undefined as unknown as FeedPoller, events: [], entries: [] }
  const config = feedsConfig(feeds)
  config.jma.offices = offices
  run.poller = new FeedPoller({
    store,
    config,
    log: pino({ level: 'silent' }),
    onTelegram: (event, entry) => { run.events.push(event); run.entries.push(entry) },
    firstRetrySeconds: 0.05,
    timeoutSeconds: 2,
    maxEntryAgeHours: Infinity,
    ...options
  })
  t.teardown(async () => { await run.poller.stop() })
  run.poller.start()
  return run
}

async function waitFor (predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = Date.now()
  while (!predicate()) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting for a condition')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Serves both real feeds and, for each entry we read, a sample telegram of its type. */
function serveRealFeeds (server: JmaFeedServer): void {
  const extra = server.localFeed(fixture('feeds/extra_20240725T141650JST.xml'))
  const eqvol = server.localFeed(fixture('feeds/eqvol_20200725T230301JST.xml'))
  server.routes.set('/feed/extra.xml', () => extra)
  server.routes.set('/feed/eqvol.xml', () => eqvol)
  server.routes.set('/feed/extra_l.xml', () => extra)
  const eqvolEntries = /<title>([^<]*)<\/title>[\s\S]*?href="[^"]*(\/data\/[^"]+)"/g
  for (const [, title, path] of eqvol.matchAll(eqvolEntries)) {
    const sample = SAMPLES[title ?? '']
    if (sample !== undefined && path !== undefined) server.routes.set(path, () => fixture(sample))
  }
  for (const [, path, type] of extra.matchAll(/href="[^"]*(\/data\/[^"]*_(V[A-Z0-9]{5})_[^"]*)"/g)) {
    const sample = SAMPLES[type ?? '']
    if (sample !== undefined && path !== undefined) server.routes.set(path, () => fixture(sample))
  }
}

const isTelegram = (r: { path: string }): boolean => r.path.startsWith('/data/')

t.test('each entry is fetched once, across a restart; the feeds are then asked conditionally', async (t) => {
  const server = await JmaFeedServer.start(t)
  serveRealFeeds(server)
  const dir = t.testdir()
  const feeds = [
    { url: `${server.base}/feed/extra.xml`, everySeconds: 60 },
    { url: `${server.base}/feed/eqvol.xml`, everySeconds: 60 },
    { url: `${server.base}/feed/extra_l.xml`, everySeconds: 0 }
  ]

  let { store } = openStore(dir)
  const first = startPoller(t, store, feeds)
  await first.poller.idle()
  const fetched = server.requests.filter(isTelegram)
  t.equal(new Set(fetched.map((r) => r.path)).size, fetched.length, 'no telegram fetched twice')
  t.equal(fetched.length, 107 + 14 + 4, 'VPWW54, VXWW50 and the earthquake reports only')
  t.equal(server.count((r) => /_VPWW53_/.test(r.path)), 0, 'VPWW53 beside its VPWW54 is not fetched')
  t.equal(server.count((r) => r.path === '/feed/extra_l.xml'), 1, 'the long feed is read on start')
  t.same(countBy(first.events.map((e) => e.type)),
    { VPWW54: 107, VXWW50: 14, VXSE51: 1, VXSE52: 1, VXSE53: 2 })
  t.equal(first.events.find((e) => e.type === 'VXSE52')?.status, 'drill')
  t.ok(first.entries.some((e) => e.id.startsWith('urn:uuid:')),
    'old-format entries are handed on with their entry')

  const status = first.poller.status()
  t.match(status[0], { url: feeds[0]?.url, everySeconds: 60, failures: 0, entriesSeen: 350 })
  t.match(status[1], { failures: 0, entriesSeen: 23 })
  t.match(status[2], { entriesSeen: 0 }, 'the long feed lists the same entries: none is new to it')
  t.ok(Date.parse(status[0]?.nextPollAt ?? '') > Date.now(), 'the next poll is ahead')
  t.equal(status[2]?.nextPollAt, undefined, 'a long feed has no timer')

  await first.poller.stop()
  await store.close()
  const before = server.requests.length
  store = openStore(dir).store
  t.teardown(async () => { await store.close() })
  const second = startPoller(t, store, feeds)
  await second.poller.idle()
  const after = server.requests.slice(before)
  t.same(after.map((r) => [r.status, r.conditional]), [[304, true], [304, true], [304, true]],
    'after the restart each feed is asked conditionally and answered 304')
  t.equal(second.events.length, 0)

  await second.poller.stop()
  server.ignoreConditionals = true
  const third = startPoller(t, store, feeds)
  await third.poller.idle()
  t.equal(server.count(isTelegram), fetched.length,
    'a feed read in full again fetches no telegram again')
  t.equal(third.events.length, 0)
})

function countBy (values: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const v of values) out[v] = (out[v] ?? 0) + 1
  return out
}

/** A current-format eqvol feed of the given telegrams, newest first as JMA lists them. */
function eqvolFeed (
  server: JmaFeedServer, items: Array<[name: string, title: string, updated: string]>
): string {
  const entries = items.map(([name, title, updated]) => {
    const url = `${server.base}/data/${name}`
    return `<entry><title>${title}</title><id>${url}</id><updated>${updated}</updated>` +
      '<author><name>気象庁</name></author>' +
      `<link type="application/xml" href="${url}"/><content type="text">x</content></entry>`
  })
  return '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" lang="ja">' +
    `<title>高頻度（地震火山）</title><updated>${items[0]?.[2] ?? ''}</updated>${entries.join('')}</feed>`
}

t.test("weather telegrams are fetched only from the city's own office; earthquakes from any", async (t) => {
  const server = await JmaFeedServer.start(t)
  serveRealFeeds(server)
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const feeds = [
    { url: `${server.base}/feed/extra.xml`, everySeconds: 60 },
    { url: `${server.base}/feed/eqvol.xml`, everySeconds: 60 }
  ]
  const run = startPoller(t, store, feeds, {}, ['山形地方気象台'])
  await run.poller.idle()
  const weather = run.entries.filter((e) => /_(VPWW54|VXWW50)_/.test(e.link))
  t.ok(weather.length > 0, 'the office\'s own warnings are read')
  t.same([...new Set(weather.map((e) => e.author))], ['山形地方気象台'], 'and no other office\'s')
  t.equal(run.events.filter((e) => e.kind === 'earthquake').length, 4, 'earthquake reports come from anywhere')
  t.ok(server.count(isTelegram) < 107 + 14 + 4, 'fewer telegrams are downloaded than the feed lists')
})

t.test('drill and cancellation telegrams are handed on; a refused one is not fetched again', async (t) => {
  const server = await JmaFeedServer.start(t)
  const issued = fixture('official-samples/32-35_04_04_240613_VXSE53.xml')
    .replace('<EventID>20100125161517</EventID>', '<EventID>20080614084350</EventID>')
  const refused = fixture('official-samples/32-35_01_01_100806_VXSE51.xml')
    .replace('<Report', '<!DOCTYPE Report [<!ENTITY e SYSTEM "file:///etc/passwd">]><Report')
  server.routes.set('/data/a_VXSE53_1.xml', () => issued)
  const cancel = fixture('official-samples/32-35_06_06_100915_VXSE53.xml')
  server.routes.set('/data/b_VXSE53_2.xml', () => cancel)
  server.routes.set('/data/c_VXSE52_3.xml', () => drill52())
  server.routes.set('/data/d_VXSE51_4.xml', () => refused)
  let feed = eqvolFeed(server, [
    ['d_VXSE51_4.xml', '震度速報', '2024-01-01T00:03:00Z'],
    ['c_VXSE52_3.xml', '震源に関する情報', '2024-01-01T00:02:00Z'],
    ['b_VXSE53_2.xml', '震源・震度に関する情報', '2024-01-01T00:01:00Z'],
    ['a_VXSE53_1.xml', '震源・震度に関する情報', '2024-01-01T00:00:00Z'],
    ['e_VFVO53_5.xml', '降灰予報（定時）', '2024-01-01T00:00:00Z']
  ])
  server.routes.set('/feed/eqvol.xml', () => feed)
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })

  const run = startPoller(t, store, [{ url: `${server.base}/feed/eqvol.xml`, everySeconds: 0 }])
  await run.poller.idle()
  t.same(run.events.map((e) => [e.type, e.status, e.infoType]), [
    ['VXSE53', 'actual', 'issue'], ['VXSE53', 'actual', 'cancel'], ['VXSE52', 'drill', 'issue']
  ], 'oldest first, so the cancellation follows what it cancels')
  t.equal(run.events[0]?.eventKey, run.events[1]?.eventKey)

  const record = (name: string): EntryRecord | undefined =>
    store.feedEntries.get(dataId(server, name)) as EntryRecord | undefined
  t.match(record('d_VXSE51_4.xml'), { outcome: 'refused', type: 'VXSE51', reason: /DTD or entities/ })
  t.match(record('e_VFVO53_5.xml'), { outcome: 'skipped', reason: 'not-read' })
  t.match(record('a_VXSE53_1.xml'), { outcome: 'ok', eventId: run.events[0]?.id })
  t.equal(record('a_VXSE53_1.xml')?.pending, undefined, 'the event was handed on')
  t.equal(server.count((r) => r.path === '/data/e_VFVO53_5.xml'), 0,
    'a type we do not read is never fetched')

  await run.poller.stop()
  feed = feed.replace('<title>高頻度（地震火山）</title>', '<title>高頻度（地震火山） </title>')
  const again = startPoller(t, store, [{ url: `${server.base}/feed/eqvol.xml`, everySeconds: 0 }])
  await again.poller.idle()
  const feedReads = server.count((r) => r.status === 200 && r.path === '/feed/eqvol.xml')
  t.equal(feedReads, 2, 'the changed feed was read')
  t.equal(server.count((r) => r.path === '/data/d_VXSE51_4.xml'), 1,
    'the refused telegram is not fetched again')
  t.equal(again.events.length, 0)
})

t.test('a feed answering 500, timing out or sending garbage backs off and recovers', async (t) => {
  const server = await JmaFeedServer.start(t)
  const good = eqvolFeed(server, [['a_VXSE52_1.xml', '震源に関する情報', '2024-01-01T00:00:00Z']])
  const answers: Array<() => ReturnType<NonNullable<ReturnType<typeof server.routes.get>>>> = [
    () => ({ status: 500 }), () => 'hang', () => '<html><body>maintenance', () => good
  ]
  server.routes.set('/feed/eqvol.xml', () => (answers.shift() ?? (() => good))())
  server.routes.set('/data/a_VXSE52_1.xml', () => drill52())
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const url = `${server.base}/feed/eqvol.xml`

  const lines: Array<{ msg: string, failures?: number, recovered?: boolean }> = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
  const run = startPoller(t, store, [{ url, everySeconds: 60 }], { timeoutSeconds: 0.3, log })
  await waitFor(() => run.poller.status()[0]?.failures === 3)
  const failing = run.poller.status()[0]
  t.match(failing, { failures: 3, lastError: /not well-formed|no root element/ }, 'garbage is a failure')
  t.equal(run.events.length, 0)
  const state = store.feedState.get(url) as { failures: number, nextPollAt: string }
  t.equal(state.failures, 3, 'the failures are kept in feedState')
  const delay = Date.parse(state.nextPollAt) - Date.now()
  t.ok(delay <= 200 && delay > 0, `the third retry waits maxBackoffSeconds at most (${delay} ms)`)

  await waitFor(() => run.events.length === 1)
  await run.poller.idle()
  t.match(run.poller.status()[0], { failures: 0, lastError: undefined, entriesSeen: 1 })
  const feedAnswers = server.requests.filter((r) => r.path === '/feed/eqvol.xml').map((r) => r.status)
  t.same(feedAnswers, [500, 0, 200, 200], 'a 500, a request that timed out, garbage, then the feed')
  t.same(lines.map((l) => [l.msg, l.failures ?? l.recovered]), [
    ['feed poll failed', 1], ['feed poll failed', 2], ['feed poll failed', 3], ['feed polled', true]
  ], 'one line per failed poll and one for the recovery')
})

t.test('a gap in a high-frequency feed makes the long feed read again; a 304 does not', async (t) => {
  const server = await JmaFeedServer.start(t)
  const now = Date.now()
  const iso = (ms: number): string => new Date(ms).toISOString()
  let short = eqvolFeed(server, [['a_VXSE52_1.xml', '震源に関する情報', iso(now - 600_000)]])
  server.routes.set('/feed/eqvol.xml', () => short)
  server.routes.set('/feed/eqvol_l.xml', () => short)
  server.routes.set('/data/a_VXSE52_1.xml', () => drill52())
  server.routes.set('/data/b_VXSE52_2.xml', () => drill52())
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const longReads = (): number => server.count((r) => r.path === '/feed/eqvol_l.xml')

  const lines: Array<{ msg: string, feed: string, gap: boolean }> = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
  const run = startPoller(t, store, [
    { url: `${server.base}/feed/eqvol.xml`, everySeconds: 1 },
    { url: `${server.base}/feed/eqvol_l.xml`, everySeconds: 0 }
  ], { log })
  await run.poller.idle()
  t.equal(longReads(), 1, 'read once on start')
  await waitFor(() => server.count((r) => r.path === '/feed/eqvol.xml') === 2)
  await run.poller.idle()
  t.equal(server.requests.at(-1)?.status, 304)
  t.equal(longReads(), 1, 'an unchanged feed shows no gap')
  t.same(lines.map((l) => [l.msg, l.feed.endsWith('eqvol.xml')]), [['feed polled', true]],
    'a line for the poll that took an entry; none for the long feed with nothing new or a 304')

  // the feed now starts after our last read: what was listed in between is gone unseen
  short = eqvolFeed(server, [['b_VXSE52_2.xml', '震源に関する情報', iso(Date.now() + 120_000)]])
  await waitFor(() => longReads() === 2)
  await run.poller.idle()
  t.equal(server.count((r) => r.path === '/data/b_VXSE52_2.xml'), 1, 'the new entry is fetched once')
  t.match(lines.at(-1), { msg: 'feed polled', gap: true })
})

t.test('entries older than maxEntryAgeHours are recorded as stale without a GET', async (t) => {
  const server = await JmaFeedServer.start(t)
  serveRealFeeds(server)
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const run = startPoller(t, store, [{ url: `${server.base}/feed/eqvol.xml`, everySeconds: 60 }],
    { maxEntryAgeHours: 6 })
  await run.poller.idle()
  t.equal(server.count(isTelegram), 0)
  const records = [...store.feedEntries.getRange()].map((r) => r.value as EntryRecord)
  t.equal(records.length, 23)
  t.same(countBy(records.map((r) => r.reason ?? '')), { stale: 4, 'not-read': 19 })
})

t.test('a telegram that fails for a moment is asked again, and given up after three tries', async (t) => {
  const server = await JmaFeedServer.start(t)
  const feed = eqvolFeed(server, [
    ['b_VXSE52_2.xml', '震源に関する情報', '2024-01-01T00:01:00Z'],
    ['a_VXSE52_1.xml', '震源に関する情報', '2024-01-01T00:00:00Z']
  ])
  server.routes.set('/feed/eqvol.xml', () => feed)
  server.routes.set('/data/a_VXSE52_1.xml', () => ({ status: 503 }))
  server.routes.set('/data/b_VXSE52_2.xml', () => drill52())
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })

  const run = startPoller(t, store, [{ url: `${server.base}/feed/eqvol.xml`, everySeconds: 60 }])
  await waitFor(() => server.count((r) => r.path === '/data/a_VXSE52_1.xml') === 3)
  await run.poller.idle()
  t.equal(run.events.length, 1, 'the telegram after it was not held up')
  t.equal(server.count((r) => r.path === '/data/b_VXSE52_2.xml'), 1)
  t.match(store.feedEntries.get(dataId(server, 'a_VXSE52_1.xml')),
    { outcome: 'error', attempts: 3, reason: 'HTTP 503' })
  const conditional = server.requests.filter((r) => r.path === '/feed/eqvol.xml').map((r) => r.conditional)
  t.same(conditional, [false, false, false],
    'the feed is read in full while a telegram is owed, so its entry is listed again')
  t.match(run.poller.status()[0], { failures: 0 }, 'giving up ends the back-off')
})

t.test('an event recorded but not handed on before a crash is handed on at start', async (t) => {
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const server = await JmaFeedServer.start(t)
  server.routes.set('/feed/eqvol.xml', () => eqvolFeed(server, []))
  const entry: AtomEntry =
    { id: 'x', title: '震度速報', updated: '', link: 'https://example.jp/x.xml', author: '', content: '' }
  const event = { id: 'jma:test', type: 'VXSE51' } as unknown as HazardEvent
  const record: EntryRecord =
    { at: new Date().toISOString(), feed: 'f', type: 'VXSE51', outcome: 'ok', pending: { event, entry } }
  store.feedEntries.putSync([entry.link, entry.id], record)

  const run = startPoller(t, store, [{ url: `${server.base}/feed/eqvol.xml`, everySeconds: 60 }])
  await run.poller.idle()
  t.same(run.events.map((e) => e.id), ['jma:test'])
  t.equal((store.feedEntries.get([entry.link, entry.id]) as EntryRecord).pending, undefined)
})

t.test('stop waits for the poll in flight and nothing runs after it', async (t) => {
  const server = await JmaFeedServer.start(t)
  server.routes.set('/feed/eqvol.xml', () =>
    eqvolFeed(server, [['a_VXSE52_1.xml', '震源に関する情報', '2024-01-01T00:00:00Z']]))
  server.routes.set('/data/a_VXSE52_1.xml', () => 'hang')
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const run = startPoller(t, store, [{ url: `${server.base}/feed/eqvol.xml`, everySeconds: 1 }],
    { timeoutSeconds: 0.5 })
  await waitFor(() => server.count(isTelegram) === 1)
  let stopped = false
  const stopping = run.poller.stop().then(() => { stopped = true })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(stopped, false, 'stop waits while the telegram is being fetched')
  await stopping
  const count = server.requests.length
  // the feed's timer would have fired within this second
  await new Promise((resolve) => setTimeout(resolve, 1200))
  t.equal(server.requests.length, count, 'no poll after stop')
})

t.test('a disabled JMA feed configuration polls nothing', async (t) => {
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const config = feedsConfig([{ url: 'http://127.0.0.1:9/feed/extra.xml', everySeconds: 60 }])
  config.jma.enabled = false
  const log = pino({ level: 'silent' })
  const poller = new FeedPoller({ store, config, log, onTelegram: () => undefined })
  poller.start()
  await poller.idle()
  t.match(poller.status(), [{ failures: 0, entriesSeen: 0, lastSuccessAt: undefined }])
  await poller.stop()
})

t.test('an oversized telegram is given up unread, with or without a declared length', async (t) => {
  const server = await JmaFeedServer.start(t)
  const big = fixture('official-samples/32-35_01_01_100806_VXSE51.xml')
  server.routes.set('/feed/eqvol.xml', () => eqvolFeed(server, [
    ['b_VXSE51_2.xml', '震度速報', '2024-01-01T00:01:00Z'],
    ['a_VXSE51_1.xml', '震度速報', '2024-01-01T00:00:00Z']
  ]))
  server.routes.set('/data/a_VXSE51_1.xml', () => big)
  server.routes.set('/data/b_VXSE51_2.xml', () => ({ status: 200, body: big, chunked: true }))
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const run = startPoller(t, store, [{ url: `${server.base}/feed/eqvol.xml`, everySeconds: 60 }],
    { maxBytes: 8000 })
  await run.poller.idle()
  for (const name of ['a_VXSE51_1.xml', 'b_VXSE51_2.xml']) {
    const record = store.feedEntries.get(dataId(server, name))
    t.match(record, { outcome: 'error', reason: 'larger than 8000 bytes' }, name)
  }
  t.equal(run.events.length, 0)
})

t.test('an event the desk fails to take in is logged and not handed on again', async (t) => {
  const server = await JmaFeedServer.start(t)
  server.routes.set('/feed/eqvol.xml', () =>
    eqvolFeed(server, [['a_VXSE52_1.xml', '震源に関する情報', '2024-01-01T00:00:00Z']]))
  server.routes.set('/data/a_VXSE52_1.xml', () => drill52())
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const lines: Array<{ msg: string, type?: string }> = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
  const run = startPoller(t, store, [{ url: `${server.base}/feed/eqvol.xml`, everySeconds: 60 }], {
    log, onTelegram: () => { throw new Error('desk broken') }
  })
  await run.poller.idle()
  t.match(lines.find((l) => l.msg === 'telegram not taken in'), { type: 'VXSE52' })
  t.match(store.feedEntries.get(dataId(server, 'a_VXSE52_1.xml')), { outcome: 'ok', pending: undefined })
})

t.test('records of entries long gone from every feed are forgotten', async (t) => {
  const server = await JmaFeedServer.start(t)
  server.routes.set('/feed/eqvol.xml', () => eqvolFeed(server, []))
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const old = new Date(Date.now() - 15 * 24 * 3600_000).toISOString()
  const record = { feed: 'f', type: 'VXSE51', outcome: 'ok' }
  store.feedEntries.putSync(['https://x/old.xml', 'old'], { ...record, at: old })
  store.feedEntries.putSync(['https://x/new.xml', 'new'], { ...record, at: new Date().toISOString() })
  const run = startPoller(t, store, [{ url: `${server.base}/feed/eqvol.xml`, everySeconds: 60 }],
    { maxEntryAgeHours: 6 })
  await run.poller.idle()
  t.same([...store.feedEntries.getKeys()], [['https://x/new.xml', 'new']])
})

t.test('a telegram moved by a redirect is followed and read', async (t) => {
  const server = await JmaFeedServer.start(t)
  server.routes.set('/feed/eqvol.xml', () =>
    eqvolFeed(server, [['a_VXSE52_1.xml', '震源に関する情報', '2024-01-01T00:00:00Z']]))
  server.routes.set('/data/a_VXSE52_1.xml', () =>
    ({ status: 301, headers: { location: `${server.base}/moved/a.xml` } }))
  server.routes.set('/moved/a.xml', () => drill52())
  const { store } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const run = startPoller(t, store, [{ url: `${server.base}/feed/eqvol.xml`, everySeconds: 60 }])
  await run.poller.idle()
  t.same(run.events.map((e) => e.type), ['VXSE52'])
})
