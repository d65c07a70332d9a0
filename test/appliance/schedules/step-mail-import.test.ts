import t, { type Test } from 'tap'
import iconv from 'iconv-lite'
import { openStore } from '../../../appliance/store/store.js'
import { Directory } from '../../../appliance/directory.js'
import { createSampleCity } from '../../../ops/sample-city.js'
import { listEntries } from '../../../appliance/schedules/step-mail-calendar.js'
import { importStepMailCsv } from '../../../appliance/schedules/step-mail-import.js'

async function directory (t: Test): Promise<Directory> {
  const { store, vault } = openStore(t.testdir())
  t.teardown(async () => { await store.close() })
  const dir = new Directory(store, vault)
  dir.ensureDefaultTopics()
  createSampleCity(dir)
  return dir
}

const CALENDAR = [
  '月齢,日,件名,本文,トピック',
  '－３,,妊娠7か月のあなたへ,両親学級のご案内です。,',
  '0,-7,もうすぐ出産予定日です,"入院の準備は\nできていますか。",子育て情報',
  '1,,1か月健診,1か月健診を受けましょう。,なし',
  '4,0,4か月児健診,"会場：保健センター",child-rearing'
].join('\r\n')

t.test('a calendar saved from Excel as Shift_JIS imports with Japanese headers', async (t) => {
  const dir = await directory(t)
  const report = importStepMailCsv(dir, 'matsuyama', iconv.encode(CALENDAR, 'cp932'), { createdBy: 'cli' })
  t.match(report, { encoding: 'cp932', added: 4, skipped: 0, errors: [] })
  const entries = listEntries(dir.store)
  t.same(entries.map((e) => [e.month, e.day, e.topic]), [
    [-3, 0, 'child-rearing'], [0, -7, 'child-rearing'], [1, 0, null], [4, 0, 'child-rearing']
  ])
  t.equal(entries[1]?.body, '入院の準備は\nできていますか。')

  const again = importStepMailCsv(dir, 'matsuyama', Buffer.from(CALENDAR), { createdBy: 'cli' })
  t.match(again, { encoding: 'utf-8', added: 0, skipped: 4 }, 'importing the same calendar twice adds nothing')
})

t.test('one bad row imports nothing and names every problem by line', async (t) => {
  const dir = await directory(t)
  const csv = [
    'month,day,subject,body,topic',
    '1,0,1か月,本文,',
    '300,0,遠すぎる,本文,',
    'abc,0,読めない,本文,',
    '2,0,,本文,',
    '3,0,トピック違い,本文,nope'
  ].join('\n')
  const report = importStepMailCsv(dir, 'matsuyama', Buffer.from(csv), { createdBy: 'cli' })
  t.same(report.errors.map((e) => e.line), [3, 4, 5, 6])
  t.match(report.errors[3], { problem: 'no topic "nope"' })
  t.equal(report.added, 0)
  t.same(listEntries(dir.store), [])

  const dry = importStepMailCsv(dir, 'matsuyama', Buffer.from(csv.split('\n').slice(0, 2).join('\n')), { createdBy: 'cli', dryRun: true })
  t.match(dry, { dryRun: true, added: 1 })
  t.same(listEntries(dir.store), [], 'a dry run stores nothing')
})

t.test('a file without the needed columns or for an unknown organisation is refused', async (t) => {
  const dir = await directory(t)
  t.throws(() => importStepMailCsv(dir, 'matsuyama', Buffer.from('件名,本文\nx,y\n'), { createdBy: 'cli' }),
    { code: 'MIMAMORI_CSV_UNREADABLE', details: { problem: 'no-column' } })
  t.throws(() => importStepMailCsv(dir, 'nowhere', Buffer.from(CALENDAR), { createdBy: 'cli' }), { code: 'MIMAMORI_NOT_FOUND' })
  t.throws(() => importStepMailCsv(dir, 'matsuyama', Buffer.from(''), { createdBy: 'cli' }), { code: 'MIMAMORI_CSV_UNREADABLE' })
})
