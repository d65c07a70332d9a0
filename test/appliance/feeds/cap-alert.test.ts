import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readCapAlert, readCapFeed } from '../../../appliance/feeds/cap-alert.js'
import { all, readXml } from '../../../appliance/feeds/xml-document.js'
import { MimamoriError } from '../../../appliance/errors.js'

const FIXTURES = new URL('../../fixtures/cap/', import.meta.url)
const fixture = (name: string): Buffer => readFileSync(new URL(name, FIXTURES))
const text = (name: string): string => fixture(name).toString('utf8')

function problemsOf (t: Test, read: () => unknown): string[] {
  try {
    read()
  } catch (err) {
    t.equal((err as MimamoriError).code, 'MIMAMORI_CAP_INVALID')
    return ((err as MimamoriError).details as { problems: string[] }).problems
  }
  t.fail('the alert was read')
  return []
}

/** An HTTP server on 127.0.0.1:0 that counts the requests an XML reader might make. */
async function countingServer (t: Test): Promise<{ origin: string, requests: () => number }> {
  let requests = 0
  const server = createServer((_req, res) => { requests++; res.end('') })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const { port } = server.address() as AddressInfo
  return { origin: `127.0.0.1:${port}`, requests: () => requests }
}

t.test('the OASIS samples read as the ground truth says', async (t) => {
  const storm = readCapAlert(fixture('thunderstorm.cap'))
  t.match(storm, {
    source: 'cap', kind: 'other', id: 'KSTO@NWS.NOAA.GOV,KSTO1055887203',
    eventKey: 'KSTO@NWS.NOAA.GOV,KSTO1055887203', incidentKey: 'KSTO@NWS.NOAA.GOV,KSTO1055887203',
    status: 'actual', infoType: 'issue', type: 'SEVERE THUNDERSTORM',
    title: 'SEVERE THUNDERSTORM WARNING',
    issuedBy: 'NATIONAL WEATHER SERVICE SACRAMENTO CA', reportedAt: '2003-06-17T14:57:00-07:00'
  })
  t.same(storm.areas.map((a) => [a.table, a.code, a.level, a.change]),
    [['cap', '006109', 3, 'new'], ['cap', '006009', 3, 'new'], ['cap', '006003', 3, 'new']])
  t.match(storm.headline, /DOPPLER RADAR[\s\S]*TAKE COVER/, 'description, then instruction')

  const amber = readCapAlert(fixture('cap_amber_alert_example.xml'))
  t.match(amber, { type: 'Child Abduction', status: 'actual', infoType: 'issue' },
    'en-US, the first info')
  t.same(amber.areas.map((a) => [a.code, a.name, a.label, a.level]),
    [['006037', 'Los Angeles County', 'Child Abduction', 3]])

  const bushfire = readCapAlert(fixture('australia.cap'))
  t.match(bushfire, {
    id: 'webmaster@rfs.nsw.gov.au,tag:www.rfs.nsw.gov.au2011-10-06:40184',
    issuedBy: 'NSW Rural Fire Service'
  }, 'a cap: prefix on every element')
  t.equal(bushfire.areas[0]?.level, 1, 'Minor')
})

t.test('an update belongs to the alert its first reference names', async (t) => {
  const canada = readCapAlert(fixture('canada.cap'))
  t.equal(all(readXml(fixture('canada.cap')), 'info').length, 2, 'two infos, en-CA and fr-CA')
  t.match(canada, {
    infoType: 'correction', title: 'severe thunderstorm watch', issuedBy: 'Environment Canada',
    id: 'cap@ec.gc.ca,2.49.0.1.124.6bddbc91.2012',
    eventKey: 'cap@ec.gc.ca,2.49.0.1.124.a3f342a4.2012'
  }, 'no Japanese info: the first one')
  t.equal(canada.incidentKey, canada.eventKey)
  const windsor = canada.areas.find((a) => a.code === '3537001')
  t.equal(windsor?.name, 'Windsor - Leamington - Essex County')

  const tsunami = readCapAlert(fixture('wcatwc-warning.cap'))
  t.match(tsunami, {
    infoType: 'correction', eventKey: 'PAAQ,PAAQ-1-lqw6d6', type: 'Tsunami Warning'
  })
  t.equal(tsunami.areas[0]?.level, 4, 'Extreme')
})

t.test('an ISO-8859-1 alert is decoded by its prolog', async (t) => {
  const quake = readCapAlert(fixture('earthquake-iso8859-1.cap'))
  t.equal(quake.areas.length, 1)
  t.match(quake.areas[0]?.name, /á/)
  t.equal(quake.areas[0]?.code, quake.areas[0]?.name,
    'no geocode: the area is named by its areaDesc')
  t.equal(quake.areas[0]?.level, 0, 'severity Unknown is below every rule')
})

t.test('a Japanese alert is read in its Japanese info; its cancel names its event', async (t) => {
  const fire = readCapAlert(fixture('matsuyama-ja.cap'))
  t.match(fire, {
    id: 'bousai@fire.matsuyama.example.jp,MFD-2026-0042',
    eventKey: 'bousai@fire.matsuyama.example.jp,MFD-2026-0042',
    type: '林野火災', title: '林野火災発生　東部地区に避難指示', issuedBy: '松山市消防局', status: 'actual'
  })
  t.equal(fire.headline, '松山市東部の山林で火災が発生し、延焼しています。\n東部地区の住民は直ちに避難してください。\n' +
    '煙を吸わないよう、風上の避難所へ移動してください。')
  t.same(fire.areas, [
    { table: 'cap', code: '382019', name: '松山市', label: '林野火災', level: 3, change: 'new' },
    { table: 'cap', code: '松山市東部地区', name: '松山市東部地区', label: '林野火災', level: 3, change: 'new' }
  ])

  const cancel = readCapAlert(fixture('matsuyama-ja-cancel.cap'))
  t.match(cancel, {
    infoType: 'cancel', eventKey: fire.eventKey,
    id: 'bousai@fire.matsuyama.example.jp,MFD-2026-0043'
  })
  t.same(cancel.areas.map((a) => [a.level, a.change]), [[0, 'lifted']])

  const drill = readCapAlert(text('matsuyama-ja.cap').replace('<status>Actual', '<status>Exercise'))
  t.equal(drill.status, 'drill')
  for (const status of ['Test', 'System', 'Draft']) {
    const alert = text('matsuyama-ja.cap').replace('<status>Actual', `<status>${status}`)
    t.equal(readCapAlert(alert).status, 'test', status)
  }
  const error = text('matsuyama-ja-cancel.cap').replace('<msgType>Cancel', '<msgType>Error')
  t.equal(readCapAlert(error).infoType, 'cancel', 'Error withdraws like Cancel')
})

t.test('an invalid alert is refused, naming each problem', async (t) => {
  const missingScope = problemsOf(t, () => readCapAlert(fixture('invalid.cap')))
  t.same(missingScope, ['<scope> is missing'])
  t.throws(() => readCapAlert(fixture('invalid.cap')), { message: /not valid: <scope> is missing/ })

  const storm = text('thunderstorm.cap')
  const cases: Array<[string, string, RegExp]> = [
    ['an Ack', storm.replace('<msgType>Alert', '<msgType>Ack'), /Ack acknowledges/],
    ['a Cancel without references',
      storm.replace('<msgType>Alert', '<msgType>Cancel'), /needs <references>/],
    ['an unknown status',
      storm.replace('<status>Actual', '<status>constructor'), /constructor is not a CAP status/],
    ['an unknown scope',
      storm.replace('<scope>Public', '<scope>Everyone'), /Everyone is not a CAP scope/],
    ['no date',
      storm.replace('2003-06-17T14:57:00-07:00</sent>', 'yesterday</sent>'), /yesterday is not a/],
    ['a comma in the identifier',
      storm.replace('KSTO1055887203', 'KSTO,1'), /identifier> holds a space or a comma/],
    ['a broken reference',
      storm.replace('<scope>', '<references>KSTO,1</references><scope>'), /is not sender,identifier/],
    ['an info without severity',
      storm.replace('<severity>Severe</severity>', ''), /^info 1: <severity> is missing$/],
    ['an area without areaDesc',
      storm.replace(/<areaDesc>[^<]*<\/areaDesc>/, ''), /^info 1, area 1: <areaDesc> is missing$/],
    ['another root',
      '<alarm xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>', /<alarm>, not a CAP <alert>/],
    ['no CAP namespace',
      storm.replace('urn:oasis:names:tc:emergency:cap:1.2', 'urn:x:alert'), /not in a CAP namespace/]
  ]
  for (const [name, document, problem] of cases) {
    const problems = problemsOf(t, () => readCapAlert(document))
    t.ok(problems.some((p) => problem.test(p)), `${name}: ${problems.join('; ')}`)
  }
  const v11 = storm.replace('cap:1.2', 'cap:1.1')
  t.equal(readCapAlert(v11).type, 'SEVERE THUNDERSTORM', 'CAP 1.1 is read too')
})

t.test('the external-entity attacks are refused and nothing is fetched', async (t) => {
  const { origin, requests } = await countingServer(t)
  const local = (name: string): string =>
    text(name).replaceAll('localhost:8080', origin).replaceAll('googleusercontent.com', origin)
  t.match(local('xee.cap'), origin)
  t.throws(() => readCapAlert(local('xee.cap')), { code: 'MIMAMORI_XML_REFUSED' })
  t.throws(() => readCapAlert(Buffer.from(local('xee.cap'))), { code: 'MIMAMORI_XML_REFUSED' })
  t.throws(() => readCapFeed(local('xee.atom')), { code: 'MIMAMORI_XML_REFUSED' })
  t.throws(() => readCapAlert('<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>'),
    { code: 'MIMAMORI_XML_REFUSED' }, 'broken XML')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(requests(), 0, 'the counting server was never asked')
})

t.test('an Atom feed gives its entries with the alerts it embeds', async (t) => {
  const entries = readCapFeed(fixture('weather.atom'))
  t.equal(entries.length, 1)
  const [entry] = entries
  const url = 'http://www.weather.gov/alerts-beta/wwacapget.php' +
    '?x=DC20120829202900LWXAirQualityAlertLWX20120831040000DC'
  t.match(entry, { id: url, updated: '2012-08-29T16:29:00-04:00', link: url })
  t.match(entry?.alert, {
    source: 'cap', type: 'Flash Flood Watch', infoType: 'issue', status: 'actual'
  })
  t.match(entry?.alert?.id, /^w-nws\.webmaster@noaa\.gov,/)
  t.same(entry?.alert?.areas.map((a) => a.code), ['030049', 'MTZ014'])
})

t.test('a feed entry links its alert or carries it escaped; a bad one is reported', async (t) => {
  const escaped = text('matsuyama-ja.cap').replace(/^<\?xml[^>]*>/, '')
    .replaceAll('&', '&amp;').replaceAll('<', '&lt;')
  const feed = `<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>urn:feed</id><updated>2026-07-01T05:10:00Z</updated>
  <entry><id>urn:linked</id><updated>2026-07-01T05:06:00Z</updated>
    <link rel="alternate" type="text/html" href="https://example.jp/alert.html"/>
    <link rel="related" type="application/cap+xml" href="https://example.jp/alert.cap"/>
    <content type="html">&lt;p&gt;see the link&lt;/p&gt;</content></entry>
  <entry><id>urn:escaped</id><updated>2026-07-01T05:05:00Z</updated>
    <content type="text">${escaped}</content></entry>
  <entry><id>urn:bad</id><updated>2026-07-01T05:04:00Z</updated>
    <content type="text">${escaped.replace('&lt;scope>Public&lt;/scope>', '')}</content></entry>
</feed>`
  const [linked, inline, bad] = readCapFeed(feed)
  t.same(linked, {
    id: 'urn:linked', updated: '2026-07-01T05:06:00Z', link: 'https://example.jp/alert.cap'
  }, 'the CAP link is preferred; HTML content is no alert')
  t.equal(inline?.alert?.type, '林野火災')
  t.equal(bad?.alert, undefined)
  t.match(bad?.refused, /^MIMAMORI_CAP_INVALID: .*<scope> is missing/)
  t.throws(() => readCapFeed(fixture('thunderstorm.cap')),
    { code: 'MIMAMORI_XML_REFUSED', message: /not an Atom feed/ })
})
