// Runs in the appliance's main thread: the one bounce policy, used both for a bounce mail
// (inbound/bounce-handler.ts) and for a gateway's 5xx reply at send time (dispatcher.ts).
//   - a mailbox or host that does not exist suppresses the address at once;
//   - three soft bounces within 14 days suppress it too;
//   - a carrier's domain filter (ドメイン指定受信) never suppresses: it flags the subscriber,
//     so that they can be told how to allow our mail the next time they are reached.
// Every event is kept per address blind index in the `bounces` sub-db: the soft-bounce history.

import type { Store } from './store/store.js'
import type { Directory, Subscriber } from './directory.js'
import { parseAddress } from './address.js'
import type { Outcome } from '../workers/smtp-outcome.js'
import type { BounceReason } from './inbound/bounce-classifier.js'

export type BounceVerdict = 'hard' | 'soft' | 'none'

export const SOFT_BOUNCE_LIMIT = 3
export const SOFT_BOUNCE_WINDOW_MS = 14 * 24 * 3600 * 1000

/** The mailbox is gone: no later message can reach it. */
const DEAD: ReadonlySet<BounceReason> = new Set(['user-unknown', 'host-unknown'])
// Refusals about our mail or our server, not about the mailbox: suppressing the person for them
// would cut them off from alerts because of something they cannot change.
const NOT_COUNTED: ReadonlySet<BounceReason> = new Set([
  'filtered', 'blocked', 'spam', 'policy', 'message-too-big', 'delivered', 'vacation', 'feedback'
])

export interface BounceFacts {
  verdict: BounceVerdict
  reason: BounceReason
  /** 'dsn': a bounce mail came back; 'smtp': the gateway refused the message at send time */
  source: 'dsn' | 'smtp'
  /** unique per event: applying the same event twice changes nothing the second time */
  eventId: string
  at: number
  broadcastId?: number
  seq?: number
  /** the enhanced status code, e.g. 5.1.1 */
  status?: string
}

/** What the policy did: 'repeated' when the event had been applied already. */
export type PolicyResult = 'suppressed' | 'flagged' | 'counted' | 'ignored' | 'repeated'

/** Kept per event, keyed [blind index, at, eventId]. */
export interface BounceRecord {
  v: BounceVerdict
  r: BounceReason
  src: 'dsn' | 'smtp'
  b?: number
  q?: number
  st?: string
}

export interface DomainAllowFlag { at: string, reason: BounceReason, source: 'dsn' | 'smtp' }

export interface PolicyDeps { store: Store, directory: Directory }

/** Records a bounce or refusal of the subscriber's address and applies the policy, atomically. */
export function applyBouncePolicy (deps: PolicyDeps, subscriber: Subscriber, facts: BounceFacts): PolicyResult {
  return deps.store.root.transactionSync(() => {
    const key = [subscriber.index, facts.at, facts.eventId]
    if (deps.store.bounces.get(key) !== undefined) return 'repeated'
    deps.store.bounces.putSync(key, record(facts))

    if (facts.verdict === 'none') return 'ignored'
    if (DEAD.has(facts.reason)) return suppress(deps, subscriber, `${facts.reason} (${facts.source})`)
    if (facts.reason === 'filtered') return flagDomainAllow(deps, subscriber, facts)
    if (NOT_COUNTED.has(facts.reason)) return 'ignored'
    const soft = recentSoftBounces(deps.store, subscriber.index, facts.at)
    if (soft < SOFT_BOUNCE_LIMIT) return 'counted'
    return suppress(deps, subscriber, `${soft} soft bounces in 14 days`)
  })
}

/** How many counted soft bounces the address had in the 14 days up to `at`. */
export function recentSoftBounces (store: Store, index: string, at: number): number {
  const range = store.bounces.getRange({
    start: [index, at - SOFT_BOUNCE_WINDOW_MS], end: [index, at, '\uffff']
  })
  let count = 0
  for (const { value } of range) {
    const r = value as BounceRecord
    if (r.v !== 'none' && !DEAD.has(r.r) && !NOT_COUNTED.has(r.r)) count++
  }
  return count
}

/**
 * What a gateway's 5xx reply at send time means for the address, or undefined when it says
 * nothing about it. A 5.7.x from a carrier's gateway is its domain filter; elsewhere, a block.
 */
export function refusalFacts (outcome: Outcome, carrierGateway: boolean): Pick<BounceFacts, 'verdict' | 'reason' | 'status'> | undefined {
  if (outcome.kind !== 'rejected') return undefined
  const status = /\b5\.\d{1,3}\.\d{1,3}\b/.exec(outcome.message ?? '')?.[0]
  const out = (verdict: BounceVerdict, reason: BounceReason): ReturnType<typeof refusalFacts> =>
    status === undefined ? { verdict, reason } : { verdict, reason, status }

  if (outcome.category === 'no-mailbox') return out('hard', status === '5.1.2' ? 'host-unknown' : 'user-unknown')
  if (outcome.category === 'blocked') return out('soft', carrierGateway ? 'filtered' : 'blocked')
  if (status === '5.2.2') return out('soft', 'mailbox-full')
  if (status === '5.2.1') return out('soft', 'suspended')
  if (status === '5.3.4' || status === '5.2.3') return out('soft', 'message-too-big')
  return out('soft', 'rejected')
}

/**
 * Takes the domain-filter flag off once the person has shown that our mail reaches them (they
 * confirmed reading a message): the filter lets our domain through now.
 */
export function clearDomainAllow (deps: PolicyDeps, subscriberId: number): void {
  const current = deps.directory.subscriber(subscriberId)
  if (current?.needsDomainAllow === undefined) return
  const { needsDomainAllow: _cleared, ...rest } = current
  deps.store.subscribers.putSync(current.id, rest)
}

function record (facts: BounceFacts): BounceRecord {
  const r: BounceRecord = { v: facts.verdict, r: facts.reason, src: facts.source }
  if (facts.broadcastId !== undefined) r.b = facts.broadcastId
  if (facts.seq !== undefined) r.q = facts.seq
  if (facts.status !== undefined) r.st = facts.status
  return r
}

function suppress (deps: PolicyDeps, subscriber: Subscriber, reason: string): PolicyResult {
  if (deps.directory.isSuppressed(subscriber.index)) return 'suppressed'
  const address = parseAddress(deps.directory.contact(subscriber).a)
  deps.directory.suppress(address, reason.slice(0, 200))
  return 'suppressed'
}

function flagDomainAllow (deps: PolicyDeps, subscriber: Subscriber, facts: BounceFacts): PolicyResult {
  const current = deps.directory.subscriber(subscriber.id)
  if (current === undefined) return 'ignored'
  // `at` is when the filter first refused us: the flag is "since", and a later refusal keeps it
  const at = current.needsDomainAllow?.at ?? new Date(facts.at).toISOString()
  const flag: DomainAllowFlag = { at, reason: facts.reason, source: facts.source }
  deps.store.subscribers.putSync(current.id, { ...current, needsDomainAllow: flag })
  return 'flagged'
}
