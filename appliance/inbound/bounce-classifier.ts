// Runs in the appliance for mail to a return path (bounce+<token>@) and in
// `mimamori inspect-mail`: says what such a mail is — a bounce (hard or soft, with a reason per
// recipient), a feedback complaint, a delivery notice, an auto-reply, or nothing of the kind.
// It reads RFC 3464 delivery-status parts (and their RFC 6533 global form), RFC 5965 feedback
// reports, Amazon SES notifications, and the plain-text bounces that qmail, exim, the Japanese
// carriers and many others send. It is total: whatever the input, it returns a report.

import type { ParsedMail } from 'mailparser'
import { parseMail, rawHeaderValues, bareAddress } from './mail-decoding.js'
import { decodeHeaderValue, decodeText } from './charset-decoding.js'
import {
  reasonFor, replyCodeIn, statusIn, textReason, type BounceFinding, type BounceReason
} from './bounce-patterns.js'

export type { BounceReason } from './bounce-patterns.js'

export type BounceVerdict = 'hard' | 'soft' | 'none'

export type BounceKind = 'bounce' | 'feedback' | 'delivered' | 'vacation' | 'other'

export interface ReportedRecipient {
  address?: string
  verdict: BounceVerdict
  reason: BounceReason
  status?: string
  replyCode?: number
  diagnostic?: string
}

export interface BounceReport {
  kind: BounceKind
  recipients: ReportedRecipient[]
  /** RFC 5965 Feedback-Type (abuse, opt-out, fraud ...), for a feedback report */
  feedbackType?: string
}

/** A mailbox or host that does not exist: the only reasons that make a bounce hard. */
const HARD: ReadonlySet<BounceReason> = new Set(['user-unknown', 'host-unknown'])

const NOTHING: BounceReport = { kind: 'other', recipients: [] }

/** What a mail to a return path is. Never rejects. */
export async function classifyBounce (raw: Buffer): Promise<BounceReport> {
  try {
    return classifyParsed(await parseMail(raw, { keepDeliveryStatus: true }))
  } catch {
    return NOTHING
  }
}

function classifyParsed (parsed: ParsedMail): BounceReport {
  const parts = reportParts(parsed)
  const feedback = parts.find((p) => p.type === 'message/feedback-report')
  if (feedback !== undefined) return feedbackReport(feedback.text)

  const ses = sesNotification(parsed.text ?? '')
  if (ses !== undefined) return ses

  const status = parts.find((p) => /^message\/(?:global-)?delivery-status$/.test(p.type))
  if (status !== undefined) {
    const report = deliveryStatusReport(status.text, explanation(parsed))
    if (report.recipients.length > 0) return report
  }

  // exim and others mark their bounces auto-replied too: the bounce test goes first
  if (looksLikeBounce(parsed)) return plainBounce(parsed)
  if (isAutoReply(parsed)) return { kind: 'vacation', recipients: [vacation()] }
  return NOTHING
}

interface ReportPart { type: string, text: string }

// mailparser keeps delivery-status and feedback-report parts as attachments; the global
// (UTF-8) form is already text, the classic one is 7-bit.
function reportParts (parsed: ParsedMail): ReportPart[] {
  return parsed.attachments
    .filter((a) => /^(?:message|text)\/(?:global-)?(?:delivery-status|feedback-report)$/i.test(a.contentType))
    .map((a) => ({
      type: a.contentType.toLowerCase().replace(/^text\//, 'message/'),
      text: decodeText(a.content, 'utf-8')
    }))
}

function feedbackReport (text: string): BounceReport {
  const fields = fieldBlocks(text).flat()
  const type = fields.find(([name]) => name === 'feedback-type')?.[1].toLowerCase().trim()
  const address = fields.find(([name]) => name === 'original-rcpt-to' || name === 'removal-recipient')?.[1]
  const recipient: ReportedRecipient = { verdict: 'none', reason: 'feedback' }
  const bare = bareAddress(address)
  if (bare !== undefined) recipient.address = bare
  return { kind: 'feedback', recipients: [recipient], ...(type ? { feedbackType: type } : {}) }
}

/** RFC 3464 per-recipient blocks, each judged with the bounce's explanation around it. */
function deliveryStatusReport (text: string, context: string): BounceReport {
  const blocks = fieldBlocks(text).filter((block) =>
    block.some(([name]) => name === 'final-recipient' || name === 'original-recipient'))
  const findings = blocks.map((block) => findingOf(block, blocks.length > 1 ? context : undefined, context))
  const done = (f: BounceFinding): boolean => DONE.test(f.action ?? '')
  if (findings.length > 0 && findings.every(done)) {
    return { kind: 'delivered', recipients: findings.map((f) => notBounce(f, 'delivered')) }
  }
  const failed = findings.filter((f) => !done(f))
  return { kind: 'bounce', recipients: failed.map(judge) }
}

// Actions that say the message got through (\"deliverable\" is what Postfix writes for a
// verification request).
const DONE = /^(?:delivered|relayed|expanded|deliverable)$/

/** One recipient block; `shared` is the explanation when it speaks of several recipients. */
function findingOf (block: Array<[string, string]>, shared: string | undefined, whole: string): BounceFinding {
  const field = (name: string): string | undefined => block.find(([n]) => n === name)?.[1]
  const address = typed(field('final-recipient')) ?? typed(field('original-recipient'))
  const diagnostic = typed(field('diagnostic-code'))
  const status = statusIn(field('status'))
  const context = shared === undefined ? whole : near(shared, address)
  const finding: BounceFinding = { context }
  const bare = bareAddress(address)
  if (bare !== undefined) finding.address = bare
  const action = field('action')?.trim().toLowerCase()
  if (action) finding.action = action
  if (status !== undefined) finding.status = status
  if (diagnostic) finding.diagnostic = diagnostic
  const code = replyCodeIn(diagnostic) ?? replyCodeIn(context)
  if (code !== undefined) finding.replyCode = code
  return finding
}

/** `rfc822; taro@example.jp` → `taro@example.jp`; a value without a type stays as it is. */
function typed (value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  const semi = value.indexOf(';')
  return (semi >= 0 ? value.slice(semi + 1) : value).trim()
}

/** Header-style fields in blank-line separated blocks, names lower-cased, folded lines joined. */
function fieldBlocks (text: string): Array<Array<[string, string]>> {
  return text.replace(/\r\n?/g, '\n').split(/\n[ \t]*\n/).map((block) => {
    const fields: Array<[string, string]> = []
    for (const line of block.split('\n')) {
      const last = fields[fields.length - 1]
      if (/^[ \t]/.test(line) && last !== undefined) {
        last[1] = `${last[1]} ${line.trim()}`
        continue
      }
      const colon = line.indexOf(':')
      if (colon > 0) fields.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()])
    }
    return fields
  }).filter((block) => block.length > 0)
}

function judge (finding: BounceFinding): ReportedRecipient {
  const reason = reasonFor(finding)
  const verdict: BounceVerdict = HARD.has(reason) ? 'hard' : 'soft'
  const out: ReportedRecipient = { verdict, reason }
  if (finding.address !== undefined) out.address = finding.address
  if (finding.status !== undefined) out.status = finding.status
  if (finding.replyCode !== undefined) out.replyCode = finding.replyCode
  if (finding.diagnostic !== undefined) out.diagnostic = finding.diagnostic.slice(0, 500)
  return out
}

function notBounce (finding: BounceFinding, reason: BounceReason): ReportedRecipient {
  const out: ReportedRecipient = { verdict: 'none', reason }
  if (finding.address !== undefined) out.address = finding.address
  if (finding.status !== undefined) out.status = finding.status
  return out
}

function vacation (): ReportedRecipient {
  return { verdict: 'none', reason: 'vacation' }
}

// ---- Amazon SES notifications (JSON in the body) ------------------------------------------

const SES_SUBTYPES: Record<string, BounceReason> = {
  noemail: 'user-unknown',
  suppressed: 'user-unknown',
  onaccountsuppressionlist: 'user-unknown',
  mailboxfull: 'mailbox-full',
  messagetoolarge: 'message-too-big',
  contentrejected: 'spam',
  attachmentrejected: 'spam'
}

function sesNotification (text: string): BounceReport | undefined {
  const start = text.indexOf('{"notificationType"')
  if (start < 0) return undefined
  const end = text.lastIndexOf('}')
  let note: SesNote
  try {
    note = JSON.parse(text.slice(start, end + 1)) as SesNote
  } catch {
    return undefined
  }
  if (note.notificationType === 'Delivery') {
    const recipients = (note.delivery?.recipients ?? []).map((a) => withAddress({ verdict: 'none', reason: 'delivered' }, a))
    return { kind: 'delivered', recipients }
  }
  if (note.notificationType === 'Complaint') {
    const type = note.complaint?.complaintFeedbackType
    const recipients = (note.complaint?.complainedRecipients ?? [])
      .map((r) => withAddress({ verdict: 'none', reason: 'feedback' }, r.emailAddress))
    return { kind: 'feedback', recipients, ...(type ? { feedbackType: type.toLowerCase() } : {}) }
  }
  if (note.notificationType !== 'Bounce') return undefined
  const subtype = SES_SUBTYPES[(note.bounce?.bounceSubType ?? '').toLowerCase()]
  const recipients = (note.bounce?.bouncedRecipients ?? []).map((r) => {
    const finding: BounceFinding = { context: '', ...(subtype ? { statedReason: subtype } : {}) }
    const address = bareAddress(r.emailAddress)
    if (address !== undefined) finding.address = address
    if (r.diagnosticCode) finding.diagnostic = r.diagnosticCode
    const status = statusIn(r.status)
    if (status !== undefined) finding.status = status
    return judge(finding)
  })
  return { kind: 'bounce', recipients }
}

interface SesNote {
  notificationType?: string
  delivery?: { recipients?: string[] }
  complaint?: { complaintFeedbackType?: string, complainedRecipients?: Array<{ emailAddress?: string }> }
  bounce?: {
    bounceSubType?: string
    bouncedRecipients?: Array<{ emailAddress?: string, status?: string, diagnosticCode?: string }>
  }
}

function withAddress (recipient: ReportedRecipient, address: string | undefined): ReportedRecipient {
  const bare = bareAddress(address)
  return bare === undefined ? recipient : { ...recipient, address: bare }
}

// ---- plain-text bounces ---------------------------------------------------------------------

const DAEMON = /^(?:mailer-daemon|postmaster|mail-daemon|mailer|daemon|mdaemon|bounces?|nobody|root|smtp|mail)(?:[+-][^@]*)?@/i
const BOUNCE_SUBJECT = new RegExp([
  'undeliver', 'undelivered', 'returned mail', 'delivery (?:status notification|failure|failed|problem|report|notification)',
  'mail delivery (?:failed|failure|system|subsystem)', 'failure notice', 'non[- ]?delivery', 'could not (?:be )?deliver',
  'delivery has failed', 'message not delivered', 'rejected', 'bounce', 'mail system error', 'warning: message',
  '不達', 'エラー通知', 'メールエラー', '配信(?:エラー|失敗|不能)', '送信(?:エラー|失敗)', 'エラーメール', '配送(?:エラー|失敗)', '届きませんでした'
].join('|'), 'i')

// What only a mail system writes about a message it could not deliver (au's notices come from
// a no-reply address with the subject "Mail").
const BOUNCE_WORDS = new RegExp([
  'could not be delivered to', "(?:wasn't|was not|were not) able to deliver", 'delivery to the following',
  'following (?:address(?:es|\\(es\\))?|recipients?) (?:failed|did not receive|could not)',
  'message (?:could not|couldn\'t) be delivered', '送信できませんでした', '配信できませんでした', '届けられませんでした'
].join('|'), 'i')

function looksLikeBounce (parsed: ParsedMail): boolean {
  if (rawHeaderValues(parsed, 'x-failed-recipients').length > 0) return true
  const from = (rawHeaderValues(parsed, 'from')[0] ?? '').replace(/^.*<([^>]*)>.*$/, '$1').trim()
  const subject = decodeHeaderValue(rawHeaderValues(parsed, 'subject')[0] ?? '')
  const byDaemon = DAEMON.test(from) || /mail delivery (?:subsystem|system)/i.test(rawHeaderValues(parsed, 'from')[0] ?? '')
  const text = explanation(parsed)
  if (!byDaemon && !BOUNCE_SUBJECT.test(subject) && !BOUNCE_WORDS.test(text)) return false
  return textReason(text) !== undefined || statusIn(text) !== undefined
}

function plainBounce (parsed: ParsedMail): BounceReport {
  const text = explanation(parsed)
  const failed = rawHeaderValues(parsed, 'x-failed-recipients')
    .flatMap((value) => value.split(','))
    .map((a) => bareAddress(a))
    .filter((a): a is string => a !== undefined)
  const addresses = [...new Set(failed.length > 0 ? failed : addressesIn(text, parsed))]
  if (addresses.length === 0) return { kind: 'bounce', recipients: [judge(plainFinding(text, text))] }
  const several = addresses.length > 1
  return {
    kind: 'bounce',
    recipients: addresses.map((a) => judge(plainFinding(text, several ? near(text, a) : text, a)))
  }
}

function plainFinding (text: string, context: string, address?: string): BounceFinding {
  const finding: BounceFinding = { context }
  if (address !== undefined) finding.address = address
  const diagnostic = remoteReply(context)
  if (diagnostic !== undefined) finding.diagnostic = diagnostic
  const status = statusIn(context) ?? statusIn(text)
  if (status !== undefined) finding.status = status
  const code = replyCodeIn(context) ?? replyCodeIn(text)
  if (code !== undefined) finding.replyCode = code
  return finding
}

/** The addresses an explanation names, less the mailer's own and the ones mail came from. */
function addressesIn (text: string, parsed: ParsedMail): string[] {
  const own = new Set([...rawHeaderValues(parsed, 'from'), ...rawHeaderValues(parsed, 'to')]
    .flatMap((v) => [...v.matchAll(ADDRESS)].map((m) => (bareAddress(m[0]) ?? '').toLowerCase())))
  return [...text.matchAll(ADDRESS)]
    .map((m) => bareAddress(m[0]))
    .filter((a): a is string => a !== undefined && !own.has(a.toLowerCase()) && !DAEMON.test(a))
}

const ADDRESS = /(?:"[^"\r\n]{1,64}"|[A-Za-z0-9._%+!#$&'*/=?^`{|}~-]{1,64})@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/g

// Where the returned message begins in a plain-text bounce: what follows is the original mail,
// whose own words (an alert about a "blocked" road) must not be read as the failure.
const RETURNED = new RegExp([
  '^-+ ?(?:original message|below this line is a copy|this is a copy of the message|the following is a copy)',
  '^-+\\s*(?:returned|original|unsent) (?:mail|message)',
  '^-+\\s*(?:元の|送信した|以下、?送信)(?:メール|メッセージ)',
  '^(?:return-path|received|dkim-signature|message-id): ',
  '^content-type: message/rfc822'
].join('|'), 'im')

/** The human-readable part of a bounce: the text before the returned message, at most 8 KB. */
function explanation (parsed: ParsedMail): string {
  const text = (parsed.text ?? '').replace(/\r\n?/g, '\n')
  const cut = RETURNED.exec(text)
  return (cut === null ? text : text.slice(0, cut.index)).slice(0, 8192)
}

/**
 * The part of a text about one address: from the line naming it up to the first line naming
 * another address (an address may be named again in the server's reply), at most 1,500 chars.
 */
function near (text: string, address: string | undefined): string {
  if (address === undefined) return text
  const local = address.slice(0, address.lastIndexOf('@')).replace(/^"|"$/g, '').toLowerCase()
  const at = local === '' ? -1 : text.toLowerCase().indexOf(local)
  if (at < 0) return text
  const start = text.lastIndexOf('\n', at) + 1
  let end = Math.min(text.length, start + 1500)
  for (const match of text.slice(at).matchAll(ADDRESS)) {
    const other = bareAddress(match[0])?.toLowerCase()
    if (other !== undefined && !other.startsWith(local)) {
      end = Math.min(end, text.lastIndexOf('\n', at + match.index) + 1)
      break
    }
  }
  return text.slice(start, Math.max(end, at + address.length))
}

// How plain-text bounces quote the receiving server: Postfix "host ... said: 550 ...", qmail
// "Remote host said: ...", au and others a transcript line "<<< 550 ...".
const REMOTE_REPLY = /(?:<<<|\bsaid:|\bresponse was:|\bsmtp error from remote (?:mail server|mailer)[^:]*:)\s*([^\n]+(?:\n[ \t]+[^\n]+)*)/i

/** The receiving server's reply that a plain-text bounce quotes, if it quotes one. */
function remoteReply (text: string): string | undefined {
  const reply = REMOTE_REPLY.exec(text)?.[1]?.replace(/\s+/g, ' ').trim()
  return reply === undefined || reply === '' ? undefined : reply.slice(0, 1000)
}

// ---- auto-replies ---------------------------------------------------------------------------

const VACATION_SUBJECT = /out of (?:the )?office|auto(?:matic)?[- ]?(?:reply|response|answer)|vacation|away from|不在|自動(?:返信|応答)|休暇/i

function isAutoReply (parsed: ParsedMail): boolean {
  const first = (name: string): string => (rawHeaderValues(parsed, name)[0] ?? '').toLowerCase()
  if (first('auto-submitted').startsWith('auto-replied')) return true
  if (['x-autoreply', 'x-autorespond', 'x-autoreply-from', 'x-mail-autoreply'].some((n) => first(n) !== '')) return true
  if (/\b(?:oof|autoreply)\b/.test(first('x-auto-response-suppress'))) return true
  if (first('precedence') === 'auto_reply') return true
  return VACATION_SUBJECT.test(decodeHeaderValue(rawHeaderValues(parsed, 'subject')[0] ?? ''))
}
