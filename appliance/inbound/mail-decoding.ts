// Runs in the appliance for every inbound mail (sign-ups, commands, replies, bounces) and in
// `mimamori inspect-mail`: reads a raw mail into the few decoded fields the handlers use.
// mailparser does the MIME work; the charsets go through charset-decoding.ts, so Japanese phone
// mail reads right whatever its label, and a broken mail reads as an empty one, never an error.

import { Readable, Transform, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { simpleParser, type ParsedMail } from 'mailparser'
import { Joiner, Splitter, type MimeNode } from '@zone-eu/mailsplit'
import addressparser from 'nodemailer/lib/addressparser/index.js'
import { UNLABELLED, decodeHeaderValue, decodeText, decodeWords, headerText } from './charset-decoding.js'

export interface DecodedMail {
  /** the sender's bare address as written (quotes of a legacy local part removed), domain lower-cased */
  from?: string
  fromName?: string
  /** the bare addresses of the To header */
  to: string[]
  subject: string
  /** decoded plain text; made from the HTML part when there is no text part */
  text: string
  messageId?: string
  inReplyTo?: string
  references: string[]
  /** ISO 8601 */
  date?: string
  /** sent by a program (auto-reply, list, bounce), so never to be answered automatically */
  autoSubmitted: boolean
  attachments: Array<{ filename?: string, contentType: string, size: number }>
}

/** Reads a raw mail. Never rejects: what cannot be read is left empty. */
export async function decodeMail (raw: Buffer): Promise<DecodedMail> {
  try {
    return toDecodedMail(await parseMail(raw))
  } catch {
    return { to: [], subject: '', text: '', references: [], autoSubmitted: false, attachments: [] }
  }
}

/**
 * mailparser's reading of a mail with our charset handling, for this module and the bounce
 * classifier (which keeps delivery-status parts as attachments). Rejects on a mail that
 * mailparser cannot split at all (a header over 1 MB, over 1,000 parts).
 */
export async function parseMail (raw: Buffer, options: { keepDeliveryStatus?: boolean } = {}): Promise<ParsedMail> {
  const labelled = await labelTextParts(withLineFeeds(raw))
  return await simpleParser(labelled, {
    Iconv: CharsetDecoder,
    keepDeliveryStatus: options.keepDeliveryStatus ?? false,
    skipImageLinks: true,
    skipTextToHtml: true,
    skipTextLinks: true
  })
}

/** The unfolded raw values (one byte per character) of a header, in order. */
export function rawHeaderValues (parsed: ParsedMail, name: string): string[] {
  const key = name.toLowerCase()
  return parsed.headerLines
    .filter((line) => line.key === key)
    .map((line) => line.line.slice(line.line.indexOf(':') + 1).replace(/\r?\n(?=[ \t])/g, '').trim())
}

/** The bare addresses in the named headers (To, Cc, Delivered-To ...), in header order. */
export function headerAddresses (parsed: ParsedMail, ...names: string[]): string[] {
  return names.flatMap((name) => rawHeaderValues(parsed, name))
    .flatMap((value) => addressparser(headerText(value), { flatten: true }))
    .map((entry) => bareAddress(entry.address))
    .filter((address): address is string => address !== undefined)
}

/** `"taro..yamada."@DoCoMo.ne.jp` → `taro..yamada.@docomo.ne.jp`; undefined without an `@`. */
export function bareAddress (address: string | undefined): string | undefined {
  const text = (address ?? '').trim().replace(/^<(.*)>$/, '$1')
  const at = text.lastIndexOf('@')
  if (at <= 0 || at === text.length - 1) return undefined
  let local = text.slice(0, at)
  if (local.length >= 2 && local.startsWith('"') && local.endsWith('"')) {
    local = local.slice(1, -1).replace(/\\(.)/g, '$1')
  }
  return `${local}@${text.slice(at + 1).toLowerCase()}`
}

function toDecodedMail (parsed: ParsedMail): DecodedMail {
  const sender = firstSender(parsed)
  const references = parsed.references ?? []
  return {
    ...(sender?.address === undefined ? {} : { from: sender.address }),
    ...(sender?.name ? { fromName: sender.name } : {}),
    to: headerAddresses(parsed, 'to'),
    subject: (rawHeaderValues(parsed, 'subject').map(decodeHeaderValue)[0] ?? '').trim(),
    text: (parsed.text ?? '').replace(/\r\n?/g, '\n'),
    ...(parsed.messageId ? { messageId: parsed.messageId } : {}),
    ...(parsed.inReplyTo ? { inReplyTo: parsed.inReplyTo } : {}),
    references: typeof references === 'string' ? [references] : references,
    ...(parsed.date && !Number.isNaN(parsed.date.getTime()) ? { date: parsed.date.toISOString() } : {}),
    autoSubmitted: isAutoSubmitted(parsed),
    attachments: parsed.attachments.map((part) => ({
      ...(part.filename ? { filename: part.filename } : {}),
      contentType: part.contentType,
      size: part.size
    }))
  }
}

function firstSender (parsed: ParsedMail): { address?: string, name: string } | undefined {
  const value = rawHeaderValues(parsed, 'from')[0]
  if (value === undefined) return undefined
  const entry = addressparser(headerText(value), { flatten: true })[0]
  if (entry === undefined) return undefined
  const address = bareAddress(entry.address)
  return { ...(address === undefined ? {} : { address }), name: decodeWords(entry.name).trim() }
}

// RFC 3834 marks, the older vendor headers that still come with vacation replies, list and
// bulk precedence, and reports (bounces, feedback): none of these may be answered by a program.
function isAutoSubmitted (parsed: ParsedMail): boolean {
  const first = (name: string): string => (rawHeaderValues(parsed, name)[0] ?? '').toLowerCase()
  const autoSubmitted = first('auto-submitted')
  if (autoSubmitted !== '' && !autoSubmitted.startsWith('no')) return true
  if (/^(?:bulk|junk|list|auto_reply)\b/.test(first('precedence'))) return true
  if (/\b(?:oof|autoreply|all)\b/.test(first('x-auto-response-suppress'))) return true
  const vendor = ['x-autoreply', 'x-autorespond', 'x-autogenerated', 'x-autoreply-from', 'x-mail-autoreply']
  if (vendor.some((name) => first(name) !== '')) return true
  return /^multipart\/report\b/.test(first('content-type'))
}

/** A mail saved with bare CRs (old Mac mail programs) gets line feeds the splitter can see. */
function withLineFeeds (raw: Buffer): Buffer {
  if (raw.includes(0x0a) || !raw.includes(0x0d)) return raw
  return Buffer.from(raw.toString('latin1').replace(/\r/g, '\r\n'), 'latin1')
}

// mailparser reads a text part without a charset (or labelled US-ASCII) as UTF-8 and passes
// only labelled parts to a decoder, so a pre-pass labels those parts for CharsetDecoder to guess.
async function labelTextParts (raw: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = []
  const labeller = new Transform({
    objectMode: true,
    transform (data: { type?: string }, _encoding, done) {
      if (data.type === 'node' && needsLabel(data as MimeNode)) (data as MimeNode).setCharset(UNLABELLED)
      done(null, data)
    }
  })
  const sink = new Writable({ write (chunk: Buffer, _encoding, done) { chunks.push(chunk); done() } })
  await pipeline(Readable.from([raw]), new Splitter(), labeller, new Joiner(), sink)
  return Buffer.concat(chunks)
}

function needsLabel (node: MimeNode): boolean {
  const type = node.contentType || 'text/plain'
  if (type !== 'text/plain' && type !== 'text/html') return false
  if (node.charset && !/^(?:us-?)?ascii$/i.test(node.charset)) return false
  // a mail quoted inside another stays byte for byte as it came
  for (let parent = node.parentNode; parent; parent = parent.parentNode) {
    if (parent.contentType === 'message/rfc822') return false
  }
  return true
}

/** mailparser's hook for a charset decoder (the `Iconv` option): collects a part, then decodes it. */
class CharsetDecoder extends Transform {
  private readonly chunks: Buffer[] = []

  constructor (private readonly label: string) {
    super()
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.chunks.push(chunk)
    done()
  }

  override _flush (done: () => void): void {
    this.push(Buffer.from(decodeText(Buffer.concat(this.chunks), this.label), 'utf8'))
    done()
  }
}
