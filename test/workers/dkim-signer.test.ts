import t from 'tap'
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { dkimVerify } from 'mailauth/lib/dkim/verify.js'
import { DkimSigner, relaxedBody, relaxedHeader } from '../../workers/dkim-signer.js'
import { MessageTemplate, type BroadcastContent } from '../../workers/message-template.js'

const DOMAIN = 'mail.mimamori.example'
const SELECTOR = 'mm2024'

function dkimRecord (publicKey: KeyObject): string {
  if (publicKey.asymmetricKeyType === 'ed25519') {
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)
    return `v=DKIM1; k=ed25519; p=${raw.toString('base64')}`
  }
  return `v=DKIM1; k=rsa; p=${publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`
}

function resolverFor (record: string) {
  return async (name: string, type: string): Promise<string[][]> => {
    if (type === 'TXT' && name === `${SELECTOR}._domainkey.${DOMAIN}`) return [[record]]
    throw Object.assign(new Error(`no ${type} record for ${name}`), { code: 'ENOTFOUND' })
  }
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ed = generateKeyPairSync('ed25519')

const CONTENT: BroadcastContent = {
  broadcastId: 'b-7',
  subject: '【訓練】大雨警報に伴う臨時休校のお知らせ🚨①'.repeat(6),
  body: '保護者の皆様\n\n本日は大雨警報のため臨時休校とします。\n  行頭の空白と  途中の空白。  \n\n\n',
  fromName: '松山市教育委員会',
  fromAddress: `alert@${DOMAIN}`,
  organisation: { name: '松山市教育委員会', postalAddress: '愛媛県松山市二番町4-7-2' },
  mailDomain: DOMAIN,
  baseUrl: 'https://mimamori.example.jp',
  priority: 'emergency',
  repliesRead: true
}

async function verify (raw: Buffer, record: string) {
  const result = await dkimVerify(raw, { resolver: resolverFor(record) })
  return result.results[0]
}

function signedMessage (privateKey: string | KeyObject): Buffer {
  const signer = new DkimSigner({ domain: DOMAIN, selector: SELECTOR, privateKey })
  const recipient = { to: '"taro..yamada."@docomo.ne.jp', token: 'tok-1', bounceToken: 'bnc-1' }
  return new MessageTemplate(CONTENT, { signer }).render(recipient).raw
}

t.test('an RSA signature over a long folded Japanese subject verifies', async (t) => {
  const pem = rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const raw = signedMessage(pem)
  const result = await verify(raw, dkimRecord(rsa.publicKey))
  t.equal(result?.status.result, 'pass', result?.status.comment ?? 'verified')
  t.equal(result?.signingDomain, DOMAIN)
  t.match(raw.toString('latin1'), /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed;/)
  t.match(raw.toString('latin1'), /\r\nSubject: =\?UTF-8\?B\?[^\r]+\r\n =\?UTF-8/, 'the subject is folded')
})

t.test('an ed25519 signature verifies', async (t) => {
  const raw = signedMessage(ed.privateKey)
  const result = await verify(raw, dkimRecord(ed.publicKey))
  t.equal(result?.status.result, 'pass', result?.status.comment ?? 'verified')
  t.match(raw.toString('latin1'), /a=ed25519-sha256;/)
})

t.test('a tampered body or subject fails verification', async (t) => {
  const raw = signedMessage(rsa.privateKey).toString('latin1')
  const record = dkimRecord(rsa.publicKey)
  const bodyAt = raw.indexOf('\r\n\r\n') + 4
  const body = raw.slice(0, bodyAt) + 'QUFB' + raw.slice(bodyAt + 4)
  // mailauth reports a body hash mismatch as neutral with this comment; either way, no pass.
  const bodyResult = await verify(Buffer.from(body, 'latin1'), record)
  t.not(bodyResult?.status.result, 'pass')
  t.match(bodyResult?.status.comment, /body hash did not verify/)
  const subject = raw.replace('Subject: =?UTF-8?B?', 'Subject: =?UTF-8?B?QUFB')
  t.equal((await verify(Buffer.from(subject, 'latin1'), record))?.status.result, 'fail')
})

t.test('the signed headers are those present and the signature lines stay short', async (t) => {
  const raw = signedMessage(rsa.privateKey).toString('latin1')
  const signature = raw.slice(0, raw.indexOf('\r\nFrom:'))
  t.match(signature, 'h=from:to:subject:date:message-id:mime-version:content-type:' +
    'content-transfer-encoding:reply-to:list-unsubscribe:list-unsubscribe-post;')
  t.match(signature, /t=\d{10};/)
  for (const line of signature.split('\r\n')) t.ok(line.length <= 998 && line.length <= 160)
})

t.test('a message with bare LF line ends is signed as it will travel, with CRLF', async (t) => {
  const signer = new DkimSigner({ domain: DOMAIN, selector: SELECTOR, privateKey: rsa.privateKey })
  const message = 'From: a@mail.mimamori.example\nSubject: hi\n  there\n\nbody  text \n\n'
  const raw = signer.sign(Buffer.from(message))
  t.notMatch(raw.toString('latin1'), /(?<!\r)\n/)
  const result = await verify(raw, dkimRecord(rsa.publicKey))
  t.equal(result?.status.result, 'pass', result?.status.comment ?? 'verified')
})

t.test('relaxed canonicalisation unfolds headers and squeezes spaces', async (t) => {
  t.equal(relaxedHeader('Subject :  =?UTF-8?B?44GC?=\r\n =?UTF-8?B?44GE?=  '),
    'subject:=?UTF-8?B?44GC?= =?UTF-8?B?44GE?=')
  t.equal(relaxedBody(Buffer.from('a  b\t \r\nc \r\n\r\n\r\n')).toString(), 'a b\r\nc\r\n')
  t.equal(relaxedBody(Buffer.from('QUJD\r\n\r\n')).toString(), 'QUJD\r\n')
  t.equal(relaxedBody(Buffer.from('\r\n\r\n')).length, 0)
  t.equal(relaxedBody(Buffer.from('no end')).toString(), 'no end\r\n')
})

t.test('a bad key is refused when the signer is made', async (t) => {
  const refuse = { code: 'MIMAMORI_DKIM_KEY_INVALID' }
  const make = (privateKey: string | KeyObject, domain = DOMAIN) => () =>
    new DkimSigner({ domain, selector: SELECTOR, privateKey })
  t.throws(make('not a pem'), refuse)
  t.throws(make(rsa.publicKey), refuse)
  t.throws(make(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), refuse)
  t.throws(make(generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey), refuse)
  t.throws(make(rsa.privateKey, 'bad domain'), refuse)
})
