// Runs in the delivery worker threads: turns one broadcast into a template encoded once, then
// builds each personal message from it by substituting the recipient's token (and signing it).

import { createHash } from 'node:crypto'
import { MimamoriError, assertHeaderSafe } from '../appliance/errors.js'
import { parseAddress } from '../appliance/address.js'
import type { DkimSigner } from './dkim-signer.js'

export interface BroadcastContent {
  broadcastId: string
  subject: string
  body: string
  fromName: string
  fromAddress: string
  organisation: { name: string, postalAddress: string, phone?: string }
  mailDomain: string
  baseUrl: string
  priority: 'emergency' | 'normal' | 'bulk'
  language?: 'ja' | 'en'
  /**
   * Whether the appliance reads mail sent back to it. Only then does a message offer replies:
   * a Reply-To, a mailto unsubscribe URI, and the line saying 「配信停止」 by reply works.
   */
  repliesRead?: boolean
}

export interface RecipientFields {
  to: string
  /** the recipient token: links, Reply-To, Message-ID */
  token: string
  /** the return-path token, signed for bounces only (recipient-token.ts) */
  bounceToken: string
}

export interface RenderedMessage {
  envelopeFrom: string, to: string, messageId: string, raw: Buffer
}

const TOKEN = /^[A-Za-z0-9_-]{1,100}$/
const BROADCAST_ID = /^[A-Za-z0-9-]{1,100}$/
// The spelling parseAddress gives for SMTP: a dot-atom or a quoted legacy local part. Nothing
// here can open a second address, a comment or a group in the To header.
const LOCAL = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
const SMTP_ADDRESS = new RegExp(`^(?:${LOCAL}|"${LOCAL}")@[A-Za-z0-9.-]+$`)
const DOMAIN = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
// RFC 2047 asks for lines of at most 76 characters where encoded words appear.
const LINE_LIMIT = 76
const WORD_OVERHEAD = '=?UTF-8?B??='.length
// 57 bytes are exactly one 76-character base64 line.
const BASE64_LINE_BYTES = 57

function utf8Length (codePoint: number): number {
  if (codePoint < 0x80) return 1
  if (codePoint < 0x800) return 2
  return codePoint < 0x10000 ? 3 : 4
}

/** How many UTF-8 bytes fit in one encoded word that starts `column` characters into its line. */
function wordBudget (column: number): number {
  const base64Chars = LINE_LIMIT - column - WORD_OVERHEAD
  return Math.floor(base64Chars / 4) * 3
}

function encodeWord (text: string): string {
  return `=?UTF-8?B?${Buffer.from(text, 'utf8').toString('base64')}?=`
}

/**
 * Encodes text as RFC 2047 B words, folded one word a line. Words break between code points,
 * never inside one, so each word decodes on its own to valid UTF-8.
 */
function encodeWords (text: string, column: number): string {
  const words: string[] = []
  let chunk = ''
  let bytes = 0
  let budget = wordBudget(column)

  for (const char of text) {
    const size = utf8Length(char.codePointAt(0) ?? 0)
    if (bytes + size > budget && chunk !== '') {
      words.push(encodeWord(chunk))
      chunk = ''
      bytes = 0
      budget = wordBudget(1)
    }
    chunk += char
    bytes += size
  }

  if (chunk !== '') words.push(encodeWord(chunk))
  return words.join('\r\n ')
}

/** The folded value of a Subject header (after `Subject: `), all in UTF-8 B encoded words. */
export function encodeSubject (subject: string): string {
  return encodeWords(subject, 'Subject: '.length)
}

/** A display name and address; the address moves to its own line when it would run long. */
function encodeMailbox (header: string, name: string, address: string): string {
  if (name === '') return address
  const phrase = encodeWords(name, header.length + 2)
  const lastLine = phrase.slice(phrase.lastIndexOf('\n') + 1)
  const fits = lastLine.length + address.length + 3 <= LINE_LIMIT
  return `${phrase}${fits ? ' ' : '\r\n '}<${address}>`
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const TOKYO_OFFSET_MS = 9 * 3600 * 1000

function pad (value: number): string {
  return value < 10 ? `0${value}` : String(value)
}

/** RFC 5322 date in Japan time (no daylight saving, so the offset is always +0900). */
export function formatDate (date: Date): string {
  const tokyo = new Date(date.getTime() + TOKYO_OFFSET_MS)
  const day = DAYS[tokyo.getUTCDay()] ?? ''
  const month = MONTHS[tokyo.getUTCMonth()] ?? ''
  const clock = [tokyo.getUTCHours(), tokyo.getUTCMinutes(), tokyo.getUTCSeconds()]
  const time = clock.map(pad).join(':')
  return `${day}, ${pad(tokyo.getUTCDate())} ${month} ${tokyo.getUTCFullYear()} ${time} +0900`
}

function wrapBase64 (base64: string): string {
  let out = ''
  for (let i = 0; i < base64.length; i += LINE_LIMIT) {
    out += base64.slice(i, i + LINE_LIMIT) + '\r\n'
  }
  return out
}

// Plain, polite wording; the sender identification and a way out are required in every mail.
const FOOTER = {
  ja: {
    confirm: '「確認しました」と伝えるには次のリンクを開いてください。',
    stop: [
      'このメールは、配信を希望された方にお送りしています。',
      '配信を停止するには次のリンクを開いてください。'
    ],
    reply: 'このメールに「配信停止」と書いて返信していただいても停止できます。',
    sender: '配信元',
    address: '住所',
    phone: '電話'
  },
  en: {
    confirm: 'To let us know you have read this message, please open this link:',
    stop: [
      'You receive this message because you signed up for it.',
      'To stop these messages, open this link:'
    ],
    reply: 'You can also stop them by replying to this message with 「配信停止」 (stop).',
    sender: 'From',
    address: 'Address',
    phone: 'Phone'
  }
}

function normaliseLines (text: string): string {
  return text.replace(/\r\n|\r|\n/g, '\r\n')
}

/**
 * The body as three fixed pieces around the two places the token goes: the read-confirmation
 * link, then the unsubscribe link in the sender identification footer.
 */
function bodyPieces (content: BroadcastContent, baseUrl: string): [string, string, string] {
  const text = FOOTER[content.language ?? 'ja']
  const org = content.organisation
  const body = normaliseLines(content.body).replace(/(\r\n)*$/, '')
  const sender = [
    `${text.sender}: ${org.name}`,
    `${text.address}: ${normaliseLines(org.postalAddress)}`
  ]
  if (org.phone !== undefined && org.phone !== '') sender.push(`${text.phone}: ${org.phone}`)

  const head = `${body}\r\n\r\n${text.confirm}\r\n${baseUrl}/r/`
  const middle = ['', '', '----', ...sender, '', ...text.stop, `${baseUrl}/u/`].join('\r\n')
  const tail = content.repliesRead === true ? `\r\n${text.reply}\r\n` : '\r\n'
  return [head, middle, tail]
}

function checkShared (content: BroadcastContent): void {
  for (const field of ['subject', 'fromName', 'fromAddress', 'mailDomain', 'baseUrl'] as const) {
    assertHeaderSafe(field, content[field])
  }
  assertHeaderSafe('organisation.name', content.organisation.name)

  if (!BROADCAST_ID.test(content.broadcastId)) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'broadcastId holds only letters, digits, -')
  }
  if (!DOMAIN.test(content.mailDomain.toLowerCase())) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'mailDomain is not a domain name')
  }
  if (!/^https?:\/\/[\x21-\x7e]+$/.test(content.baseUrl) || /[<>,"]/.test(content.baseUrl)) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'baseUrl must be an http(s) URL')
  }
  if (!['emergency', 'normal', 'bulk'].includes(content.priority)) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'priority must be emergency, normal or bulk')
  }
}

function checkRecipient (recipient: RecipientFields): void {
  assertHeaderSafe('to', recipient.to)
  assertHeaderSafe('token', recipient.token)
  assertHeaderSafe('bounceToken', recipient.bounceToken)

  if (!TOKEN.test(recipient.token) || !TOKEN.test(recipient.bounceToken)) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'token may hold only [A-Za-z0-9_-]')
  }
  if (!SMTP_ADDRESS.test(recipient.to)) {
    throw new MimamoriError('MIMAMORI_BAD_ADDRESS', 'to is not an SMTP address spelling')
  }
}

function smtpSpelling (address: string): string {
  try {
    return parseAddress(address).smtp
  } catch (err) {
    const message = 'fromAddress is not a valid address'
    throw new MimamoriError('MIMAMORI_BAD_ADDRESS', message, { cause: err })
  }
}

/** Header lines every message of the broadcast shares, each ending in CRLF. */
function sharedHeaders (content: BroadcastContent, fromAddress: string, domain: string): string {
  // A list id per organisation, stable across broadcasts, lets people filter one school's mail.
  const listKey = createHash('sha256').update(content.organisation.name).digest('hex').slice(0, 16)
  const lines = [
    `From: ${encodeMailbox('From:', content.fromName, fromAddress)}`,
    `Subject: ${encodeSubject(content.subject)}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=UTF-8',
    'Content-Transfer-Encoding: base64',
    `List-Id: ${encodeMailbox('List-Id:', content.organisation.name, `${listKey}.${domain}`)}`,
    'List-Unsubscribe-Post: List-Unsubscribe=One-Click',
    'Auto-Submitted: auto-generated'
  ]
  if (content.priority === 'emergency') lines.push('X-Priority: 1', 'Importance: high')
  return lines.join('\r\n') + '\r\n'
}

export class MessageTemplate {
  readonly #signer: DkimSigner | undefined
  readonly #domain: string
  readonly #baseUrl: string
  readonly #broadcastId: string
  readonly #repliesRead: boolean
  readonly #from: string
  readonly #rest: string
  // The body's leading bytes that end on a whole base64 line, encoded once for every message.
  readonly #bodyStart: Buffer
  readonly #bodyHead: Buffer
  readonly #bodyMiddle: Buffer
  readonly #bodyTail: Buffer

  constructor (content: BroadcastContent, options: { signer?: DkimSigner } = {}) {
    checkShared(content)
    this.#signer = options.signer
    this.#domain = content.mailDomain.toLowerCase()
    this.#baseUrl = content.baseUrl.replace(/\/+$/, '')
    this.#broadcastId = content.broadcastId
    this.#repliesRead = content.repliesRead === true

    const headers = sharedHeaders(content, smtpSpelling(content.fromAddress), this.#domain)
    const fromEnd = headers.indexOf('\r\nSubject:') + 2
    this.#from = headers.slice(0, fromEnd)
    this.#rest = headers.slice(fromEnd)

    const [head, middle, tail] = bodyPieces(content, this.#baseUrl)
    const headBytes = Buffer.from(head)
    const aligned = Math.floor(headBytes.length / BASE64_LINE_BYTES) * BASE64_LINE_BYTES
    this.#bodyStart = Buffer.from(wrapBase64(headBytes.subarray(0, aligned).toString('base64')))
    this.#bodyHead = headBytes.subarray(aligned)
    this.#bodyMiddle = Buffer.from(middle)
    this.#bodyTail = Buffer.from(tail)
  }

  render (recipient: RecipientFields, date: Date = new Date()): RenderedMessage {
    checkRecipient(recipient)
    const { to, token } = recipient
    const domain = this.#domain
    const messageId = `<${this.#broadcastId}.${token}@${domain}>`

    const headers = this.#from +
      `To: ${to}\r\n` +
      this.#rest +
      `Date: ${cachedDate(date)}\r\n` +
      `Message-ID: ${messageId}\r\n` +
      this.replyHeaders(token, domain)

    const tokenBytes = Buffer.from(token, 'latin1')
    const rest = [this.#bodyHead, tokenBytes, this.#bodyMiddle, tokenBytes, this.#bodyTail]
    const body = wrapBase64(Buffer.concat(rest).toString('base64'))
    const unsigned = Buffer.concat([
      Buffer.from(headers, 'latin1'), this.#bodyStart, Buffer.from(body, 'latin1')
    ])

    const raw = this.#signer === undefined ? unsigned : this.#signer.sign(unsigned)
    return { envelopeFrom: `bounce+${recipient.bounceToken}@${domain}`, to, messageId, raw }
  }

  // RFC 8058 needs only the HTTPS URI; the mailto URI and Reply-To appear when replies are read.
  // The mailto URI reaches the same reply address: its subject alone opts out (reply-handler.ts).
  private replyHeaders (token: string, domain: string): string {
    const web = `List-Unsubscribe: <${this.#baseUrl}/u/${token}>`
    if (!this.#repliesRead) return `${web}\r\n\r\n`
    return `Reply-To: reply+${token}@${domain}\r\n${web},\r\n` +
      ` <mailto:reply+${token}@${domain}?subject=unsubscribe>\r\n\r\n`
  }
}

// Messages of one broadcast go out many per second, so the formatted Date is reused per second.
let lastSecond = NaN
let lastDate = ''

function cachedDate (date: Date): string {
  const second = Math.floor(date.getTime() / 1000)
  if (second !== lastSecond) {
    lastSecond = second
    lastDate = formatDate(date)
  }
  return lastDate
}

/** One transactional mail of the outbox: a sign-up link, a confirmation, a command's preview. */
export interface SingleMessage {
  fromName: string
  fromAddress: string
  /** the recipient in its SMTP spelling (a legacy local part quoted) */
  to: string
  subject: string
  text: string
  /** with its angle brackets */
  messageId: string
  replyTo?: string
  inReplyTo?: string
  references?: string[]
}

const MESSAGE_ID = /^<[\x21-\x3b\x3d\x3f-\x7e]{1,250}>$/

/** Builds one transactional mail, encoded as a broadcast's messages are. */
export function renderSingleMessage (message: SingleMessage, date: Date = new Date()): Buffer {
  for (const field of ['fromName', 'fromAddress', 'to', 'subject', 'messageId'] as const) {
    assertHeaderSafe(field, message[field])
  }
  if (!SMTP_ADDRESS.test(message.to)) {
    throw new MimamoriError('MIMAMORI_BAD_ADDRESS', 'to is not an SMTP address spelling')
  }
  const ids = [message.messageId, message.inReplyTo ?? '<a@b>', ...(message.references ?? [])]
  if (!ids.every((id) => MESSAGE_ID.test(id))) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'a message id is not <...> of visible ASCII')
  }

  const lines = [
    `From: ${encodeMailbox('From:', message.fromName, smtpSpelling(message.fromAddress))}`,
    `To: ${message.to}`,
    `Subject: ${encodeSubject(message.subject)}`,
    `Date: ${formatDate(date)}`,
    `Message-ID: ${message.messageId}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=UTF-8',
    'Content-Transfer-Encoding: base64'
  ]
  if (message.replyTo !== undefined) lines.push(`Reply-To: ${smtpSpelling(message.replyTo)}`)
  if (message.inReplyTo !== undefined) lines.push(`In-Reply-To: ${message.inReplyTo}`)
  if ((message.references ?? []).length > 0) {
    lines.push(`References: ${(message.references ?? []).join('\r\n ')}`)
  }
  // RFC 3834: an answer to a mail is auto-replied, so that auto-responders leave it alone.
  lines.push(`Auto-Submitted: ${message.inReplyTo === undefined ? 'auto-generated' : 'auto-replied'}`)

  const body = normaliseLines(message.text).replace(/(\r\n)*$/, '\r\n')
  return Buffer.concat([
    Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'),
    Buffer.from(wrapBase64(Buffer.from(body, 'utf8').toString('base64')), 'latin1')
  ])
}
