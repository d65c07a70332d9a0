import t from 'tap'
import { readFileSync } from 'node:fs'
import { readJmaTelegram } from '../../../appliance/feeds/jma-telegram.js'
import type { HazardArea, HazardEvent } from '../../../appliance/feeds/hazard-event.js'

const sample = (file: string): Buffer =>
  readFileSync(new URL(`../../fixtures/jma-xml/official-samples/${file}`, import.meta.url))
const handMade = (file: string): Buffer =>
  readFileSync(new URL(`../../fixtures/jma-xml/hand-made/${file}`, import.meta.url))

function area (event: HazardEvent, code: string): HazardArea {
  const found = event.areas.find((a) => a.code === code)
  if (found === undefined) throw new Error(`no area ${code} in ${event.type}`)
  return found
}

const at = (event: HazardEvent, code: string): [string, number, string] => {
  const a = area(event, code)
  return [a.label, a.level, a.change]
}

t.test('VPWW53 大雨特別警報 for Tokyo: areas of every Warning type, the highest kind decides', async (t) => {
  const event = readJmaTelegram(sample('15_14_01_170216_VPWW53.xml'))
  t.match(event, {
    source: 'jma', kind: 'weather-warning', type: 'VPWW53', status: 'actual', infoType: 'issue',
    title: '東京都気象警報・注意報', issuedBy: '気象庁予報部', reportedAt: '2017-01-26T17:20:00+09:00',
    eventKey: 'jma:気象警報・注意報:東京都気象警報・注意報'
  })
  t.match(event.headline, /^【特別警報（大雨）】２３区西部、多摩西部に特別警報/)
  t.same(at(event, '130000'), ['大雨特別警報・洪水警報', 5, 'new'], '府県予報区')
  t.same(at(event, '130014'), ['大雨特別警報・洪水警報', 5, 'new'], '一次細分区域 多摩西部')
  t.same(at(event, '1310400'), ['大雨特別警報', 5, 'new'], '市町村 新宿区')
  t.equal(area(event, '1310400').table, 'jma-weather')
  t.same(at(event, '130020'), ['発表警報・注意報はなし', 0, 'none'], '伊豆諸島北部')
  t.equal(event.areas.length, 76)
})

t.test('VPWW53 with special warnings going on: a new lower kind is not new there', async (t) => {
  const event = readJmaTelegram(sample('15_12_02_161130_VPWW53.xml'))
  t.same(at(event, '1342100'), [
    '大雨特別警報・暴風特別警報・波浪特別警報・高潮特別警報・洪水警報・雷注意報', 5, 'continued'
  ], '小笠原村 keeps its special warnings')
  t.same(at(event, '1310100'), ['大雨警報・洪水警報・雷注意報', 3, 'new'], '千代田区 gets 大雨警報')
  t.same(at(event, '1310700'), ['雷注意報', 2, 'continued'], '墨田区')
})

t.test('VPWW54 高潮警報 for Tokushima', async (t) => {
  const event = readJmaTelegram(sample('15_15_01_220314_VPWW54.xml'))
  t.match(event, { type: 'VPWW54', kind: 'weather-warning', issuedBy: '徳島地方気象台' })
  t.equal(event.headline, '北部では、１４日夜のはじめ頃まで高潮に警戒してください。')
  t.same(at(event, '360000'), ['高潮警報', 3, 'new'])
  t.same(at(event, '360011'), ['高潮警報', 3, 'new'])
  t.same(at(event, '3620100'), ['発表警報・注意報はなし', 0, 'none'], '徳島市')
  t.equal(event.eventKey, 'jma:気象警報・注意報:徳島県気象警報・注意報')
})

t.test('a hand-made VPWW54 with the 2026 危険警報 for 松山市 reads as level 4', async (t) => {
  const event = readJmaTelegram(handMade('VPWW54_matsuyama_kiken.xml'))
  t.match(event, { type: 'VPWW54', status: 'actual', infoType: 'issue', issuedBy: '松山地方気象台' })
  t.same(at(event, '3820100'), ['大雨危険警報・洪水警報', 4, 'new'], '松山市: the lifted 雷注意報 is not in force')
  t.same(at(event, '380010'), ['大雨危険警報', 4, 'new'], '中予')
  t.same(at(event, '380000'), ['大雨危険警報・洪水警報', 4, 'new'], '愛媛県')
  t.same(at(event, '3820200'), ['大雨警報', 3, 'continued'], 'a step down is no news')
  t.same(at(event, '3821000'), ['大雨注意報解除', 0, 'lifted'])
  t.same(at(event, '3821500'), ['発表警報・注意報はなし', 0, 'none'])
})

t.test('VXWW50 土砂災害警戒情報: per municipality, 警戒 is level 4', async (t) => {
  const event = readJmaTelegram(sample('17_01_01_190529_VXWW50.xml'))
  t.match(event, {
    type: 'VXWW50', kind: 'landslide', status: 'actual', infoType: 'issue',
    issuedBy: '福岡県 福岡管区気象台', eventKey: 'jma:土砂災害警戒情報:福岡県土砂災害警戒情報'
  })
  t.match(event.headline, /^＜概況＞/)
  t.same(at(event, '4010000'), ['土砂災害警戒情報', 4, 'continued'], '北九州市')
  t.same(at(event, '4013000'), ['土砂災害警戒情報解除', 0, 'lifted'], '福岡市')
  t.same(at(event, '4020700'), ['なし', 0, 'none'], '柳川市')
  t.equal(area(event, '4010000').table, 'jma-weather')
  t.equal(event.areas.length, 60)
})

t.test('VXSE51 震度速報: regions with their highest intensity', async (t) => {
  const event = readJmaTelegram(sample('32-35_01_01_100806_VXSE51.xml'))
  t.match(event, {
    type: 'VXSE51', kind: 'earthquake', status: 'actual', infoType: 'issue',
    eventKey: 'jma:震度速報:20090811050711', incidentKey: 'jma:20090811050711'
  })
  t.match(event.headline, /強い揺れを感じました/)
  t.same(at(event, '442'), ['震度6弱', 7, 'new'], '静岡県中部')
  t.same(at(event, '440'), ['震度5強', 6, 'new'], '静岡県伊豆')
  t.same(at(event, '350'), ['震度4', 4, 'new'], '東京都２３区')
  t.equal(area(event, '442').table, 'jma-seismic')
})

t.test('VXSE52 震源に関する情報 is a drill with a headline and no areas', async (t) => {
  const event = readJmaTelegram(sample('32-35_01_02_240613_VXSE52.xml'))
  t.match(event, { type: 'VXSE52', kind: 'earthquake', status: 'drill', infoType: 'issue' })
  t.equal(event.headline, '１日１３時４５分ころ、地震がありました。')
  t.same(event.areas, [])
})

t.test('VXSE53 震源・震度情報 and its cancellation share the event key', async (t) => {
  const issued = readJmaTelegram(sample('32-35_04_04_240613_VXSE53.xml'))
  t.match(issued,
    { type: 'VXSE53', kind: 'earthquake', status: 'actual', infoType: 'issue', issuedBy: '気象庁' })
  t.same(at(issued, '771'), ['震度4', 4, 'new'], '鹿児島県大隅')
  t.same(at(issued, '770'), ['震度3', 3, 'new'], '鹿児島県薩摩')

  const cancel = readJmaTelegram(sample('32-35_06_06_100915_VXSE53.xml'))
  t.match(cancel, { type: 'VXSE53', status: 'actual', infoType: 'cancel', headline: '震源・震度情報を取り消します。' })
  t.same(cancel.areas, [])
  const sameQuake = readJmaTelegram(sample('32-35_04_04_240613_VXSE53.xml').toString('utf8')
    .replace('<EventID>20100125161517</EventID>', '<EventID>20080614084350</EventID>'))
  t.equal(cancel.eventKey, sameQuake.eventKey, 'the 取消 names the VXSE53 of its EventID')
  t.equal(cancel.eventKey, 'jma:地震情報:20080614084350')
  t.not(cancel.id, sameQuake.id, 'but each telegram has its own id')
  t.not(cancel.eventKey, issued.eventKey)
})

t.test('VXSE43 緊急地震速報（警報）: forecast regions, 621 愛媛県中予 among them', async (t) => {
  const event = readJmaTelegram(sample('37_01_01_240613_VXSE43.xml'))
  t.match(event, { type: 'VXSE43', kind: 'eew', status: 'actual', infoType: 'issue' })
  t.equal(event.headline, '豊後水道で地震　四国　九州　中国で強い揺れ')
  t.same(at(event, '621'), ['緊急地震速報（警報） 予想震度4', 1, 'new'], 'under the warning counts as 1')
  t.equal(area(event, '621').table, 'jma-seismic')
  t.same(at(event, '622'), ['緊急地震速報（警報） 予想震度5弱', 5, 'new'], '愛媛県南予 at 5弱')
  t.same(at(event, '592'), ['緊急地震速報（警報） 予想震度3〜4', 1, 'new'])
  t.equal(event.areas.length, 9)
})

t.test('VTSE41 津波警報・注意報・予報: forecast regions graded 1 to 4', async (t) => {
  const event = readJmaTelegram(sample('32-39_11_02_250206_VTSE41.xml'))
  t.match(event, {
    type: 'VTSE41', kind: 'tsunami', status: 'actual', infoType: 'issue', incidentKey: 'jma:20110311144640'
  })
  t.match(event.headline, /^東日本大震災クラスの津波が来襲します。/)
  t.same(at(event, '210'), ['大津波警報：発表', 4, 'new'], '岩手県')
  t.same(at(event, '101'), ['津波警報', 3, 'new'], '北海道太平洋沿岸中部')
  t.same(at(event, '600'), ['津波予報（若干の海面変動）', 1, 'new'], '愛媛県宇和海沿岸')
  t.equal(area(event, '600').table, 'jma-tsunami')
  t.ok(event.areas.some((a) => a.level === 2 && a.label === '津波注意報'))
})

t.test('VTSE51 津波情報 reads its forecast regions too; a region already warned continues', async (t) => {
  const event = readJmaTelegram(sample('32-39_11_03_250206_VTSE51.xml'))
  t.match(event, { type: 'VTSE51', kind: 'tsunami', eventKey: 'jma:津波情報:20110311144640' })
  t.same(at(event, '600'), ['津波予報（若干の海面変動）', 1, 'new'])
  const later = readJmaTelegram(sample('32-39_11_03_250206_VTSE51.xml').toString('utf8')
    .replaceAll('<LastKind><Name>津波なし</Name><Code>00</Code></LastKind>',
      '<LastKind><Name>津波警報</Name><Code>51</Code></LastKind>'))
  t.same(at(later, '101'), ['津波警報', 3, 'continued'])
  t.same(at(later, '210'), ['大津波警報：発表', 4, 'new'], 'a higher grade than before is new')
  t.same(at(later, '600'), ['津波予報（若干の海面変動）', 1, 'continued'], 'a step down')
})

t.test('VTSE52 is a drill read for its head only', async (t) => {
  const event = readJmaTelegram(sample('32-39_12_05_250206_VTSE52.xml'))
  t.match(event, { type: 'VTSE52', kind: 'tsunami', status: 'drill', infoType: 'issue' })
  t.match(event.headline, /^＊＊＊これは訓練です＊＊＊/)
  t.same(event.areas, [])
})

t.test('telegrams the rules do not act on come with their type and headline and no areas', async (t) => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['18_03_01_190412_VPOA50.xml', 'VPOA50', 'weather-warning', /記録的短時間大雨/],
    ['19_06_01_140425_VPHW51.xml', 'VPHW51', 'weather-warning', /^【目撃情報あり】/],
    ['16_02_02_220728_VXKOii.xml', 'VXKOii', 'weather-warning', /六角川/],
    ['62_01_01_130412_VPNO50.xml', 'VPNO50', 'weather-warning', /^【特別警報（大雨）】奈良県/]
  ]
  for (const [file, type, kind, headline] of cases) {
    const event = readJmaTelegram(sample(file))
    t.match(event, { type, kind, status: 'actual', infoType: 'issue', source: 'jma' }, file)
    t.match(event.headline, headline, file)
    t.same(event.areas, [], `${file} has no areas`)
  }
})

t.test('ids are unique per telegram across all samples', async (t) => {
  const files = ['15_12_02_161130_VPWW53.xml', '15_14_01_170216_VPWW53.xml',
    '15_15_01_220314_VPWW54.xml', '32-35_04_04_240613_VXSE53.xml', '32-35_06_06_100915_VXSE53.xml',
    '32-39_11_02_250206_VTSE41.xml', '32-39_11_03_250206_VTSE51.xml', '32-39_12_05_250206_VTSE52.xml',
    '37_01_01_240613_VXSE43.xml']
  const ids = files.map((f) => readJmaTelegram(sample(f)).id)
  t.equal(new Set(ids).size, files.length)
})

t.test('a test telegram, a correction and a late one map as the rules expect', async (t) => {
  const text = sample('32-35_04_04_240613_VXSE53.xml').toString('utf8')
  t.equal(readJmaTelegram(text.replace('<Status>通常</Status>', '<Status>試験</Status>')).status, 'test')
  const corrected = readJmaTelegram(text.replace('<InfoType>発表</InfoType>', '<InfoType>訂正</InfoType>'))
  t.equal(corrected.infoType, 'correction')
  t.equal(corrected.areas.length, 19, 'a correction carries its areas')
  const late = readJmaTelegram(text.replace('<InfoType>発表</InfoType>', '<InfoType>遅延</InfoType>'))
  t.equal(late.infoType, 'issue')
})

t.test('a malformed or foreign document is refused with a clear reason', async (t) => {
  const vxse52 = sample('32-35_01_02_240613_VXSE52.xml').toString('utf8')
  const cases: Array<[string, string, RegExp]> = [
    ['truncated', vxse52.slice(0, 900), /not well-formed/],
    ['an Atom feed', '<feed xmlns="http://www.w3.org/2005/Atom"><title/></feed>', /not a JMA Report/],
    ['no status', vxse52.replace('<Status>訓練</Status>', ''), /Control\/Status/],
    ['unknown status', vxse52.replace('<Status>訓練</Status>', '<Status>本番</Status>'), /Control\/Status/],
    ['no InfoType', vxse52.replace('<InfoType>発表</InfoType>', ''), /Head\/InfoType/],
    ['no InfoKind', vxse52.replace('<InfoKind>震源速報</InfoKind>', ''), /InfoKind/],
    ['a DTD', vxse52.replace('<Report', '<!DOCTYPE Report [<!ENTITY x "y">]><Report'), /DTD or entities/]
  ]
  for (const [name, text, reason] of cases) {
    t.throws(() => readJmaTelegram(text), { code: 'MIMAMORI_XML_REFUSED', message: reason }, name)
  }
})

t.test('a region whose strong shaking is not yet reported (震度５弱以上未入電) counts as 5弱', async (t) => {
  const text = sample('32-35_04_04_240613_VXSE53.xml').toString('utf8')
    .replace('<Code>771</Code><MaxInt>4</MaxInt>', '<Code>771</Code>')
    .replace('<Code>4620300</Code><MaxInt>4</MaxInt>', '<Code>4620300</Code><Condition>震度５弱以上未入電</Condition>')
    .replace('<Code>776</Code><MaxInt>4</MaxInt>', '<Code>776</Code>')
  const event = readJmaTelegram(text)
  t.same(at(event, '771'), ['震度5弱以上未入電', 5, 'new'])
  t.notOk(event.areas.some((a) => a.code === '776'), 'a region with neither is left out')
})
