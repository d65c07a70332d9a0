// Runs in the appliance: a broadcast from request to frozen ledger. Recipients are resolved once
// (groups choose the people, topics narrow them), deduplicated, with opted-out and suppressed
// addresses left out, and frozen into the ledger in the same transaction as the broadcast.

import type { Store } from './store/store.js'
import { nextId } from './store/store.js'
import type { Directory } from './directory.js'
import type { RouteTable } from './route-table.js'
import type { LedgerCounts, LedgerRow, RouteSlice } from './ledger.js'
import { MimamoriError, assertHeaderSafe } from './errors.js'

export type Priority = 'emergency' | 'normal' | 'bulk'
export const PRIORITIES: readonly Priority[] = ['emergency', 'normal', 'bulk']

export type BroadcastStatus = 'sending' | 'paused' | 'done' | 'cancelled'

export interface Targets {
  /** group ids; each takes its subgroups along */
  groups?: string[]
  /** organisation ids; each takes its suborganisations along */
  organisations?: string[]
  /** topic ids: only subscribers who chose one of them */
  topics?: string[]
  /** subscriber ids chosen one by one */
  subscribers?: number[]
}

export interface BroadcastInput {
  organisationId: string
  subject: string
  body: string
  priority: Priority
  targets: Targets
  createdBy: string
}

export interface Broadcast extends BroadcastInput {
  id: number
  status: BroadcastStatus
  submittedAt: string
  total: number
  /** recipients left out at submission: unsubscribed or suppressed */
  excluded: number
  routes: RouteSlice[]
  firstAcceptedAt?: string
  lastAcceptedAt?: string
  completedAt?: string
  /** set when staff cancel; a restart before the cancel completes finishes it */
  cancelRequested?: boolean
  /** the ledger's counts when the broadcast finished */
  finalCounts?: LedgerCounts
}

/** What freezing needs of a recipient; whole records for 100,000 would cost tens of MB. */
interface Chosen { id: number, domain: string }

const MAX_SUBJECT = 1000
const MAX_BODY = 100_000

export class BroadcastBook {
  constructor (
    readonly store: Store,
    readonly directory: Directory,
    readonly routes: RouteTable
  ) {}

  get (id: number): Broadcast {
    const broadcast = this.store.broadcasts.get(id) as Broadcast | undefined
    if (broadcast === undefined) throw new MimamoriError('MIMAMORI_NOT_FOUND', `no broadcast ${id}`)
    return broadcast
  }

  /** Broadcasts that still have work: sending or paused. */
  unfinished (): Broadcast[] {
    return [...this.store.broadcasts.getRange()]
      .map((e) => e.value as Broadcast)
      .filter((b) => b.status === 'sending' || b.status === 'paused')
  }

  list (organisationIds?: Set<string>, limit = 100): Broadcast[] {
    const out: Broadcast[] = []
    for (const { value } of this.store.broadcasts.getRange({ reverse: true })) {
      const b = value as Broadcast
      if (organisationIds === undefined || organisationIds.has(b.organisationId)) out.push(b)
      if (out.length >= limit) break
    }
    return out
  }

  update (id: number, change: Partial<Broadcast>): Broadcast {
    const next = { ...this.get(id), ...change }
    this.store.broadcasts.putSync(id, next)
    return next
  }

  /** Checks, resolves and freezes a broadcast; returns it as stored. */
  submit (input: BroadcastInput): Broadcast {
    checkInput(input)
    this.directory.organisation(input.organisationId)
    const recipients = this.resolve(input)
    if (recipients.chosen.length === 0) {
      throw new MimamoriError('MIMAMORI_NO_RECIPIENTS',
        'no subscriber matches these groups and topics', { details: { excluded: recipients.excluded } })
    }

    return this.store.root.transactionSync(() => this.freeze(input, recipients))
  }

  /** The recipients a broadcast would have now, without submitting it (for previews). */
  count (input: Pick<BroadcastInput, 'organisationId' | 'targets'>): { recipients: number, excluded: number } {
    const r = this.resolve(input)
    return { recipients: r.chosen.length, excluded: r.excluded }
  }

  private resolve (input: Pick<BroadcastInput, 'organisationId' | 'targets'>): {
    chosen: Chosen[], excluded: number
  } {
    const topics = (input.targets.topics ?? []).map((name) => {
      const id = this.directory.resolveTopic(name)
      if (id === undefined) throw new MimamoriError('MIMAMORI_BAD_REQUEST', `no topic "${name}"`)
      return id
    })
    const ids = this.candidates(input)
    const chosen: Chosen[] = []
    let excluded = 0

    for (const id of ids) {
      const subscriber = this.directory.subscriber(id)
      if (subscriber === undefined) continue
      if (topics.length > 0 && !topics.some((t) => subscriber.topics.includes(t))) continue
      const optedOut = subscriber.status !== 'active' ||
        subscriber.left?.includes(input.organisationId) === true
      if (optedOut || this.directory.isSuppressed(subscriber.index)) {
        excluded++
        continue
      }
      chosen.push({ id: subscriber.id, domain: subscriber.domain })
    }
    return { chosen, excluded }
  }

  // Groups and organisations choose people; with neither, the sending organisation's whole tree
  // is the scope (a city-wide broadcast on a topic). Named subscribers must belong to that tree.
  private candidates (input: Pick<BroadcastInput, 'organisationId' | 'targets'>): Set<number> {
    const { targets, organisationId } = input
    const scope = new Set(this.directory.organisationSubtree(organisationId))
    const ids = new Set<number>()

    for (const groupId of targets.groups ?? []) {
      if (!scope.has(this.directory.group(groupId).organisationId)) {
        throw new MimamoriError('MIMAMORI_FORBIDDEN', `group ${groupId} is outside ${organisationId}`)
      }
    }
    for (const orgId of targets.organisations ?? []) {
      if (!scope.has(orgId)) {
        throw new MimamoriError('MIMAMORI_FORBIDDEN', `organisation ${orgId} is outside ${organisationId}`)
      }
    }

    const groupIds = targets.groups ?? []
    const orgIds = targets.organisations ?? []
    const chooseAll = groupIds.length === 0 && orgIds.length === 0 &&
      (targets.subscribers ?? []).length === 0
    for (const id of this.directory.membersOfGroups(groupIds)) ids.add(id)
    for (const id of this.directory.membersOfOrganisations(chooseAll ? [organisationId] : orgIds)) {
      ids.add(id)
    }
    this.addNamed(ids, targets.subscribers ?? [], [...scope])
    return ids
  }

  private addNamed (ids: Set<number>, named: number[], scope: string[]): void {
    for (const id of named) {
      if (this.directory.subscriber(id) === undefined) {
        throw new MimamoriError('MIMAMORI_NOT_FOUND', `no subscriber ${id}`)
      }
      if (!scope.some((orgId) => this.directory.isMember(id, orgId))) {
        throw new MimamoriError('MIMAMORI_FORBIDDEN', `subscriber ${id} is not a member here`)
      }
      ids.add(id)
    }
  }

  // Rows are laid out route by route, so that each route reads its own contiguous slice.
  private freeze (input: BroadcastInput, recipients: { chosen: Chosen[], excluded: number }): Broadcast {
    const byRoute = new Map<string, Chosen[]>()
    for (const subscriber of recipients.chosen) {
      const route = this.routes.forDomain(subscriber.domain).name
      const list = byRoute.get(route) ?? []
      list.push(subscriber)
      byRoute.set(route, list)
    }

    const id = nextId(this.store, 'broadcast')
    const slices: RouteSlice[] = []
    let seq = 0
    for (const [name, list] of byRoute) {
      const start = seq
      for (const subscriber of list) {
        const row: LedgerRow = { s: subscriber.id, st: 'queued', n: 0 }
        this.store.ledger.putSync([id, seq++], row)
      }
      slices.push({ name, start, end: seq })
    }

    const broadcast: Broadcast = {
      ...input,
      id,
      status: 'sending',
      submittedAt: new Date().toISOString(),
      total: seq,
      excluded: recipients.excluded,
      routes: slices
    }
    this.store.broadcasts.putSync(id, broadcast)
    return broadcast
  }
}

function checkInput (input: BroadcastInput): void {
  assertHeaderSafe('subject', input.subject)
  if (input.subject.trim() === '' || input.subject.length > MAX_SUBJECT) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `the subject must have 1 to ${MAX_SUBJECT} characters`)
  }
  if (input.body.length > MAX_BODY) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `the body must have at most ${MAX_BODY} characters`)
  }
  if (!PRIORITIES.includes(input.priority)) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `priority must be one of ${PRIORITIES.join(', ')}`)
  }
}
