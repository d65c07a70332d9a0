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
  const context = recipientOf(appliance, mail.tag ?? '')
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

  const reported = pickRecipient(appliance, context, report.recipients)
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
 * The entry that speaks of our recipient: the one naming its address when the report names
 * addresses, else the worst verdict reported. A bounce that names no one counts as soft.
 */
function pickRecipient (
  appliance: Appliance, context: RecipientContext, recipients: ReportedRecipient[]
): ReportedRecipient {
  const ours = lookupKey(parseAddress(appliance.directory.contact(context.subscriber).a))
  const named = recipients.filter((r) => keyOf(r.address) === ours)
  const candidates = named.length > 0 ? named : recipients
  const worst = [...candidates].sort((a, b) => RANK[b.verdict] - RANK[a.verdict])[0]
  return worst ?? { verdict: 'soft', reason: 'other' }
}

function keyOf (address: string | undefined): string | undefined {
  if (address === undefined) return undefined
  try {
    return lookupKey(parseAddress(address))
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
