// Runs in the appliance's main thread: the hazard desk. Every hazard event from a feed or the CAP
// endpoint comes here once; the alert rules turn it into drafts, which wait for a person's
// approval (mode draft) or go out by themselves after their hold time (mode auto). A cancellation
// (取消) withdraws a draft still waiting, or sends a notice when the alert went already; a
// correction (訂正) updates a waiting draft, or sends a notice.
//
// Everything is in the store before it acts, so a restart loses no held draft and sends none
// twice: a draft is marked `sending` before its broadcast is submitted, and on start a `sending`
// draft is matched to its broadcast (createdBy alert-draft:<id>) before anything is sent again.

import type { Logger } from 'pino'
import type { Store } from '../store/store.js'
import { nextId } from '../store/store.js'
import type { Config } from '../config.js'
import type { Broadcast, BroadcastInput, Targets } from '../broadcasts.js'
import type { Directory } from '../directory.js'
import { MimamoriError } from '../errors.js'
import type { HazardArea, HazardEvent } from './hazard-event.js'
import { actsOnStatus, listRules, matchingAreas, type AlertRule } from './alert-rules.js'
import { alertText, noticeText } from './alert-text.js'

export type DraftState = 'awaiting-approval' | 'held' | 'sending' | 'sent' | 'withdrawn' | 'expired' | 'failed'
const PENDING: ReadonlySet<DraftState> = new Set(['awaiting-approval', 'held'])

export interface AlertDraft {
  id: number
  ruleId: string
  ruleName: string
  incidentKey: string
  /** every event key that made or changed it: a cancellation of any of them reaches it */
  eventKeys: string[]
  kind: HazardEvent['kind']
  drill: boolean
  level: number
  areas: HazardArea[]
  organisationId: string
  targets: Targets
  priority: BroadcastInput['priority']
  subject: string
  body: string
  state: DraftState
  /** when a held draft goes out by itself */
  sendAt?: string
  /** the draft whose alert this one cancels or corrects */
  noticeOf?: number
  broadcastId?: number
  reason?: string
  history: Array<{ at: string, state: DraftState, by: string, note?: string }>
  createdAt: string
}

export interface IngestResult {
  duplicate: boolean
  drafts: number[]
  withdrawn: number[]
}

export interface HazardDeskOptions {
  store: Store
  config: Config
  directory: Directory
  log: Logger
  /** submits a broadcast (Appliance.submit) */
  submit: (input: BroadcastInput) => Broadcast
  /** broadcasts made by a draft, to find the one a crash left unrecorded */
  findBroadcast: (createdBy: string) => Broadcast | undefined
}

/** A held draft that fell due while the appliance was down goes out within this; later, not. */
const LATE_GRACE_MS = 60 * 60 * 1000

export class HazardDesk {
  readonly #o: HazardDeskOptions
  #timer: NodeJS.Timeout | undefined
  #stopped = true

  constructor (options: HazardDeskOptions) {
    this.#o = options
  }

  /** Settles drafts a crash left in `sending`, sends or expires overdue ones, arms the timer. */
  start (): void {
    this.#stopped = false
    for (const draft of this.drafts()) {
      if (draft.state === 'sending') this.settleSending(draft)
    }
    this.sendDue()
  }

  stop (): void {
    this.#stopped = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** Takes in one event. The same event (by id) a second time does nothing. */
  ingest (event: HazardEvent): IngestResult {
    const result: IngestResult = { duplicate: false, drafts: [], withdrawn: [] }
    if (this.#o.store.hazardEvents.get(['seen', event.id]) !== undefined) {
      return { ...result, duplicate: true }
    }
    this.#o.store.hazardEvents.putSync(['seen', event.id], { at: new Date().toISOString() })
    this.#o.store.hazardEvents.putSync(['event', event.eventKey], event)

    if (event.infoType === 'cancel') {
      this.#o.store.hazardEvents.putSync(['cancelled', event.eventKey], event.reportedAt)
    }
    if (event.status === 'test') {
      this.#o.log.info({ event: event.id, type: event.type }, 'test telegram ignored')
    } else if (event.infoType === 'issue' && this.cancelledLater(event)) {
      this.#o.log.warn({ event: event.id, type: event.type }, 'telegram arrived after its cancellation; ignored')
    } else if (event.infoType === 'issue') {
      this.issue(event, result)
    } else {
      this.revise(event, result)
    }
    this.#o.log.info({
      event: event.id, type: event.type, kind: event.kind, status: event.status,
      infoType: event.infoType, drafts: result.drafts, withdrawn: result.withdrawn
    }, 'hazard event taken in')
    this.sendDue()
    return result
  }

  // After an outage the long feed may hand on a cancellation before what it cancels.
  private cancelledLater (event: HazardEvent): boolean {
    const at = this.#o.store.hazardEvents.get(['cancelled', event.eventKey]) as string | undefined
    return at !== undefined && Date.parse(at) >= Date.parse(event.reportedAt)
  }

  drafts (filter: { organisations?: Set<string>, states?: Set<DraftState> } = {}): AlertDraft[] {
    const out: AlertDraft[] = []
    for (const { key, value } of this.#o.store.alertDrafts.getRange({ reverse: true })) {
      if (typeof key !== 'number') continue
      const draft = value as AlertDraft
      if (filter.organisations !== undefined && !filter.organisations.has(draft.organisationId)) continue
      if (filter.states !== undefined && !filter.states.has(draft.state)) continue
      out.push(draft)
    }
    return out
  }

  draft (id: number): AlertDraft {
    const draft = this.#o.store.alertDrafts.get(id) as AlertDraft | undefined
    if (draft === undefined) throw new MimamoriError('MIMAMORI_NOT_FOUND', `no alert draft ${id}`)
    return draft
  }

  /** A person approves a waiting or held draft: it goes out now. */
  approve (id: number, by: string): AlertDraft {
    const draft = this.draft(id)
    if (!PENDING.has(draft.state)) {
      throw new MimamoriError('MIMAMORI_CONFLICT', `alert draft ${id} is ${draft.state}`)
    }
    return this.send(this.change(draft, { state: 'held' }, by, 'approved'))
  }

  /** A person withdraws a waiting or held draft: it never goes out. */
  withdraw (id: number, by: string, reason = 'withdrawn by staff'): AlertDraft {
    const draft = this.draft(id)
    if (!PENDING.has(draft.state)) {
      throw new MimamoriError('MIMAMORI_CONFLICT', `alert draft ${id} is ${draft.state}`)
    }
    const done = this.change(draft, { state: 'withdrawn', reason }, by)
    this.#o.log.info({ draft: id, by }, 'alert draft withdrawn')
    return done
  }

  // ---- a new telegram: the rules make drafts ---------------------------------------------

  private issue (event: HazardEvent, result: IngestResult): void {
    for (const rule of listRules(this.#o.store)) {
      if (!actsOnStatus(rule, event.status)) continue
      const areas = matchingAreas(rule, event, this.#o.config)
      if (areas.length === 0) continue
      this.guarded(rule.id, () => {
        const id = this.draftFor(rule, event, areas)
        if (id !== undefined) result.drafts.push(id)
      })
    }
  }

  // One alert per rule and incident: a later telegram of the same incident updates a draft still
  // waiting, and makes a new alert only when the level rose above what was sent.
  private draftFor (rule: AlertRule, event: HazardEvent, areas: HazardArea[]): number | undefined {
    const drill = event.status === 'drill'
    const incidentKey = `${event.incidentKey ?? event.eventKey}${drill ? '#drill' : ''}`
    const level = Math.max(...areas.map((a) => a.level))
    const previous = this.latestFor(rule.id, incidentKey)
    const text = alertText(rule, event, areas, drill, this.#o.config.timeZone)

    if (previous !== undefined && PENDING.has(previous.state)) {
      const eventKeys = [...new Set([...previous.eventKeys, event.eventKey])]
      this.change(previous, { ...text, areas, level: Math.max(level, previous.level), eventKeys }, 'feed', 'updated')
      return previous.id
    }
    if (previous !== undefined && previous.state !== 'withdrawn' && level <= previous.level) return undefined

    const draft = this.create({
      ruleId: rule.id,
      ruleName: rule.name,
      incidentKey,
      eventKeys: [event.eventKey],
      kind: event.kind,
      drill,
      level,
      areas,
      organisationId: rule.organisation,
      targets: this.targetsOf(rule, drill),
      priority: rule.priority,
      ...text
    }, this.modeState(rule, event))
    return draft.id
  }

  private modeState (rule: AlertRule, event: HazardEvent): { state: DraftState, sendAt?: string } {
    if (rule.mode === 'draft') return { state: 'awaiting-approval' }
    const minutes = rule.holdMinutes ?? this.#o.config.feeds.holdMinutes[event.kind]
    return { state: 'held', sendAt: new Date(Date.now() + minutes * 60_000).toISOString() }
  }

  private targetsOf (rule: AlertRule, drill: boolean): Targets {
    const chosen = drill ? rule.drill?.targets ?? {} : rule.targets
    const targets: Targets = {}
    if (chosen.organisations !== undefined) targets.organisations = chosen.organisations
    if (chosen.topics !== undefined) targets.topics = chosen.topics
    if (chosen.groupPaths !== undefined) {
      targets.groups = chosen.groupPaths.map((path) => this.groupId(rule.organisation, path))
    }
    return targets
  }

  private groupId (organisationId: string, path: string): string {
    const group = this.#o.directory.groupByPath(organisationId, path.split('/').map((p) => p.trim()))
    if (group === undefined) {
      throw new MimamoriError('MIMAMORI_NOT_FOUND', `no group "${path}" in ${organisationId}`)
    }
    return group.id
  }

  // ---- a correction or cancellation --------------------------------------------------------

  private revise (event: HazardEvent, result: IngestResult): void {
    const cancel = event.infoType === 'cancel'
    const affected = this.drafts().filter((d) => d.eventKeys.includes(event.eventKey) && d.noticeOf === undefined)
    for (const draft of affected) {
      if (PENDING.has(draft.state) && (cancel || !this.stillMatches(draft, event))) {
        this.change(draft, { state: 'withdrawn', reason: cancel ? 'cancelled by the source' : 'corrected below the rule' }, 'feed')
        result.withdrawn.push(draft.id)
      } else if (draft.state === 'sent' || draft.state === 'sending') {
        this.guarded(draft.ruleId, () => { result.drafts.push(this.notice(draft, event).id) })
      }
    }
    // a correction is read as the telegram it replaces: waiting drafts take its words
    if (!cancel) this.issue(event, result)
  }

  private stillMatches (draft: AlertDraft, event: HazardEvent): boolean {
    const rule = this.#o.store.alertRules.get(draft.ruleId) as AlertRule | undefined
    return rule !== undefined && matchingAreas(rule, event, this.#o.config).length > 0
  }

  // A rule that cannot be acted on (a group renamed since) must not stop the other rules.
  private guarded (ruleId: string, work: () => void): void {
    try {
      work()
    } catch (err) {
      this.#o.log.error({ err, rule: ruleId }, 'alert rule could not make its draft')
    }
  }

  // The notice goes to the same people as the alert; it is held like the rule's alerts (none
  // for earthquakes) or waits for approval when the rule does.
  private notice (sent: AlertDraft, event: HazardEvent): AlertDraft {
    const rule = this.#o.store.alertRules.get(sent.ruleId) as AlertRule | undefined
    const text = noticeText({ subject: sent.subject, body: sent.body }, event, sent.drill, this.#o.config.timeZone)
    const mode = rule === undefined ? { state: 'awaiting-approval' as const } : this.modeState(rule, event)
    return this.create({
      ...sent, ...text, eventKeys: [event.eventKey], noticeOf: sent.id, incidentKey: `${sent.incidentKey}#notice`
    }, mode)
  }

  // ---- sending -----------------------------------------------------------------------------

  /** Sends every held draft whose time has come, and arms the timer for the next. */
  private sendDue (): void {
    if (this.#stopped) return
    const now = Date.now()
    let next = Infinity
    for (const draft of this.drafts({ states: new Set(['held']) })) {
      const at = Date.parse(draft.sendAt ?? '')
      if (at > now) next = Math.min(next, at)
      else if (now - at > LATE_GRACE_MS) this.expire(draft)
      else this.send(draft)
    }
    this.arm(next)
  }

  private arm (at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    if (at === Infinity || this.#stopped) return
    // a timer of more than 24 days overflows; a held draft never waits that long
    this.#timer = setTimeout(() => this.sendDue(), Math.max(10, Math.min(at - Date.now(), 2 ** 30)))
    this.#timer.unref()
  }

  private send (draft: AlertDraft): AlertDraft {
    const sending = this.change(draft, { state: 'sending' }, 'desk')
    try {
      const broadcast = this.#o.submit({
        organisationId: draft.organisationId,
        subject: draft.subject,
        body: draft.body,
        priority: draft.priority,
        targets: draft.targets,
        createdBy: `alert-draft:${draft.id}`
      })
      this.#o.log.info({ draft: draft.id, rule: draft.ruleId, broadcast: broadcast.id, drill: draft.drill },
        'alert sent')
      return this.change(sending, { state: 'sent', broadcastId: broadcast.id }, 'desk')
    } catch (err) {
      const reason = err instanceof MimamoriError ? `${err.code}: ${err.message}` : 'submit failed'
      this.#o.log.error({ err, draft: draft.id, rule: draft.ruleId }, 'alert could not be sent')
      return this.change(sending, { state: 'failed', reason }, 'desk')
    }
  }

  private settleSending (draft: AlertDraft): void {
    const broadcast = this.#o.findBroadcast(`alert-draft:${draft.id}`)
    if (broadcast !== undefined) this.change(draft, { state: 'sent', broadcastId: broadcast.id }, 'desk', 'after restart')
    else this.change(draft, { state: 'held', sendAt: new Date().toISOString() }, 'desk', 'after restart')
  }

  private expire (draft: AlertDraft): void {
    this.change(draft, { state: 'expired', reason: 'fell due more than an hour ago while stopped' }, 'desk')
    this.#o.log.warn({ draft: draft.id, rule: draft.ruleId }, 'held alert expired unsent')
  }

  // ---- the store ---------------------------------------------------------------------------

  private create (
    fields: Omit<AlertDraft, 'id' | 'state' | 'history' | 'createdAt' | 'sendAt'>,
    mode: { state: DraftState, sendAt?: string }
  ): AlertDraft {
    const now = new Date().toISOString()
    const draft: AlertDraft = {
      ...fields,
      id: nextId(this.#o.store, 'alert-draft'),
      ...mode,
      history: [{ at: now, state: mode.state, by: 'feed' }],
      createdAt: now
    }
    if (mode.sendAt === undefined) delete draft.sendAt
    delete draft.broadcastId
    delete draft.reason
    this.#o.store.alertDrafts.putSync(draft.id, draft)
    this.#o.store.alertDrafts.putSync(['latest', draft.ruleId, draft.incidentKey], draft.id)
    return draft
  }

  private latestFor (ruleId: string, incidentKey: string): AlertDraft | undefined {
    const id = this.#o.store.alertDrafts.get(['latest', ruleId, incidentKey]) as number | undefined
    return id === undefined ? undefined : this.#o.store.alertDrafts.get(id) as AlertDraft | undefined
  }

  private change (draft: AlertDraft, fields: Partial<AlertDraft>, by: string, note?: string): AlertDraft {
    const state = fields.state ?? draft.state
    const entry = { at: new Date().toISOString(), state, by, ...(note === undefined ? {} : { note }) }
    const next: AlertDraft = { ...draft, ...fields, history: [...draft.history, entry].slice(-50) }
    this.#o.store.alertDrafts.putSync(draft.id, next)
    return next
  }
}
