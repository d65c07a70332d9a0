import t from 'tap'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { once } from 'node:events'
import iconv from 'iconv-lite'
import { readXml, first, all, textAt } from '../../../appliance/feeds/xml-document.js'

const fixture = (path: string): Buffer => readFileSync(new URL(`../../fixtures/${path}`, import.meta.url))

t.test('a JMA telegram reads into a tree with namespaces dropped and attributes kept', async (t) => {
  const report = readXml(fixture('jma-xml/official-samples/32-35_01_01_100806_VXSE51.xml'))
  t.equal(report.name, 'Report')
  t.equal(textAt(report, 'Control', 'Status'), '通常')
  t.equal(textAt(report, 'Head', 'InfoType'), '発表')
  const observation = first(report, 'Body', 'Intensity', 'Observation')
  t.equal(textAt(observation, 'MaxInt'), '6-')
  t.same(all(observation, 'Pref').map((p) => textAt(p, 'Name')).slice(0, 2), ['静岡県', '千葉県'])
  t.equal(all(first(observation, 'CodeDefine'), 'Type')[0]?.attributes.xpath, 'Pref/Code')
})

t.test('a CAP alert declared ISO-8859-1 is decoded by its prolog', async (t) => {
  const alert = readXml(fixture('cap/earthquake-iso8859-1.cap'))
  t.match(textAt(alert, 'info', 'area', 'areaDesc'), /á/)
})

t.test('standard and numeric character references are decoded', async (t) => {
  const doc = readXml('<a><b x="1 &amp; 2">&lt;警報&gt; &#x5927;&#38632;</b></a>')
  t.equal(textAt(doc, 'b'), '<警報> 大雨')
  t.equal(first(doc, 'b')?.attributes.x, '1 & 2')
  const sjis = iconv.encode('<?xml version="1.0" encoding="Shift_JIS"?><a>松山市</a>', 'Shift_JIS')
  t.equal(readXml(sjis).text, '松山市', 'a Shift_JIS prolog is honoured')
})

t.test('external entities are refused and never fetched', async (t) => {
  let fetched = 0
  const server = createServer((_req, res) => { fetched++; res.end('<!ENTITY x "boom">') })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const port = (server.address() as { port: number }).port

  for (const file of ['cap/xee.cap', 'cap/xee.atom']) {
    const text = fixture(file).toString('utf8').replaceAll('localhost:8080', `127.0.0.1:${port}`)
    t.throws(() => readXml(text), { code: 'MIMAMORI_XML_REFUSED', message: /DTD or entities/ }, file)
  }
  const laughs = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' +
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>'
  t.throws(() => readXml(laughs), { code: 'MIMAMORI_XML_REFUSED' }, 'entity expansion is refused')
  t.throws(() => readXml('<a><!doctype x></a>'), { code: 'MIMAMORI_XML_REFUSED' }, 'in any case')
  t.equal(fetched, 0, 'nothing was fetched')
})

t.test('broken, empty, oversized and oddly encoded documents get a clear refusal', async (t) => {
  const cases: Array<[string, Buffer | string, RegExp]> = [
    ['unclosed', '<a><b></a>', /not well-formed/],
    ['empty', '', /no root element/],
    ['text only', 'just text', /no root element|not well-formed/],
    ['unknown encoding', Buffer.from('<?xml version="1.0" encoding="x-klingon"?><a/>'), /encoding x-klingon/],
    ['too large', Buffer.alloc(2048, 0x20), /larger than 1024 bytes/]
  ]
  for (const [name, input, message] of cases) {
    t.throws(() => readXml(input, 1024), { code: 'MIMAMORI_XML_REFUSED', message }, name)
  }
})
