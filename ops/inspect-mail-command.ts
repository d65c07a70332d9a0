// Runs as `mimamori inspect-mail FILE`: prints, as JSON, what the appliance makes of one mail —
// its inbound kind, the decoded subject and text, and for a bounce the classifier's verdicts.
// It reads the same modules the inbound service does and touches no data folder.

import { maskAddress } from '../appliance/address.js'
import { MimamoriError } from '../appliance/errors.js'
import {
  decodeMail, parseMail, headerAddresses, bareAddress
} from '../appliance/inbound/mail-decoding.js'
import { inboundTarget, type InboundKind } from '../appliance/inbound/local-parts.js'
import {
  classifyBounce, type BounceKind, type ReportedRecipient
} from '../appliance/inbound/bounce-classifier.js'
import { configFrom, readInputFile } from './data-commands.js'
import { readOptions } from './cli.js'

const USAGE = 'usage: mimamori inspect-mail FILE|- [--to ADDR] [--config FILE]'

const ADDRESS_IN_TEXT = /[^\s<>()[\]"',;:]+@[A-Za-z0-9.-]+/g

export interface MailInspection {
  kind: InboundKind | 'other'
  /** the address of ours that decided the kind (secret tags masked); absent when the content did */
  recipient?: string
  tag?: string
  from?: string
  subject: string
  text: string
  attachments: Array<{ filename?: string, contentType: string, size: number }>
  autoSubmitted: boolean
  bounce?: { kind: BounceKind, recipients: ReportedRecipient[], feedbackType?: string }
}

export async function inspectMailCommand (args: string[]): Promise<void> {
  const { values, positionals } = readOptions(args, { to: { type: 'string' } }, true)
  if (positionals.length !== 1) throw new MimamoriError('MIMAMORI_BAD_REQUEST', USAGE)
  const { mailDomain } = configFrom(values)
  const raw = positionals[0] === '-' ? await readStdin() : readInputFile(positionals[0] as string)

  const to = values.to as string | undefined
  const inspection = await inspectMail(raw, mailDomain, to)
  if (to !== undefined && inspection.recipient === undefined) {
    process.stderr.write(`--to ${to} is not an address of the appliance at ${mailDomain} (the ` +
      'inbound service refuses it); the kind is decided from the content.\n')
  }
  process.stdout.write(JSON.stringify(inspection, null, 2) + '\n')
}

/** What the appliance makes of a raw mail sent to `to`, or to the address its headers name. */
export async function inspectMail (
  raw: Buffer, mailDomain: string, to?: string
): Promise<MailInspection> {
  const mail = await decodeMail(raw)
  const recipient = to === undefined ? await headerRecipient(raw, mailDomain) : bareAddress(to)
  const target = recipient === undefined ? undefined : inboundTarget(recipient, mailDomain)
  const report = await classifyBounce(raw)

  // Without an address of ours, a bounce or complaint still reads as one: that is how an
  // operator holding a saved bounce wants it explained. A delivery notice or an auto-reply is
  // no bounce; its classification is still shown.
  const kind = target?.kind ?? (report.kind === 'bounce' || report.kind === 'feedback' ? 'bounce' : 'other')
  const secret = target !== undefined && target.kind !== 'signup'
  const tag = target?.tag === undefined ? undefined : secret ? maskTag(target.tag) : target.tag
  return {
    kind,
    ...(target === undefined ? {} : { recipient: ourAddress(recipient as string, tag) }),
    ...(tag === undefined ? {} : { tag }),
    ...(mail.from === undefined ? {} : { from: maskAddress(mail.from) }),
    subject: mail.subject,
    text: mail.text,
    attachments: mail.attachments,
    autoSubmitted: mail.autoSubmitted,
    ...(kind === 'bounce' || report.kind !== 'other'
      ? {
          bounce: {
            kind: report.kind,
            recipients: report.recipients.map(maskRecipient),
            ...(report.feedbackType === undefined ? {} : { feedbackType: report.feedbackType })
          }
        }
      : {})
  }
}

// The envelope recipient is not in a saved mail; the delivering MTA's trace headers name it
// best, the To header last (it may be a list's or a person's address, not ours).
async function headerRecipient (raw: Buffer, mailDomain: string): Promise<string | undefined> {
  let addresses: string[]
  try {
    addresses = headerAddresses(await parseMail(raw), 'delivered-to', 'x-original-to', 'to')
  } catch {
    return undefined
  }
  return addresses.find((address) => inboundTarget(address, mailDomain) !== undefined)
}

// A command tag is a staff member's secret and a reply or bounce token opens the recipient's
// links: a few characters tell an operator which one it is without handing it over. A short
// (invalid) tag shows at most half of itself.
function maskTag (tag: string): string {
  return `${tag.slice(0, Math.min(4, Math.floor(tag.length / 2)))}…`
}

function ourAddress (address: string, tag: string | undefined): string {
  const at = address.lastIndexOf('@')
  const local = address.slice(0, at)
  const plus = local.indexOf('+')
  const base = plus === -1 ? local : local.slice(0, plus)
  return `${base}${tag === undefined ? '' : `+${tag}`}${address.slice(at)}`
}

// The failed recipients are subscribers: masked like every address the appliance shows, in the
// diagnostic too, where the remote server usually repeats the address.
function maskRecipient (recipient: ReportedRecipient): ReportedRecipient {
  const { address, diagnostic, ...rest } = recipient
  return {
    ...(address === undefined ? {} : { address: maskAddress(address) }),
    ...rest,
    ...(diagnostic === undefined
      ? {}
      : { diagnostic: diagnostic.replace(ADDRESS_IN_TEXT, (found) => maskAddress(found)) })
  }
}

async function readStdin (): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
