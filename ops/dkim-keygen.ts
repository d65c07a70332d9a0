// Used by `mimamori dkim-keygen`: makes a DKIM key and the DNS records (DKIM, SPF, DMARC) that
// Japanese carriers and large mailbox providers check before they accept bulk alert mail.

import { generateKeyPairSync } from 'node:crypto'
import { MimamoriError } from '../appliance/errors.js'

export interface DnsRecord { name: string, type: 'TXT', value: string }

export interface DkimDnsRecords { dkim: DnsRecord, spf: DnsRecord, dmarc: DnsRecord }

export interface DkimKeygenOptions {
  domain: string
  selector: string
  /** RSA key length; 2048 by default, since carriers verify RSA and 1024 is now refused. */
  bits?: number
  /** ed25519 makes signing ~10x cheaper, but few verifiers accept it alone: RSA by default. */
  keyType?: 'rsa' | 'ed25519'
  /** The appliance's public sending address; without it SPF names the domain's MX hosts. */
  publicIp?: string
  /**
   * Where DMARC aggregate reports go: a mailbox a person reads. Not on the mail domain by
   * default, since the appliance keeps no mailbox and refuses unknown local parts there.
   */
  rua?: string
}

export interface DkimKey { privateKeyPem: string, records: DkimDnsRecords }

const DOMAIN = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/
const SELECTOR = /^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$/
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/
const IPV6 = /^[0-9a-f:]+$/i
// One character-string in a TXT record holds at most 255 octets (RFC 1035 3.3).
const TXT_STRING = 255

function checkOptions (options: DkimKeygenOptions): void {
  const bits = options.bits ?? 2048
  if (options.rua !== undefined && !/^[^\s@;,!]+@[a-z0-9.-]+\.[a-z]{2,}$/i.test(options.rua)) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `--rua "${options.rua}" is not a mail address`)
  }
  if (!DOMAIN.test(options.domain.toLowerCase())) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `"${options.domain}" is not a domain name`)
  }
  if (!SELECTOR.test(options.selector.toLowerCase())) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `"${options.selector}" is not a DKIM selector`)
  }
  if (!Number.isInteger(bits) || bits < 2048 || bits > 4096) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'DKIM RSA keys are 2048 to 4096 bits')
  }
  const ip = options.publicIp
  if (ip !== undefined && !IPV4.test(ip) && !(ip.includes(':') && IPV6.test(ip))) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `"${ip}" is not an IP address`)
  }
}

function makeKey (options: DkimKeygenOptions): { privateKeyPem: string, record: string } {
  if (options.keyType === 'ed25519') {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    // RFC 8463 publishes the bare 32-byte key, not the SPKI structure around it.
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
    return { privateKeyPem: pem, record: `v=DKIM1; k=ed25519; p=${raw.toString('base64')}` }
  }

  const modulusLength = options.bits ?? 2048
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength })
  const spki = publicKey.export({ format: 'der', type: 'spki' }).toString('base64')
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  return { privateKeyPem: pem, record: `v=DKIM1; k=rsa; p=${spki}` }
}

function spfValue (publicIp: string | undefined): string {
  if (publicIp === undefined) return 'v=spf1 mx -all'
  return `v=spf1 ${publicIp.includes(':') ? 'ip6' : 'ip4'}:${publicIp} -all`
}

/** Makes a DKIM key pair and the three TXT records the mail domain needs. */
export function generateDkimKey (options: DkimKeygenOptions): DkimKey {
  checkOptions(options)
  const domain = options.domain.toLowerCase()
  const { privateKeyPem, record } = makeKey(options)

  const selector = options.selector.toLowerCase()
  const records: DkimDnsRecords = {
    dkim: { name: `${selector}._domainkey.${domain}`, type: 'TXT', value: record },
    // -all: this domain exists only to send alerts from this box, so nothing else may use it.
    spf: { name: domain, type: 'TXT', value: spfValue(options.publicIp) },
    // p=none first: a mistake in SPF or DKIM must not send a disaster alert to spam while the
    // reports (rua) are still unread. Move to p=quarantine once a few weeks of reports pass.
    dmarc: {
      name: `_dmarc.${domain}`,
      type: 'TXT',
      value: options.rua === undefined ? 'v=DMARC1; p=none' : `v=DMARC1; p=none; rua=mailto:${options.rua}`
    }
  }
  return { privateKeyPem, records }
}

/** A TXT value as quoted character-strings of at most 255 octets each. */
function txtStrings (value: string): string {
  const parts: string[] = []
  for (let i = 0; i < value.length; i += TXT_STRING) {
    parts.push(`"${value.slice(i, i + TXT_STRING)}"`)
  }
  return parts.length === 1 ? parts[0] ?? '""' : `( ${parts.join('\n    ')} )`
}

function zoneLine (record: DnsRecord): string {
  return `${record.name}. 3600 IN TXT ${txtStrings(record.value)}`
}

function spfNote (spf: DnsRecord): string[] {
  if (spf.value.includes(' mx ')) {
    return [
      '; SPF: このドメインの MX（本機）から送るメールだけを正規とします。本機の送信元アドレスが',
      ';   MX と異なる場合は "mx" を "ip4:<本機のグローバル IP>" に置き換えてください。',
      '; SPF: only this domain\'s MX hosts (this appliance) may send for it. If the appliance sends',
      ';   from another public address, replace "mx" with "ip4:<its public IP>".'
    ]
  }
  return [
    '; SPF: このドメインのメールを送ってよいのは本機のアドレスだけ、と宣言します。',
    '; SPF: only this appliance\'s public address may send mail for this domain.'
  ]
}

/** The records as zone-file lines, each with a short note in Japanese and English. */
export function formatDnsRecords (records: DkimDnsRecords): string {
  return [
    '; DKIM: 受信側（携帯各社など）が本機の電子署名を確かめるための公開鍵です。',
    '; DKIM: the public key receivers (the carriers among them) check our signature with.',
    zoneLine(records.dkim),
    '',
    ...spfNote(records.spf),
    zoneLine(records.spf),
    '',
    '; DMARC: まず p=none で報告（rua）だけを受け取り、問題がなければ p=quarantine に上げます。',
    ';   rua の宛先は人が読むメールボックスにしてください（--rua。本機のドメインは受け取れません）。',
    '; DMARC: start with p=none and read the reports (rua); move to p=quarantine once they pass.',
    ';   Point rua at a mailbox a person reads (--rua; the appliance\'s own domain keeps no mail).',
    zoneLine(records.dmarc),
    ''
  ].join('\n')
}
