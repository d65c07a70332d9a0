import t from 'tap'
import { readFileSync } from 'node:fs'
import { readAtomFeed } from '../../../appliance/feeds/atom-feed.js'

const feed = (file: string): Buffer =>
  readFileSync(new URL(`../../fixtures/jma-xml/feeds/${file}`, import.meta.url))

t.test('the current extra.xml format: ids kept as given, links, offices, headlines', async (t) => {
  const atom = readAtomFeed(feed('extra_20240725T141650JST.xml'))
  t.equal(atom.updated, '2024-07-25T14:16:50+09:00')
  t.equal(atom.entries.length, 350)
  t.same(atom.entries[0], {
    id: 'https://www.data.jma.go.jp/developer/xml/data/20240725051641_0_VPWW53_260000.xml#r1',
    title: '気象特別警報・警報・注意報',
    updated: '2024-07-25T05:16:40Z',
    link: 'https://www.data.jma.go.jp/developer/xml/data/20240725051641_0_VPWW53_260000.xml',
    author: '京都地方気象台',
    content: '【京都府気象警報・注意報】北部では、２５日夜のはじめ頃まで低い土地の浸水や高潮に注意してください。' +
      '京都府では、２５日夜遅くまで竜巻などの激しい突風や落雷に注意してください。'
  })
  t.ok(atom.entries.every((e) => e.id.endsWith('#r1') && e.link.startsWith('https://')))
  t.equal(new Set(atom.entries.map((e) => e.id)).size, 350, 'ids are unique')
  t.equal(atom.entries.filter((e) => e.title === '土砂災害警戒情報').length, 14)
})

t.test('the pre-2021 eqvol.xml format: urn:uuid ids and http:// links to data/<uuid>.xml', async (t) => {
  const atom = readAtomFeed(feed('eqvol_20200725T230301JST.xml'))
  t.equal(atom.updated, '2020-07-25T23:03:01+09:00')
  t.equal(atom.entries.length, 23)
  const first = atom.entries[0]
  t.equal(first?.id, 'urn:uuid:0341a170-82bb-32bd-88a9-a8d18596752c')
  t.equal(first?.link,
    'http://www.data.jma.go.jp/developer/xml/data/0341a170-82bb-32bd-88a9-a8d18596752c.xml')
  t.equal(first?.author, '気象庁地震火山部')
  t.equal(first?.title, '降灰予報（定時）')
  const quakes = atom.entries.filter((e) => /^震/.test(e.title)).map((e) => e.title)
  t.same(quakes.sort(), ['震度速報', '震源に関する情報', '震源・震度に関する情報', '震源・震度に関する情報'].sort())
})

t.test('a document that is no Atom feed, or unsafe, is refused', async (t) => {
  t.throws(() => readAtomFeed('<Report><Control/></Report>'),
    { code: 'MIMAMORI_XML_REFUSED', message: /not an Atom feed/ })
  t.throws(() => readAtomFeed('<feed><entry>'), { code: 'MIMAMORI_XML_REFUSED' })
  const xee = '<!DOCTYPE feed [<!ENTITY e SYSTEM "file:///etc/passwd">]><feed>&e;</feed>'
  t.throws(() => readAtomFeed(xee), { code: 'MIMAMORI_XML_REFUSED', message: /DTD/ })
  const empty = '<feed xmlns="http://www.w3.org/2005/Atom"><updated>x</updated></feed>'
  t.same(readAtomFeed(empty).entries, [], 'an empty feed has no entries')
})

t.test('an entry link marked rel="alternate" wins over others', async (t) => {
  const atom = readAtomFeed('<feed><entry><id>a</id><link rel="related" href="https://x/r"/>' +
    '<link rel="alternate" href="https://x/a.xml"/></entry></feed>')
  t.equal(atom.entries[0]?.link, 'https://x/a.xml')
})
