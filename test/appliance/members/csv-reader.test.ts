import { readFileSync } from 'node:fs'
import iconv from 'iconv-lite'
import t from 'tap'
import {
  decodeCsv, readMembersCsv, type CsvReadResult
} from '../../../appliance/members/csv-reader.js'
import { largeRoster, toCsv } from '../../fixtures/csv/make-roster.js'

const fixture = (name: string): Buffer =>
  readFileSync(new URL(`../../fixtures/csv/${name}`, import.meta.url))

const rowAt = (result: CsvReadResult, line: number) => {
  const row = result.rows.find((r) => r.line === line)
  if (row === undefined) throw new Error(`no row at line ${line}`)
  return row
}

// Thunderbird's import tests expect this contact from each of their samples.
const JOHN_DOE = { line: 2, name: 'John Doe', address: { canonical: 'johndoe@host.invalid' } }

// What every roster file (CP932, UTF-8 with BOM, UTF-16LE text) must give, by physical line.
const ROSTER_ROW_LINES = [2, 3, 4, 5, 6, 7, 8, 12, 15, 16, 17, 18, 19, 20]
const ROSTER_ERRORS = [
  { line: 11, code: 'duplicate-conflict' },
  { line: 13, code: 'bad-address' },
  { line: 14, code: 'missing-address' }
]

const ROSTERS: Array<[string, string, CsvReadResult['encoding'], ',' | '\t']> = [
  ['the Excel CP932 roster decodes with its Japanese names and CP932-only characters',
    'roster-cp932.csv', 'cp932', ','],
  ['the UTF-8 roster with a BOM reads the same as the CP932 one',
    'roster-utf8-bom.csv', 'utf-8-bom', ','],
  ['the roster saved as Excel Unicode text (UTF-16LE, TAB) reads the same',
    'roster-utf16le.txt', 'utf-16le', '\t']
]

for (const [name, file, encoding, delimiter] of ROSTERS) {
  t.test(name, async (t) => {
    const result = readMembersCsv(fixture(file))
    t.equal(result.encoding, encoding)
    t.equal(result.delimiter, delimiter)
    t.same(result.columns, {
      grade: '学年', className: '組', name: '氏名', address: 'メールアドレス', groups: 'グループ',
      language: '言語'
    })
    t.same(result.ignoredColumns, [])
    t.same(result.rows.map((r) => r.line), ROSTER_ROW_LINES)
    t.match(result.errors, ROSTER_ERRORS)
    t.equal(result.errors.length, ROSTER_ERRORS.length)
    t.same(result.duplicates, [{ line: 10, firstLine: 4 }])
    t.equal(result.totalRecords, 18)

    t.equal(rowAt(result, 2).name, '髙橋 一郎')
    t.equal(rowAt(result, 3).name, '山﨑 花子')
    t.same(rowAt(result, 3).groups, ['登校班1', '見守り隊'])
    t.equal(rowAt(result, 8).name, '伊藤 大輝 （祖母）')
    t.equal(rowAt(result, 18).name, 'ｻｲﾄｳ ﾊﾙｶ')
    t.equal(rowAt(result, 19).name, '㈱みどり交通 運行管理')
    t.same(rowAt(result, 16).groups, ['見守り隊~朝~'])
  })
}

t.test('bad roster rows are reported on their lines and good rows are kept', async (t) => {
  const result = readMembersCsv(fixture('roster-cp932.csv'))
  t.same(result.errors, [
    {
      line: 11,
      code: 'duplicate-conflict',
      reason: 'The address is already on line 2 in 1年 1組; this line puts it in 3年 2組, and an ' +
        'import cannot put one address in two classes, so this line was not imported.'
    },
    {
      line: 13,
      code: 'bad-address',
      reason: 'The mail address is not valid: "docomo" is not a valid mail domain.'
    },
    { line: 14, code: 'missing-address', reason: 'The line has no mail address.' }
  ])
  const { rows, duplicates, errors, totalRecords } = result
  t.equal(rows.length + duplicates.length + errors.length, totalRecords)
})

t.test('legacy carrier addresses are good rows and quoted and bare spellings merge', async (t) => {
  const result = readMembersCsv(fixture('roster-cp932.csv'))
  const twin = rowAt(result, 4)
  t.equal(twin.address.canonical, 'kenta..sato.@docomo.ne.jp')
  t.equal(twin.address.smtp, '"kenta..sato."@docomo.ne.jp')
  t.same(twin.groups, ['野球部', 'ダンス部'])
  t.equal(twin.name, '佐藤 健太')
  t.same(result.duplicates, [{ line: 10, firstLine: 4 }])
  t.equal(rowAt(result, 16).address.canonical, 'sho.yoshida.@ezweb.ne.jp')
  t.equal(rowAt(result, 17).address.smtp, '"mao..yamaguchi"@docomo.ne.jp')
})

t.test('addresses typed in full width are read as their ASCII spelling', async (t) => {
  const result = readMembersCsv(fixture('roster-cp932.csv'))
  t.equal(rowAt(result, 15).address.canonical, 'yuto.kato@ezweb.ne.jp')
  t.equal(rowAt(result, 20).address.canonical, 'ken-ito@au.com')
})

t.test('grade, class and language of the roster are normalised', async (t) => {
  const result = readMembersCsv(fixture('roster-cp932.csv'))
  t.match(rowAt(result, 5), { grade: '1年', className: '2組', language: 'en' })
  t.match(rowAt(result, 6), { grade: '2年', className: 'A組', language: 'vi' })
  t.match(rowAt(result, 12), { grade: '3年', className: '1組', language: 'ja' })
  t.match(rowAt(result, 16), { language: 'pt' })
  t.notOk('grade' in rowAt(result, 19), 'a row without a grade has no grade key')
})

t.test('grade and class spellings map to one form; others are kept as written', async (t) => {
  const cases: Array<[string, string, string, string]> = [
    ['1', '2', '1年', '2組'],
    ['１年生', '２組', '1年', '2組'],
    ['小1', '1クラス', '1年', '1組'],
    ['中学3年', 'b', '3年', 'B組'],
    ['一年', '三組', '1年', '3組'],
    ['第2学年', 'Ａ組', '2年', 'A組'],
    ['年長', 'ひまわり', '年長', 'ひまわり'],
    ['年少', 'ゆり組', '年少', 'ゆり組']
  ]
  const lines = cases.map(([grade, cls], i) => `${grade},${cls},p${i}@au.com`)
  const result = readMembersCsv(Buffer.from(['学年,組,email', ...lines].join('\n')))
  t.same(result.rows.map((r) => [r.grade, r.className]), cases.map(([, , g, c]) => [g, c]))
})

t.test('groups, topics, language and contact are read in all their spellings', async (t) => {
  const csv = [
    'E-Mail,Display Name,所属,配信カテゴリ,Lang,連絡先順位,備考',
    'a@au.com,Ａ,PTA;野球部|ＰＴＡ,不審者情報、学校休校,English,1,x',
    'b@au.com,B,"PTA, 図書委員",weather,pt-br,第２,',
    'c@au.com,C,,,,second,',
    'd@au.com,D,,,klingon-ish,,',
    'e@au.com,E,,,ja,3,'
  ].join('\r\n')
  const result = readMembersCsv(Buffer.from(csv))
  t.same(result.columns, {
    address: 'E-Mail', name: 'Display Name', groups: '所属', topics: '配信カテゴリ',
    language: 'Lang', contact: '連絡先順位'
  })
  t.same(result.ignoredColumns, ['備考'])
  t.match(result.rows[0], {
    name: 'Ａ', groups: ['PTA', '野球部'], topics: ['不審者情報', '学校休校'], language: 'en',
    contact: 'first'
  })
  t.match(result.rows[1], { groups: ['PTA', '図書委員'], language: 'pt-BR', contact: 'second' })
  t.match(result.rows[2], { contact: 'second' })
  t.match(result.errors, [{ line: 5, code: 'bad-language' }, { line: 6, code: 'bad-contact' }])
})

t.test('a broken quote costs only its own line and the lines after it are read', async (t) => {
  const result = readMembersCsv(fixture('broken-quote.csv'))
  t.equal(result.encoding, 'utf-8')
  t.same(result.rows.map((r) => r.line), [2, 5, 6, 8])
  t.equal(rowAt(result, 2).name, '山本 彩 （母）')
  t.same(rowAt(result, 6).groups, ['PTA', '図書委員'])
  t.match(result.errors, [{ line: 4, code: 'malformed-row', reason: /double quote/ }])
  t.equal(result.errors.length, 1)
  t.equal(result.totalRecords, 5)
})

t.test('a quote left open to the end of the file loses only its line', async (t) => {
  const csv = 'name,email\nA,a@au.com\n"B,b@au.com\nC,c@au.com\nD,d@au.com\n'
  const result = readMembersCsv(Buffer.from(csv))
  t.same(result.rows.map((r) => [r.line, r.name]), [[2, 'A'], [4, 'C'], [5, 'D']])
  t.match(result.errors, [{ line: 3, code: 'malformed-row' }])
})

t.test('line numbers stay right with a BOM, CRLF, blank lines and quoted breaks', async (t) => {
  const csv = '\ufeffname,email\r\n\r\n"A\r\nB\r\nC",a@au.com\r\n  \r\n,\r\nD,\r\n' +
    '"E\nF",e@au.com\r\n'
  const result = readMembersCsv(Buffer.from(csv))
  t.same(result.rows.map((r) => r.line), [3, 9])
  t.same(result.errors, [
    { line: 8, code: 'missing-address', reason: 'The line has no mail address.' }
  ])

  const mac = readMembersCsv(Buffer.from('name,email\rA,a@au.com\r\rB,b@au.com\r'))
  t.same(mac.rows.map((r) => r.line), [2, 4], 'old Mac line ends (CR) count too')
})

t.test('a quote left open across a long stretch is cut off and the file read on', async (t) => {
  const filler = Array.from({ length: 8000 }, (_, i) => `Filler ${i},f${i}@au.com`)
  const csv = ['name,email', '"A,a@au.com', ...filler].join('\n')
  const result = readMembersCsv(Buffer.from(csv))
  t.match(result.errors, [{ line: 2, code: 'malformed-row', reason: /never closed/ }])
  t.equal(result.rows.length, 8000)
  t.equal(result.rows[0]?.line, 3)
})

t.test('a file with more than 1,000 broken lines is refused as a whole', async (t) => {
  const broken = Array.from({ length: 1001 }, (_, i) => `"B${i},b${i}@au.com`)
  t.throws(() => readMembersCsv(Buffer.from(['name,email', ...broken].join('\n'))), {
    code: 'MIMAMORI_CSV_UNREADABLE', details: { problem: 'malformed' }
  })
})

t.test('a duplicate fills what the first line left empty and adds no empty keys', async (t) => {
  const csv = 'email,name,学年,組,topics\na@au.com,,,,weather\nA@AU.COM,,1,,不審者情報\n'
  const result = readMembersCsv(Buffer.from(csv))
  t.same(result.rows.map(({ address, ...rest }) => rest), [
    { line: 2, grade: '1年', groups: [], topics: ['weather', '不審者情報'] }
  ])
  t.same(Object.keys(result.rows[0] ?? {}).sort(), ['address', 'grade', 'groups', 'line', 'topics'])
  t.same(result.duplicates, [{ line: 3, firstLine: 2 }])
})

t.test('the example in docs/csv-import.md reads as documented', async (t) => {
  const csv = [
    '学年,組,氏名,メールアドレス,グループ,言語,備考',
    '1,1,髙橋　一郎,taro..takahashi.@docomo.ne.jp,PTA,日本語,',
    '１,２組,鈴木　美咲,misaki@au.com,野球部、PTA,英語,',
    '1,1,髙橋　花子,"""taro..takahashi.""@docomo.ne.jp",合唱部,,妹',
    '2,3,佐藤　健,ken@softbank,,ja,'
  ].join('\r\n') + '\r\n'
  const result = readMembersCsv(iconv.encode(csv, 'cp932'))
  t.match(result, {
    encoding: 'cp932',
    ignoredColumns: ['備考'],
    rows: [
      { line: 2, name: '髙橋 一郎', grade: '1年', className: '1組', groups: ['PTA', '合唱部'] },
      { line: 3, name: '鈴木 美咲', grade: '1年', className: '2組', groups: ['野球部', 'PTA'] }
    ],
    duplicates: [{ line: 4, firstLine: 2 }],
    errors: [{ line: 5, code: 'bad-address', reason: /"softbank" is not a valid mail domain/ }],
    totalRecords: 4
  })
  t.equal(result.rows.length, 2)
})

t.test('a title line above the header is skipped', async (t) => {
  const csv = '令和6年度 1年2組 名簿,,\n氏名,メールアドレス,学年\n山田 太郎,taro@au.com,1\n'
  const result = readMembersCsv(Buffer.from(csv))
  t.same(result.rows.map((r) => [r.line, r.name]), [[3, '山田 太郎']])
  t.equal(result.totalRecords, 1)
})

t.test('Thunderbird UTF-16 sample gives John Doe', async (t) => {
  const result = readMembersCsv(fixture('utf16_addressbook.csv'))
  t.equal(result.encoding, 'utf-16le')
  t.same(result.columns, { name: 'Display Name', address: 'Primary Email' })
  t.ok(result.ignoredColumns.includes('Secondary Email'))
  t.match(result.rows, [JOHN_DOE])
  t.equal(result.errors.length, 0)
})

t.test('Thunderbird Shift_JIS sample decodes and its Japanese address is refused', async (t) => {
  const input = fixture('shiftjis_addressbook.csv')
  const { text, encoding } = decodeCsv(input)
  t.equal(encoding, 'cp932')
  t.match(text.split('\n')[1], /^権兵衛,名無し,名無しの権兵衛,,名無しの権兵衛@host\.invalid,/)

  const result = readMembersCsv(input)
  t.equal(result.encoding, 'cp932')
  t.same(result.rows, [])
  t.match(result.errors, [{ line: 2, code: 'non-ascii-address', reason: /ASCII/ }])
})

t.test('Thunderbird basic and quoted samples read, an empty address is reported', async (t) => {
  const basic = readMembersCsv(fixture('basic_csv_addressbook.csv'))
  t.equal(basic.encoding, 'utf-8')
  t.match(basic.rows, [JOHN_DOE])

  const quote = readMembersCsv(fixture('quote.csv'))
  t.same(quote.rows, [])
  t.match(quote.errors, [{ line: 2, code: 'missing-address' }])
})

t.test('a comma header over TAB rows is read with both delimiters', async (t) => {
  const result = readMembersCsv(Buffer.from('name,email\nA\ta@au.com\nB\tb@au.com\n'))
  t.equal(result.delimiter, ',')
  t.same(result.rows.map((r) => [r.line, r.name, r.address.canonical]),
    [[2, 'A', 'a@au.com'], [3, 'B', 'b@au.com']])
})

t.test("Thunderbird's headerless tab_comma_mixed sample is refused as headerless", async (t) => {
  t.throws(() => readMembersCsv(fixture('tab_comma_mixed.csv')), {
    code: 'MIMAMORI_CSV_NO_ADDRESS_COLUMN',
    message: /found: 1, 1, 1, 1, 1@host\.invalid.*no header line/
  })
})

t.test('a file without an address column is refused, naming the headers found', async (t) => {
  const input = Buffer.from('氏名,電話番号\n山田 太郎,090-0000-0000\n')
  t.throws(() => readMembersCsv(input), {
    code: 'MIMAMORI_CSV_NO_ADDRESS_COLUMN',
    message: /found: 氏名, 電話番号/,
    details: { headers: ['氏名', '電話番号'] }
  })
})

t.test('header names match after NFKC, case, spaces, underscores and hyphens', async (t) => {
  for (const header of ['メール アドレス', 'Ｅ－ｍａｉｌ', 'primary_email', 'EMAIL', 'Mail Address']) {
    const result = readMembersCsv(Buffer.from(`${header}\na@au.com\n`))
    t.equal(result.columns.address, header, header)
  }
})

t.test('an empty, blank or BOM-only file is unreadable', async (t) => {
  for (const input of [Buffer.alloc(0), Buffer.from('\ufeff'), Buffer.from(' \r\n\r\n')]) {
    t.throws(() => readMembersCsv(input), {
      code: 'MIMAMORI_CSV_UNREADABLE', message: /empty|no text/
    })
  }
})

t.test('files that are not CSV text are unreadable with a reason', async (t) => {
  const xlsx = Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00])
  t.throws(() => readMembersCsv(xlsx), { code: 'MIMAMORI_CSV_UNREADABLE', message: /workbook/ })

  const binary = Buffer.from('email\n\0\0\0\0a@au.com\n')
  t.throws(() => readMembersCsv(binary), { code: 'MIMAMORI_CSV_UNREADABLE', message: /binary/ })

  const badBom = Buffer.from([0xef, 0xbb, 0xbf, 0x65, 0x0a, 0xff, 0x0a])
  t.throws(() => readMembersCsv(badBom), {
    code: 'MIMAMORI_CSV_UNREADABLE', message: /looks like UTF-8 but/
  })

  const undecodable = Buffer.concat([
    Buffer.from('email\na@au.com\n'), Buffer.from([0x82, 0xff, 0x0a])
  ])
  t.throws(() => readMembersCsv(undecodable), {
    code: 'MIMAMORI_CSV_UNREADABLE', message: /neither UTF-8 nor Shift_JIS.*line 3/
  })
})

t.test('limits on bytes and rows refuse the whole file', async (t) => {
  const input = Buffer.from('email\na@au.com\nb@au.com\n')
  t.throws(() => readMembersCsv(input, { maxBytes: 10 }), {
    code: 'MIMAMORI_CSV_UNREADABLE', details: { problem: 'too-large' }
  })
  t.throws(() => readMembersCsv(input, { maxRows: 1 }), {
    code: 'MIMAMORI_CSV_UNREADABLE', details: { problem: 'too-many-rows' }
  })
  t.equal(readMembersCsv(input, { maxRows: 2 }).rows.length, 2)
})

t.test('UTF-16 without a BOM is found by its NUL bytes, in either byte order', async (t) => {
  const text = '氏名\tメールアドレス\r\n髙橋 一郎\ttaro@docomo.ne.jp\r\n'
  const le = Buffer.from(text, 'utf16le')
  t.same(decodeCsv(le), { text, encoding: 'utf-16le' })
  t.same(decodeCsv(Buffer.from(le).swap16()), { text, encoding: 'utf-16be' })

  const withBom = Buffer.from(Buffer.from('\ufeff' + text, 'utf16le')).swap16()
  t.same(decodeCsv(withBom), { text, encoding: 'utf-16be' })
})

t.test('plain UTF-8 without a BOM is not mistaken for Shift_JIS', async (t) => {
  t.same(decodeCsv(Buffer.from('氏名,メール\n髙橋 一郎,a@au.com\n')).encoding, 'utf-8')
})

t.test('a generated 5,000-row CP932 roster reads with the right counts', async (t) => {
  const input = iconv.encode(toCsv(largeRoster(5000)), 'cp932')
  const result = readMembersCsv(input)
  t.equal(result.encoding, 'cp932')
  t.equal(result.totalRecords, 5000)
  t.equal(result.errors.length, 10, 'rows 250, 750 … have no address')
  t.equal(result.duplicates.length, 5, 'every 1000th row repeats the one before')
  t.equal(result.rows.length, 4985)
  t.same(result.duplicates[0], { line: 1001, firstLine: 1000 })
  t.match(result.errors[0], { line: 251, code: 'missing-address' })
  t.equal(result.rows[4984]?.name, '保護者 4999')
})
