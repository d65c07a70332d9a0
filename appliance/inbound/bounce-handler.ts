// Runs in the appliance's main thread: mail to bounce+<token>@, the return path (VERP) of every
// message. The token names the recipient and the broadcast; the classifier says what the mail
// is. A bounce marks the recipient's ledger row (its final state stays: the gateway did accept
// the message) and goes through the bounce policy; a feedback complaint opts the person out of
// the organisation; delivery notices and auto-replies change nothing.

import type { Appliance } from '../appliance.js'
import { parseAddress, lookupKey } from '../address.js'
import { optOut, recipientOf, type RecipientContext } from '../recipient-actions.js'
import type { LedgerRow } from '../ledger.js'
import { applyBouncePolicy, type BounceFacts, type PolicyResult } from '../bounce-policy.js'
import type { BounceReport } from './bounce-classifier.js'
import type { InboundMail } from './inbox.js'

type ReportedRecipient = BounceReport['recipients'][number]

const RANK = { hard: 2, soft: 1, none: 0 } as const

export function bounceHandler (appliance: Appliance): (mail: InboundMail) => Promise<void> {
  return async (mail) => { await handleBounce(appliance, mail) }
}

export async function handleBounce (appliance: Appliance, mail: InboundMail): Promise<void> {
  const context = recipientOf(appliance, mail.tag ?? '', 'bounce')
  if (context === undefined) {
    appliance.log.child({ component: 'inbound' }).warn({ inbound: mail.id }, 'bounce to an unknown recipient token dropped')
    return
  }
  // loaded with the first bounce, like the rest of the MIME stack (see inbox.ts)
  const { classifyBounce } = await import('./bounce-classifier.js')
  const report = await classifyBounce(mail.raw)
  const base = { inbound: mail.id, broadcast: context.broadcast.id, subscriber: context.subscriber.id }

  if (report.kind === 'feedback') {
    const result = complaint(appliance, context, mail, report)
    appliance.log.child({ component: 'inbound' }).info({ ...base, kind: report.kind, feedbackType: report.feedbackType, result }, 'bounce recorded')
    return
  }
  if (report.kind !== 'bounce') {
    // Vacation responders answer the return path: after a big broadcast there are many.
    appliance.log.child({ component: 'inbound' }).debug({ ...base, kind: report.kind }, 'bounce address mail is no bounce')
    return
  }

  const ours = appliance.directory.contact(context.subscriber).a
  const reported = pickRecipient(ours, report.recipients)
  const facts: BounceFacts = {
    verdict: reported.verdict,
    reason: reported.reason,
    source: 'dsn',
    eventId: `dsn:${mail.id}`,
    at: Date.parse(mail.receivedAt),
    broadcastId: context.broadcast.id,
    seq: context.seq
  }
  if (reported.status !== undefined) facts.status = reported.status
  const result = appliance.store.root.transactionSync(() => {
    markLedgerRow(appliance, context, facts)
    return applyBouncePolicy(appliance, context.subscriber, facts)
  })
  appliance.log.child({ component: 'inbound' }).info({ ...base, kind: report.kind, verdict: facts.verdict, reason: facts.reason, result },
    'bounce recorded')
}

// A complaint is recorded like a bounce (so that a second look at the same mail does nothing)
// and stops the organisation's mail to the person, as an opt-out would.
function complaint (
  appliance: Appliance, context: RecipientContext, mail: InboundMail, report: BounceReport
): PolicyResult {
  return appliance.store.root.transactionSync(() => {
    const result = applyBouncePolicy(appliance, context.subscriber, {
      verdict: 'none',
      reason: 'feedback',
      source: 'dsn',
      eventId: `dsn:${mail.id}`,
      at: Date.parse(mail.receivedAt),
      broadcastId: context.broadcast.id,
      seq: context.seq,
      ...(report.feedbackType === undefined ? {} : { status: report.feedbackType.slice(0, 40) })
    })
    if (result !== 'repeated') optOut(appliance, context, 'complaint')
    return result
  })
}

/**
 * The entry that speaks of our recipient. The return path's token names the recipient; the
 * report may name several addresses (a list of failures, a forward, an alias), and only an
 * entry naming the recipient's own address can say that address is dead:
 *   1. the entries naming our address: the worst of them;
 *   2. else the entries naming no address (they can only be about the message the token names);
 *   3. else every entry names another mailbox: our message came back, but our mailbox was
 *      reached (it forwarded, or the report mixes up recipients), so the worst of them counts
 *      as a soft bounce and never suppresses our address at once.
 * A bounce that names no one at all counts as soft.
 */
export function pickRecipient (ourAddress: string, recipients: ReportedRecipient[]): ReportedRecipient {
  const ours = keyOf(ourAddress)
  const named = recipients.filter((r) => ours !== undefined && keyOf(r.address) === ours)
  if (named.length > 0) return worst(named)
  const unnamed = recipients.filter((r) => keyOf(r.address) === undefined)
  if (unnamed.length > 0) return worst(unnamed)
  if (recipients.length === 0) return { verdict: 'soft', reason: 'other' }
  const other = worst(recipients)
  if (other.verdict !== 'hard') return other
  // the reason goes with the verdict: the policy suppresses at once on user-unknown whatever
  // the verdict, and that mailbox is not ours
  return { ...other, verdict: 'soft', reason: 'other' }
}

function worst (recipients: ReportedRecipient[]): ReportedRecipient {
  return [...recipients].sort((a, b) => RANK[b.verdict] - RANK[a.verdict])[0] as ReportedRecipient
}

// au moved its ezweb.ne.jp mailboxes to au.com in 2017, keeping the local part: a bounce from
// au may name either spelling of the same mailbox.
const SAME_MAILBOX_DOMAINS: Record<string, string> = { 'ezweb.ne.jp': 'au.com' }

function keyOf (address: string | undefined): string | undefined {
  if (address === undefined) return undefined
  try {
    const key = lookupKey(parseAddress(address))
    const at = key.lastIndexOf('@')
    const alias = SAME_MAILBOX_DOMAINS[key.slice(at + 1)]
    return alias === undefined ? key : `${key.slice(0, at)}@${alias}`
  } catch {
    return undefined
  }
}

function markLedgerRow (appliance: Appliance, context: RecipientContext, facts: BounceFacts): void {
  const key = [context.broadcast.id, context.seq]
  const row = appliance.store.ledger.get(key) as LedgerRow | undefined
  if (row === undefined) return
  appliance.store.ledger.putSync(key, { ...row, b: { v: facts.verdict, r: facts.reason, at: facts.at } })
}
