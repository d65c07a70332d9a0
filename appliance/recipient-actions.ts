// Runs in the appliance: what a recipient does through the signed token in their own message —
// stop mail from the sending organisation, or confirm they have read it. Each opt-out is also
// an immutable consent event.

import type { Appliance } from './appliance.js'
import { readToken, type TokenPurpose } from './recipient-token.js'
import type { Broadcast } from './broadcasts.js'
import type { LedgerRow } from './ledger.js'
import type { Subscriber } from './directory.js'

export interface RecipientContext {
  broadcast: Broadcast
  seq: number
  row: LedgerRow
  subscriber: Subscriber
  organisationName: string
}

export type OptOutChannel = 'one-click' | 'web' | 'reply' | 'complaint'

/** The recipient a token names, or undefined for a forged or stale token. */
export function recipientOf (
  appliance: Appliance, token: string, purpose: TokenPurpose = 'recipient'
): RecipientContext | undefined {
  const ref = readToken(appliance.vault, token, purpose)
  if (ref === undefined) return undefined
  const broadcast = appliance.store.broadcasts.get(ref.broadcastId) as Broadcast | undefined
  const row = appliance.store.ledger.get([ref.broadcastId, ref.seq]) as LedgerRow | undefined
  if (broadcast === undefined || row === undefined) return undefined
  const subscriber = appliance.directory.subscriber(row.s)
  if (subscriber === undefined) return undefined
  const organisationName = appliance.directory.organisation(broadcast.organisationId).name
  return { broadcast, seq: ref.seq, row, subscriber, organisationName }
}

/**
 * Stops all mail from the broadcast's organisation to this recipient, at once. The memberships
 * stay: the person is then counted as excluded (naming them in a broadcast is no error), and the
 * mail of other organisations — the city's disaster warnings — still reaches them.
 */
export function optOut (appliance: Appliance, context: RecipientContext, channel: OptOutChannel): void {
  const { subscriber, broadcast } = context
  appliance.store.root.transactionSync(() => {
    appliance.directory.markLeft(subscriber.id, broadcast.organisationId)
    recordConsent(appliance, {
      subscriberId: subscriber.id,
      kind: 'opt-out',
      organisationId: broadcast.organisationId,
      channel,
      broadcastId: broadcast.id
    })
  })
  appliance.log.info({ subscriber: subscriber.id, organisation: broadcast.organisationId, channel }, 'opt-out')
}

/**
 * Stops all mail to this recipient from every organisation, the city's warnings included, at
 * once, also for broadcasts already running: what the person chose on the unsubscribe page.
 * A later sign-up is a fresh consent and undoes it for what it chooses.
 */
export function optOutAll (
  appliance: Appliance, context: RecipientContext, channel: OptOutChannel
): void {
  const { subscriber, broadcast } = context
  appliance.store.root.transactionSync(() => {
    appliance.directory.unsubscribeAll(subscriber.id)
    recordConsent(appliance, {
      subscriberId: subscriber.id, kind: 'opt-out', scope: 'all', channel, broadcastId: broadcast.id
    })
  })
  appliance.log.info({ subscriber: subscriber.id, scope: 'all', channel }, 'opt-out')
}

export interface ConsentEvent {
  subscriberId: number
  kind: 'sign-up' | 'change' | 'opt-out'
  /** an opt-out from every organisation; without it, an event is about `organisationId` */
  scope?: 'all'
  organisationId?: string
  channel: string
  broadcastId?: number
  textVersion?: string
  /** what the person chose at sign-up or change: group and topic ids */
  groups?: string[]
  topics?: string[]
}

export function recordConsent (appliance: Appliance, event: ConsentEvent): void {
  const at = Date.now()
  const key = [at, process.hrtime.bigint().toString()]
  appliance.store.consent.putSync(key, { ...event, at: new Date(at).toISOString() })
}

/** Records the recipient's "I have read this" once; later taps keep the first time. */
export function confirmRead (appliance: Appliance, context: RecipientContext): { first: boolean, at: string } {
  const key = [context.broadcast.id, context.seq]
  const existing = appliance.store.responses.get(key) as { readAt?: string } | undefined
  if (existing?.readAt !== undefined) return { first: false, at: existing.readAt }
  const at = new Date().toISOString()
  appliance.store.responses.putSync(key, { ...existing, readAt: at })
  return { first: true, at }
}
