import t from 'tap'
import { createPrivateKey } from 'node:crypto'
import { dkimVerify } from 'mailauth/lib/dkim/verify.js'
import { generateDkimKey, formatDnsRecords } from '../../ops/dkim-keygen.js'
import { DkimSigner } from '../../workers/dkim-signer.js'
import { MessageTemplate } from '../../workers/message-template.js'

const DOMAIN = 'mail.mimamori.example'

function signedMessage (privateKeyPem: string, selector: string): Buffer {
  const signer = new DkimSigner({ domain: DOMAIN, selector, privateKey: privateKeyPem })
  const template = new MessageTemplate({
    broadcastId: 'b-1',
    subject: '【不審者情報】東小学校付近🚨'.repeat(4),
    body: '本日午後3時ごろ、不審な人物が目撃されました。',
    fromName: '松山市立東小学校',
    fromAddress: `alert@${DOMAIN}`,
    organisation: { name: '松山市立東小学校', postalAddress: '愛媛県松山市一番町1-1' },
    mailDomain: DOMAIN,
    baseUrl: 'https://mimamori.example.jp',
    priority: 'emergency'
  }, { signer })
  return template.render({ to: 'hanako@au.com', token: 'abc', bounceToken: 'def' }).raw
}

async function verifyAgainst (raw: Buffer, name: string, value: string) {
  const resolver = async (query: string, type: string): Promise<string[][]> => {
    if (type === 'TXT' && query === name) return [[value]]
    throw Object.assign(new Error(`no ${type} record for ${query}`), { code: 'ENOTFOUND' })
  }
  const result = await dkimVerify(raw, { resolver })
  return result.results[0]?.status.result
}

t.test('the records have the names and shapes carriers look up', async (t) => {
  const options = { domain: 'Mail.Mimamori.Example', selector: 'mm2024' }
  const { privateKeyPem, records } = generateDkimKey(options)
  const key = createPrivateKey(privateKeyPem)
  t.equal(key.asymmetricKeyType, 'rsa')
  t.equal(key.asymmetricKeyDetails?.modulusLength, 2048, 'RSA-2048 by default')

  t.same(records.dkim.name, 'mm2024._domainkey.mail.mimamori.example')
  t.match(records.dkim.value, /^v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+=*$/)
  t.same(records.spf, { name: DOMAIN, type: 'TXT', value: 'v=spf1 mx -all' })
  t.same(records.dmarc, {
    name: `_dmarc.${DOMAIN}`, type: 'TXT', value: 'v=DMARC1; p=none'
  })
})

t.test('DMARC reports go to the mailbox --rua names, never to the appliance\'s own domain by default', async (t) => {
  const dmarc = (rua?: string): string => generateDkimKey({
    domain: DOMAIN, selector: 's1', keyType: 'ed25519', ...(rua === undefined ? {} : { rua })
  }).records.dmarc.value
  t.equal(dmarc('dmarc-reports@city.example.jp'), 'v=DMARC1; p=none; rua=mailto:dmarc-reports@city.example.jp')
  t.notMatch(dmarc(), /rua=/)
  t.throws(() => dmarc('not an address; p=reject'), { code: 'MIMAMORI_BAD_REQUEST', message: /--rua/ })
})

t.test('a public address given goes into SPF as ip4 or ip6', async (t) => {
  const spf = (publicIp: string) =>
    generateDkimKey({ domain: DOMAIN, selector: 's1', publicIp, keyType: 'ed25519' }).records.spf.value
  t.equal(spf('203.0.113.25'), 'v=spf1 ip4:203.0.113.25 -all')
  t.equal(spf('2001:db8::25'), 'v=spf1 ip6:2001:db8::25 -all')
})

t.test('the zone lines split the DKIM key into strings of at most 255 characters', async (t) => {
  const { records } = generateDkimKey({ domain: DOMAIN, selector: 'mm2024' })
  const text = formatDnsRecords(records)
  const start = text.indexOf('mm2024._domainkey')
  const dkimLine = text.slice(start, text.indexOf(')', start) + 1)
  t.match(dkimLine, /^mm2024\._domainkey\.mail\.mimamori\.example\. 3600 IN TXT \( "/)
  const strings = [...dkimLine.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '')
  t.ok(strings.length >= 2)
  for (const s of strings) t.ok(s.length <= 255)
  t.equal(strings.join(''), records.dkim.value)
  t.match(text, `_dmarc.${DOMAIN}. 3600 IN TXT "v=DMARC1; p=none"`)
  t.match(text, `${DOMAIN}. 3600 IN TXT "v=spf1 mx -all"`)
  t.match(text, /公開鍵/)
  t.match(text, /public key/)
})

t.test('the generated RSA key signs mail that verifies against the generated record', async (t) => {
  const { privateKeyPem, records } = generateDkimKey({ domain: DOMAIN, selector: 'mm2024' })
  const raw = signedMessage(privateKeyPem, 'mm2024')
  t.equal(await verifyAgainst(raw, records.dkim.name, records.dkim.value), 'pass')
})

t.test('a generated ed25519 key verifies against its RFC 8463 record', async (t) => {
  const options = { domain: DOMAIN, selector: 'ed1', keyType: 'ed25519' as const }
  const { privateKeyPem, records } = generateDkimKey(options)
  t.match(records.dkim.value, /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/)
  const raw = signedMessage(privateKeyPem, 'ed1')
  t.equal(await verifyAgainst(raw, records.dkim.name, records.dkim.value), 'pass')
})

t.test('bad options are refused', async (t) => {
  const bad = { code: 'MIMAMORI_BAD_REQUEST' }
  t.throws(() => generateDkimKey({ domain: 'localhost', selector: 's' }), bad)
  t.throws(() => generateDkimKey({ domain: DOMAIN, selector: 'a b' }), bad)
  t.throws(() => generateDkimKey({ domain: DOMAIN, selector: 's', bits: 1024 }), bad)
  t.throws(() => generateDkimKey({ domain: DOMAIN, selector: 's', publicIp: '999.1.1.1' }), bad)
})
