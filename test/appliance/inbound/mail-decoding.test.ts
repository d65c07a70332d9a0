// decodeMail on real Japanese mail from phones and mail programs (test/fixtures/jp-mail/MANIFEST.md
// names each file's source and what the source project's tests expect), then on hostile mail.

import t from 'tap'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import iconv from 'iconv-lite'
import {
  decodeMail, parseMail, type DecodedMail
} from '../../../appliance/inbound/mail-decoding.js'

const FIXTURES = new URL('../../fixtures/jp-mail/', import.meta.url)

const LONG_SUBJECT = 'タイトルの長いメールの場合の対処を実装するためのテストケースとしてのメールに含まれている件名であるサブジェクト部分'

function fixture (name: string): Buffer {
  return readFileSync(new URL(name, FIXTURES))
}

async function decoded (name: string): Promise<DecodedMail> {
  return await decodeMail(fixture(name))
}

// jpmobile writes a carrier pictogram as its own reference (`&#xe676;`); a generic decoder gives
// one private-use character or U+FFFD. '□' stands for that one character. The Japanese around it
// is matched exactly, so a pictogram that swallows or garbles a neighbour fails.
function withPictograms (text: string, whole = true): RegExp {
  const source = text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    .replace(/□/g, '[\\u{E000}-\\u{F8FF}\\u{FFFD}]')
  return new RegExp(whole ? `^${source}$` : source, 'u')
}

/** A mail with CRLF line ends from header lines and a body of bytes. */
function compose (headers: string[], body: Buffer | string): Buffer {
  const head = Buffer.from([...headers, '', ''].join('\r\n'), 'latin1')
  return Buffer.concat([head, typeof body === 'string' ? Buffer.from(body, 'latin1') : body])
}

// jpmobile expects `\r\n` in some bodies; decodeMail gives every line end as `\n`.
t.test('carrier pictograms leave the Japanese around them whole, subject and body', async (t) => {
  const cases = [
    { file: 'docomo-emoji.eml', subject: '題名□', text: '本文□\nFor docomo\n\n' },
    { file: 'au-emoji.eml', subject: '題名□', text: '本文□\nFor au\n\n' },
    { file: 'softbank-emoji.eml', subject: '題名□', text: '本文□\nFor softbank\n\n' },
    { file: 'softbank-gmail-sjis.eml', subject: 'テスト□□□', text: 'テストです□' },
    { file: 'au-decomail.eml', subject: 'テスト□', text: 'テストです□\n' }
  ]
  for (const { file, subject, text } of cases) {
    const mail = await decoded(file)
    t.match(mail.subject, withPictograms(subject), `${file}: subject`)
    t.match(mail.text, withPictograms(text), `${file}: text`)
  }
})

t.test('the HTML part of a decorated mail (デコメール) reads like its text part', async (t) => {
  // SoftBank's is Shift_JIS in base64, au's ISO-2022-JP in quoted-printable
  const softbank = await parseMail(fixture('softbank-gmail-sjis.eml'))
  t.match(softbank.html, withPictograms('<FONT size="4">テストです□</FONT>', false))
  const au = await parseMail(fixture('au-decomail.eml'))
  t.match(au.html, withPictograms('<BLINK>テストです□</BLINK>', false))
})

t.test('a docomo mail in ISO-2022-JP reads with its subject and body', async (t) => {
  const mail = await decoded('docomo-jis.eml')
  t.equal(mail.from, 'jpmobile.anonymous@docomo.ne.jp')
  t.equal(mail.subject, 'テスト')
  t.equal(mail.text, 'テスト本文\n\n')
})

t.test('an iPhone mail labelled cp932 reads, NEC special character ㈱ included', async (t) => {
  const mail = await decoded('iphone-cp932.eml')
  t.equal(mail.subject, 'Re: 【NKSC】test')
  t.equal(mail.text, 'テストです。㈱')
})

t.test('half-width katakana in ISO-2022-JP (ESC ( I) read as half-width katakana', async (t) => {
  const mail = await decoded('iphone-jis.eml')
  t.equal(mail.text, '(=ﾟωﾟ)ﾉ\n\n\n')
  t.equal(mail.subject, '', 'the mail has no Subject header')
})

t.test('astral-plane emoji in UTF-8 subject and body stay whole', async (t) => {
  const mail = await decoded('iphone-unicode-emoji.eml')
  t.equal(mail.subject, '絵文字\u{1F385}')
  t.equal(mail.text, '\u{1F384}\u2763')
})

t.test('a subject in four folded ISO-2022-JP encoded words reads as one line', async (t) => {
  const mail = await decoded('pc-mail-single.eml')
  t.equal(mail.subject, LONG_SUBJECT)
  t.equal(mail.text, '本文です\n\n')
})

t.test('a multipart mail reads its first part, then the forwarded mail it carries', async (t) => {
  const mail = await decoded('pc-mail-multi.eml')
  t.equal(mail.subject, LONG_SUBJECT)
  t.ok(mail.text.startsWith('本文です\n\n'), 'the first part comes first')
  // (derived) the second part is a message/rfc822 marked inline, so mailparser shows it in the
  // text, its header decoded, as a mail program does, instead of listing it as an attachment
  t.match(mail.text, `\nSubject: ${LONG_SUBJECT}\n`)
  t.ok(mail.text.endsWith('\n本文です\n\n'), 'the forwarded body ends the text')
  t.same(mail.attachments, [])
})

t.test('a subject folded over a blank line keeps the space before its encoded words', async (t) => {
  // mail gem's reading: the folding white space before the first word stays, that between the
  // two adjacent words goes (RFC 2047 §6.2)
  const mail = await decoded('example14.eml')
  t.equal(mail.subject, 'Re: TEST \tテストテスト')
  t.equal(mail.from, 'atsushi@example.com')
  t.equal(mail.text, 'Hello\n')
})

t.test('UTF-8 encoded-word headers over an ISO-2022-JP body both read', async (t) => {
  const mail = await decoded('japanese_iso_2022.eml')
  t.same(mail.to, ['raasdnil@gmail.com'])
  t.equal(mail.text, 'すみません。\n\n')
  t.equal(mail.subject, 'まみむめも', '(derived) the UTF-8 encoded word')
})

t.test('an ISO-2022-JP body without any charset label is recognised by its escapes', async (t) => {
  const mail = await decoded('iso-2022-jp-no-charset.eml')
  t.equal(mail.text, 'シニアソフトウェアエンジニア\n')
})

t.test('the SoftBank sign-up mail (空メール) has no subject and an empty body', async (t) => {
  const mail = await decoded('softbank-blank.eml')
  t.equal(mail.from, 'softbank@softbank.ne.jp')
  t.equal(mail.subject, '')
  t.equal(mail.text.trim(), '', 'the body is one blank line')
})

t.test('a mail without From reads, its iso-8859-1 quoted-printable text joined', async (t) => {
  const mail = await decoded('no-from.eml')
  t.equal(mail.from, undefined)
  t.equal(mail.fromName, undefined)
  t.equal(mail.subject, 'ID:20035 Never be ripped off by a doctor again')
  t.ok(mail.text.startsWith(
    'The ultimate convenience store in drugs, brought to you in just one click!\n'))
})

t.test('an au photo mail reads its text, and the JPEG comes whole as an attachment', async (t) => {
  const mail = await decoded('au-attached.eml')
  // (derived) the subject's own bytes put an ASCII x between the name and the pictogram
  t.match(mail.subject, withPictograms('題名x□'))
  t.match(mail.text, withPictograms('カレンダーだ□'))
  t.same(mail.attachments, [
    { filename: '20098calendar01.jpg', contentType: 'image/jpeg', size: 86412 }
  ])
  // (derived) Python's email package decodes the same part to bytes with this digest
  const [photo] = (await parseMail(fixture('au-attached.eml'))).attachments
  t.equal(createHash('sha256').update(photo?.content ?? '').digest('hex'),
    '126e24a73488161aa299b83627aa60233414a7aff942fd8a1fa4598ea3269a18')
})

t.test('the ISO-2022-JP text part and the UTF-8 HTML part of one mail say the same', async (t) => {
  const sentence = 'とりあえずＨＴＭＬの本文であればいい可能性を考慮しては見たがやはりべーすろくよん（笑）' +
    'であればいいような気がしたのでダミーの文字列を考えて見る朝。'
  const parsed = await parseMail(fixture('bounce_with_utf8_part.eml'))
  t.equal(parsed.html, sentence, 'the last part, UTF-8 in base64')

  const mail = await decoded('bounce_with_utf8_part.eml')
  t.equal(mail.subject, 'Fwd: 【NurseryMail】日日', '(derived)')
  t.ok(mail.text.startsWith('\n\niPhoneから送信\n\nBegin forwarded message:\n\n'))
  const quoted = mail.text.split('\n').filter((line) => line.startsWith('> '))
  t.equal(quoted.map((line) => line.slice(2)).join(''), sentence,
    'the first part, ISO-2022-JP in quoted-printable')
})

t.test('a Postfix bounce for a docomo address reads as automatic, with its reason', async (t) => {
  // what kind of bounce it is belongs to the bounce classifier; decoding gives it the pieces
  const mail = await decoded('bounced-jp.eml')
  t.equal(mail.from, 'MAILER-DAEMON@example.jp')
  t.equal(mail.subject, 'Undelivered Mail Returned to Sender')
  t.equal(mail.autoSubmitted, true)
  t.match(mail.text, '<unknown@docomo.ne.jp>: host mfsmax.docomo.ne.jp[203.138.181.112] said: ' +
    '550\n    Unknown user unknown@docomo.ne.jp')
  t.match(mail.attachments, [{ contentType: 'message/rfc822' }])
})

const PLAIN = [
  'docomo-jis.eml', 'iphone-cp932.eml', 'iphone-jis.eml', 'iphone-unicode-emoji.eml',
  'pc-mail-single.eml', 'pc-mail-multi.eml', 'example14.eml', 'japanese_iso_2022.eml',
  'iso-2022-jp-no-charset.eml', 'softbank-blank.eml', 'no-from.eml', 'bounce_with_utf8_part.eml',
  'bounced-jp.eml'
]
const WITH_PICTOGRAMS = [
  'docomo-emoji.eml', 'au-emoji.eml', 'softbank-emoji.eml', 'softbank-gmail-sjis.eml',
  'au-decomail.eml', 'au-attached.eml'
]

t.test('no mail without pictograms has a replacement character anywhere', async (t) => {
  for (const file of PLAIN) {
    const mail = await decoded(file)
    t.notMatch(mail.subject + mail.text + (mail.fromName ?? ''), /\uFFFD/, file)
  }
})

t.test('every mail reads the same with CRLF line ends, as it arrives over SMTP', async (t) => {
  for (const file of [...PLAIN, ...WITH_PICTOGRAMS]) {
    const raw = fixture(file)
    const crlf = Buffer.from(raw.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1')
    const [lf, wire] = [await decodeMail(raw), await decodeMail(crlf)]
    t.same([wire.from, wire.subject, wire.text], [lf.from, lf.subject, lf.text], file)
  }
})

// 避難所を開設しました ("the shelter is open") in three encodings, for the made-up mails below
const NOTICE = '避難所を開設しました'
const NOTICE_UTF8 = Buffer.from(NOTICE)
const NOTICE_SJIS = iconv.encode(NOTICE, 'shift_jis')
const NOTICE_JIS = Buffer.from('1b2442487246713d6a2472332b405f2437245e2437243f1b2842', 'hex')

t.test('an encoded word cut inside a character reads whole with the word after it', async (t) => {
  const b = (charset: string, bytes: Buffer): string =>
    `=?${charset}?B?${bytes.toString('base64')}?=`
  const q = (bytes: Buffer): string =>
    `=?utf-8?Q?${[...bytes].map((byte) => '=' + byte.toString(16).toUpperCase()).join('')}?=`
  // two adjacent words, the bytes cut at `at`, which falls inside a character
  const cut = (word: (bytes: Buffer) => string, bytes: Buffer, at: number, space = ' '): string =>
    word(bytes.subarray(0, at)) + space + word(bytes.subarray(at))
  const subjects = {
    'UTF-8, B, folded': cut((bytes) => b('UTF-8', bytes), NOTICE_UTF8, 4, '\r\n '),
    'UTF-8, Q': cut(q, NOTICE_UTF8, 5),
    'Shift_JIS, B': cut((bytes) => b('Shift_JIS', bytes), NOTICE_SJIS, 3),
    // the second word goes on in two-byte mode without an escape of its own
    'ISO-2022-JP, B': cut((bytes) => b('ISO-2022-JP', bytes), NOTICE_JIS, 6)
  }
  for (const [name, subject] of Object.entries(subjects)) {
    const raw = compose(['From: kiki@city.example.jp', `Subject: ${subject}`], 'x')
    t.equal((await decodeMail(raw)).subject, NOTICE, name)
  }

  const sender = cut((bytes) => b('UTF-8', bytes), Buffer.from('山田太郎'), 4)
  const named = compose([`From: ${sender} <taro@docomo.ne.jp>`, 'Subject: x'], 'x')
  const split = await decodeMail(named)
  t.same([split.fromName, split.from], ['山田太郎', 'taro@docomo.ne.jp'], 'a display name, too')
})

t.test('a Shift_JIS body without a charset label reads as Japanese', async (t) => {
  const body = iconv.encode(`${NOTICE}\r\n体育館です。\r\n`, 'shift_jis')
  const cases = {
    'text/plain without charset': ['Content-Type: text/plain', 'Content-Transfer-Encoding: 8bit'],
    'no Content-Type at all': [],
    'labelled us-ascii': ['Content-Type: text/plain; charset=us-ascii']
  }
  for (const [name, headers] of Object.entries(cases)) {
    const raw = compose(['From: papa@docomo.ne.jp', 'Subject: x', ...headers], body)
    t.equal((await decodeMail(raw)).text, `${NOTICE}\n体育館です。\n`, name)
  }
})

t.test('raw 8-bit Shift_JIS in Subject and From reads as Japanese', async (t) => {
  const raw = Buffer.concat([
    Buffer.from('From: '), iconv.encode('山田太郎', 'shift_jis'),
    Buffer.from(' <taro@docomo.ne.jp>\r\n'),
    Buffer.from('Subject: '), iconv.encode('①', 'cp932'), NOTICE_SJIS, Buffer.from('\r\n\r\nx')
  ])
  const result = await decodeMail(raw)
  t.equal(result.subject, `①${NOTICE}`)
  t.equal(result.fromName, '山田太郎')
  t.equal(result.from, 'taro@docomo.ne.jp')
})

t.test('ISO-2022-JP with NEC and IBM extension characters (CP50220) reads them', async (t) => {
  // ① and ㈱ from NEC row 13, 髙 from the IBM rows, as Windows mail programs write them
  const jis = Buffer.from('1b24422d212d6a7c621b2842', 'hex')
  const raw = compose([
    'From: kiki@city.example.jp', `Subject: =?ISO-2022-JP?B?${jis.toString('base64')}?=`,
    'Content-Type: text/plain; charset=ISO-2022-JP'
  ], jis)
  const result = await decodeMail(raw)
  t.equal(result.subject, '①㈱髙')
  t.equal(result.text, '①㈱髙')
})

t.test('CP50220 ISO-2022-JP reads ㍉ with ① and ㈱, under each label phones use', async (t) => {
  // NEC row 13 in JIS: ㍉ 2D40, ① 2D21, ㈱ 2D6A; then ASCII and plain kanji on the same line
  const jis = Buffer.concat([Buffer.from('1b24422d402d212d6a1b284220', 'hex'),
    Buffer.from('\x1b$B%a!<%H%k\x1b(B 10\x1b$B%_%j\x1b(B', 'latin1')])
  const expected = '㍉①㈱ メートル 10ミリ'
  for (const label of ['ISO-2022-JP', 'CP50220', 'x-cp50221', 'csISO2022JP']) {
    const raw = compose([
      'From: bousai@city.example.jp', `Subject: =?${label}?B?${jis.toString('base64')}?=`,
      `Content-Type: text/plain; charset=${label}`
    ], jis)
    const result = await decodeMail(raw)
    t.equal(result.subject, expected, `${label}: subject`)
    t.equal(result.text, expected, `${label}: body`)
  }
})

t.test('Shift_JIS reads right under windows-31j, x-sjis, ms_kanji and csWindows31J', async (t) => {
  const text = '①㈱㍉ 髙橋 ﾃｽﾄ 不審者情報'
  const sjis = iconv.encode(text, 'cp932')
  for (const label of ['windows-31j', 'x-sjis', 'ms_kanji', 'csWindows31J', 'MS_Kanji', 'Windows-31J']) {
    const raw = compose([
      'From: sensei@docomo.ne.jp', `Subject: =?${label}?B?${sjis.toString('base64')}?=`,
      `Content-Type: text/plain; charset="${label}"`, 'Content-Transfer-Encoding: 8bit'
    ], sjis)
    const result = await decodeMail(raw)
    t.equal(result.subject, text, `${label}: subject`)
    t.equal(result.text, text, `${label}: body`)
  }
})

t.test('an ISO-2022-JP line that ends without its reset adds nothing before CRLF', async (t) => {
  const raw = compose(['Subject: x', 'Content-Type: text/plain; charset=ISO-2022-JP'],
    '\x1b$B%F%9%H\r\n\x1b$BK\\J8\x1b(B\r\nok\r\n')
  t.equal((await decodeMail(raw)).text, 'テスト\n本文\nok\n')
})

t.test('garbage never makes decodeMail reject', async (t) => {
  const noise = Buffer.concat(Array.from({ length: 2048 },
    (_, i) => createHash('sha256').update(String(i)).digest()))
  const cases: Record<string, Buffer> = {
    'no bytes': Buffer.alloc(0),
    '64 KiB of noise': noise,
    'NULs and a cut escape': Buffer.from('\0\0Subject: \0\x1b$\r\n\r\n\0\x1b(', 'latin1'),
    'broken encoded words, unknown and refused charsets': compose([
      'From: =?UTF-8?B?!!!?= <x@y>',
      'Subject: =?x-unknown?B?gqA=?= =?utf-7?B?K0FHRS0=?= =?iso-2022-jp?Q?=1B$B=?= =??='
    ], 'x'),
    'an open charset quote over a body that is not base64': compose([
      'Content-Type: text/plain; charset="', 'Content-Transfer-Encoding: base64'
    ], '@@@@'),
    'an unclosed multipart around a cut Shift_JIS character': compose([
      'Content-Type: multipart/mixed; boundary=b'
    ], '--b\r\nContent-Type: text/plain; charset=shift_jis\r\n\r\n\x82'),
    'parts nested 200 deep': compose(['Content-Type: multipart/mixed; boundary=b0'],
      Array.from({ length: 200 }, (_, i) =>
        `--b${i}\r\nContent-Type: multipart/mixed; boundary=b${i + 1}\r\n\r\n`).join('')),
    'CR-only line ends, an unreset JIS character':
      Buffer.from('Subject: a\r\r\x1b$B%\x82\r', 'latin1'),
    'ISO-2022-JP label over high bytes': compose(['Content-Type: text/plain; charset=iso-2022-jp'],
      '\x1b$B%\x1b$B\x82\x1b(')
  }
  for (const [name, raw] of Object.entries(cases)) {
    const result = await decodeMail(raw)
    t.ok(typeof result.subject === 'string' && typeof result.text === 'string' &&
      Array.isArray(result.to) && Array.isArray(result.attachments), name)
  }
})
