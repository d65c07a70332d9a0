import t from 'tap'
import { simpleParser } from 'mailparser'
import {
  MessageTemplate, encodeSubject, formatDate, type BroadcastContent
} from '../../workers/message-template.js'

// 200 characters: kanji, kana, an emoji outside the BMP, a circled digit, ASCII.
const LONG_SUBJECT = ('【緊急】不審者情報🚨①東小学校付近でカタカナ・ひらがなABC混在の件について続報です。' +
  '児童の皆さんは集団で下校してください②').repeat(5).slice(0, 400)
const SUBJECT_200 = [...LONG_SUBJECT].slice(0, 200).join('')

const BODY = '保護者の皆様\n\n本日午後3時ごろ、東小学校の正門付近で不審な人物が目撃されました。🚨\r\n' +
  '下校は集団で行います。' + 'とても長い一行です。'.repeat(60) + '\r' +
  'Tabs\tand  spaces  stay   as written.\n以上'

function content (overrides: Partial<BroadcastContent> = {}): BroadcastContent {
  return {
    broadcastId: 'b-20240507-1',
    subject: SUBJECT_200,
    body: BODY,
    fromName: '松山市立東小学校',
    fromAddress: 'alert@mail.mimamori.example',
    organisation: { name: '松山市立東小学校', postalAddress: '愛媛県松山市一番町1-1', phone: '089-000-0000' },
    mailDomain: 'mail.mimamori.example',
    baseUrl: 'https://mimamori.example.jp',
    priority: 'normal',
    repliesRead: true,
    ...overrides
  }
}

const RECIPIENT = {
  to: '"taro..yamada."@docomo.ne.jp',
  token: 'Tk_0123456789-abcdefghijklmnopqrstuvwxyzABCDEFGHIJ',
  bounceToken: 'Bt_9876543210-zyxwvutsrqponmlkjihgfedcbaJIHGFEDCBA'
}

function headerBlock (raw: Buffer): string {
  const text = raw.toString('latin1')
  return text.slice(0, text.indexOf('\r\n\r\n'))
}

function decodeBody (raw: Buffer): string {
  const text = raw.toString('latin1')
  const base64 = text.slice(text.indexOf('\r\n\r\n') + 4).replace(/\r\n/g, '')
  return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(base64, 'base64'))
}

t.test('a 200-character Japanese subject survives encoding and parsing exactly', async (t) => {
  t.equal([...SUBJECT_200].length, 200)
  const message = new MessageTemplate(content()).render(RECIPIENT)
  const parsed = await simpleParser(message.raw)
  t.equal(parsed.subject, SUBJECT_200)
})

t.test('each encoded word decodes on its own and no line runs long', async (t) => {
  const message = new MessageTemplate(content()).render(RECIPIENT)
  const fatal = new TextDecoder('utf-8', { fatal: true })
  const subjectField = headerBlock(message.raw).match(/^Subject: .*(?:\r\n .*)*/m)?.[0] ?? ''
  const words = [...subjectField.matchAll(/=\?UTF-8\?B\?([A-Za-z0-9+/=]+)\?=/g)]
  t.ok(words.length > 5, 'the long subject is spread over several words')

  let joined = ''
  for (const word of words) {
    t.ok(word[0].length <= 75, 'an encoded word is at most 75 characters')
    joined += fatal.decode(Buffer.from(word[1] ?? '', 'base64'))
  }
  t.equal(joined, SUBJECT_200)

  for (const line of subjectField.split('\r\n')) t.ok(line.length <= 76, 'subject line within 76')
  for (const line of message.raw.toString('latin1').split('\r\n')) {
    t.ok(Buffer.byteLength(line, 'latin1') <= 998, 'no line over 998 octets')
  }
})

t.test('encodeSubject folds into words that each hold whole characters', async (t) => {
  const value = encodeSubject('🚨'.repeat(40))
  for (const line of value.split('\r\n')) {
    const base64 = line.trim().slice('=?UTF-8?B?'.length, -2)
    const text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(base64, 'base64'))
    t.match(text, /^(🚨)+$/)
  }
  t.equal(encodeSubject(''), '')
})

t.test('the body decodes exactly; the read link and the footer carry the token', async (t) => {
  const message = new MessageTemplate(content()).render(RECIPIENT)
  const text = decodeBody(message.raw)
  const body = BODY.replace(/\r\n|\r|\n/g, '\r\n')
  t.ok(text.startsWith(body + '\r\n\r\n'), 'the broadcast body comes first, unchanged')
  t.match(text, '「確認しました」と伝えるには次のリンクを開いてください')
  t.match(text, `https://mimamori.example.jp/r/${RECIPIENT.token}\r\n`)
  t.match(text, `https://mimamori.example.jp/u/${RECIPIENT.token}\r\n`)
  t.match(text, '松山市立東小学校')
  t.match(text, '愛媛県松山市一番町1-1')
  t.match(text, '089-000-0000')
  t.match(text, '「配信停止」')
  t.notMatch(text, /(?<!\r)\n/, 'only CRLF line ends')

  const parsed = await simpleParser(message.raw)
  const lf = (value: string): string => value.replace(/\r\n/g, '\n').replace(/\n+$/, '')
  t.equal(lf(parsed.text ?? ''), lf(text), 'mailparser reads the same text')
})

t.test('base64 body lines are 76 characters, the last one shorter', async (t) => {
  const raw = new MessageTemplate(content()).render(RECIPIENT).raw.toString('latin1')
  const lines = raw.slice(raw.indexOf('\r\n\r\n') + 4).split('\r\n')
  t.equal(lines.pop(), '', 'the body ends with CRLF')
  const last = lines.pop() ?? ''
  t.ok(last.length > 0 && last.length <= 76)
  for (const line of lines) t.equal(line.length, 76)
})

t.test('an English footer is used when asked', async (t) => {
  const text = decodeBody(new MessageTemplate(content({ language: 'en' })).render(RECIPIENT).raw)
  t.match(text, 'To let us know you have read this message')
  t.match(text, '「配信停止」')
  t.notMatch(text, '確認しました')
})

t.test('the headers carry the token, the one-click unsubscribe and the sender', async (t) => {
  const message = new MessageTemplate(content()).render(RECIPIENT, new Date('2024-05-07T00:30:00Z'))
  const { token, bounceToken } = RECIPIENT
  const headers = headerBlock(message.raw)
  const parsed = await simpleParser(message.raw)

  t.equal(message.envelopeFrom, `bounce+${bounceToken}@mail.mimamori.example`, 'the return path has its own token')
  t.notMatch(message.raw.toString('latin1'), bounceToken, 'which appears nowhere in the message')
  t.equal(message.to, RECIPIENT.to)
  t.equal(message.messageId, `<b-20240507-1.${token}@mail.mimamori.example>`)
  t.equal(parsed.messageId, message.messageId)
  t.equal(parsed.replyTo?.value[0]?.address, `reply+${token}@mail.mimamori.example`)
  t.same(parsed.from?.value[0], { name: '松山市立東小学校', address: 'alert@mail.mimamori.example' })
  t.match(headers, /^Date: Tue, 07 May 2024 09:30:00 \+0900$/m)
  t.match(headers, /^MIME-Version: 1\.0$/m)
  t.match(headers, /^Content-Type: text\/plain; charset=UTF-8$/m)
  t.match(headers, /^Content-Transfer-Encoding: base64$/m)
  t.match(headers, /^List-Unsubscribe-Post: List-Unsubscribe=One-Click$/m)
  t.match(headers, /^Auto-Submitted: auto-generated$/m)
  t.match(headers.replace(/\r\n /g, ' '), /^List-Id: .*<[0-9a-f]+\.mail\.mimamori\.example>$/m)
  t.notMatch(headers, /X-Priority/, 'no priority mark for normal mail')

  const unsubscribe = headers.match(/^List-Unsubscribe: .*(?:\r\n .*)*/gm) ?? []
  t.equal(unsubscribe.length, 1, 'one List-Unsubscribe header')
  t.equal(unsubscribe[0]?.replace(/\r\n /g, ' '), 'List-Unsubscribe: ' +
    `<https://mimamori.example.jp/u/${token}>, <mailto:reply+${token}@mail.mimamori.example?subject=unsubscribe>`)
})

t.test('a quoted legacy carrier address appears in To unchanged', async (t) => {
  const message = new MessageTemplate(content()).render(RECIPIENT)
  t.match(headerBlock(message.raw), /^To: "taro\.\.yamada\."@docomo\.ne\.jp$/m)
  const parsed = await simpleParser(message.raw)
  const to = Array.isArray(parsed.to) ? parsed.to[0] : parsed.to
  t.match(to?.value[0]?.address ?? '', /taro\.\.yamada\.["]?@docomo\.ne\.jp/)
})

t.test('an emergency is marked high priority', async (t) => {
  const template = new MessageTemplate(content({ priority: 'emergency' }))
  const headers = headerBlock(template.render(RECIPIENT).raw)
  t.match(headers, /^X-Priority: 1$/m)
  t.match(headers, /^Importance: high$/m)
})

t.test('messages of one broadcast differ by recipient only', async (t) => {
  const template = new MessageTemplate(content())
  const date = new Date()
  const a = template.render(RECIPIENT, date)
  const b = template.render({ to: 'hanako@au.com', token: 'other-token', bounceToken: 'other-bounce' }, date)
  t.not(a.messageId, b.messageId)
  t.match(decodeBody(b.raw), '/r/other-token')
  t.notMatch(decodeBody(b.raw), RECIPIENT.token)
  t.equal(decodeBody(a.raw).split('\r\n\r\n')[0], decodeBody(b.raw).split('\r\n\r\n')[0])
})

t.test('a line break in a shared header field is refused when the template is made', async (t) => {
  const cases: Array<Partial<BroadcastContent>> = [
    { subject: '件名\r\nBcc: victim@example.jp' },
    { fromName: '東小学校\nBcc: x@y.jp' },
    { fromAddress: 'alert@mail.mimamori.example\r\nBcc: x@y.jp' },
    { organisation: { name: '東小\rBcc: x', postalAddress: '松山市' } }
  ]
  for (const overrides of cases) {
    t.throws(() => new MessageTemplate(content(overrides)), { code: 'MIMAMORI_HEADER_INJECTION' },
      Object.keys(overrides)[0] ?? 'field')
  }
})

t.test('a line break in a recipient field is refused at render', async (t) => {
  const template = new MessageTemplate(content())
  const render = (to: string, token: string, bounceToken = 'ok') => () => template.render({ to, token, bounceToken })
  t.throws(render('a@au.com\r\nBcc: x@y.jp', 'ok'), { code: 'MIMAMORI_HEADER_INJECTION' })
  t.throws(render('a@au.com', 'ok\nBcc: x@y.jp'), { code: 'MIMAMORI_HEADER_INJECTION' })
  t.throws(render('a@au.com', 'not a token'), { code: 'MIMAMORI_BAD_REQUEST' })
  t.throws(render('a@au.com', ''), { code: 'MIMAMORI_BAD_REQUEST' })
  t.throws(render('a@au.com', 'ok', 'ok\r\nBcc: x@y.jp'), { code: 'MIMAMORI_HEADER_INJECTION' })
  t.throws(render('a@au.com', 'ok', 'not a token'), { code: 'MIMAMORI_BAD_REQUEST' })
  t.throws(render('a@au.com, b@au.com', 'ok'), { code: 'MIMAMORI_BAD_ADDRESS' })
})

t.test('bad shared settings are refused', async (t) => {
  const make = (overrides: Partial<BroadcastContent>) => () => new MessageTemplate(content(overrides))
  t.throws(make({ broadcastId: 'b 1' }), { code: 'MIMAMORI_BAD_REQUEST' })
  t.throws(make({ baseUrl: 'javascript:x' }), { code: 'MIMAMORI_BAD_REQUEST' })
  t.throws(make({ mailDomain: 'nodot' }), { code: 'MIMAMORI_BAD_REQUEST' })
  t.throws(make({ fromAddress: 'no-at' }), { code: 'MIMAMORI_BAD_ADDRESS' })
})

t.test('formatDate gives an RFC 5322 date in Japan time', async (t) => {
  t.equal(formatDate(new Date('2024-12-31T15:05:09Z')), 'Wed, 01 Jan 2025 00:05:09 +0900')
})

t.test('a message offers no reply channel while the appliance does not read replies', async (t) => {
  const template = new MessageTemplate(content({ repliesRead: false }))
  const message = template.render({ to: 'hanako@docomo.ne.jp', token: 'tok_123', bounceToken: 'bnc_123' })
  const raw = message.raw.toString('latin1').replace(/\r\n[ \t]+/g, ' ')
  t.match(raw, /^List-Unsubscribe: <https:\/\/mimamori\.example\.jp\/u\/tok_123>\r$/m, 'the HTTPS URI alone')
  t.notMatch(raw, /^Reply-To:/m)
  t.notMatch(raw, /mailto:/)
  const parsed = await simpleParser(message.raw)
  t.notMatch(parsed.text ?? '', /返信/, 'the footer does not promise a reply channel')
  t.match(parsed.text ?? '', /https:\/\/mimamori\.example\.jp\/u\/tok_123/, 'the unsubscribe link stays')
})
