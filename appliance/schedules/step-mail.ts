// Runs in the appliance's main thread: step mail by a child's age. Once a day at stepMail.hour
// (and on start) every calendar entry due for a registered child is sent to the household's
// first contact — the day's recipients of one entry as one bulk broadcast — and each (entry,
// contact, child) is recorded in the transaction that freezes that broadcast, so it goes once.

import type { Logger } from 'pino'
import type { ScheduledTask } from 'node-cron'
import type { Config } from '../config.js'
import type { Store } from '../store/store.js'
import type { Directory } from '../directory.js'
import type { Household } from '../households.js'
import { todayIn } from '../households.js'
import { MimamoriError, assertHeaderSafe } from '../errors.js'
import { RunTaken } from './schedule-book.js'
import type { ScheduleDeps } from './scheduler.js'
import { cronTask } from './cron-slots.js'
import {
  addDays, addEntry, dueDay, getEntry, hourIn, listEntries, recordSent, removeEntry, wasSent,
  type StepMailEntry, type StepMailEntryInput
} from './step-mail-calendar.js'

export type StepMailDeps = Omit<ScheduleDeps, 'checkTargets'> & { directory: Directory }

/** A child an entry is due for: its date (the key of the record) and the day it fell due. */
interface DueChild { childDate: string, day: string }

export interface StepMailRun {
  /** the last day whose entries were sent (today after stepMail.hour, else yesterday) */
  through: string
  entries: number
  broadcasts: number
  recipients: number
}

export class StepMail {
  readonly #o: StepMailDeps
  #task?: ScheduledTask

  constructor (deps: StepMailDeps) {
    this.#o = deps
  }

  /** Sends what fell due while stopped, then runs every day at stepMail.hour. */
  start (): void {
    this.safeRun()
    const { hour } = this.#o.config.stepMail
    this.#task = cronTask(`0 ${hour} * * *`, this.#o.config.timeZone, () => { this.safeRun() })
    void this.#task.start()
  }

  // A failing run is logged; it must not stop the appliance from starting or sending.
  private safeRun (): void {
    try {
      this.runDue()
    } catch (err) {
      this.#o.log.error({ err }, 'step mail error')
    }
  }

  stop (): void {
    void this.#task?.destroy()
    this.#task = undefined
  }

  add (input: StepMailEntryInput): StepMailEntry {
    const { directory, store } = this.#o
    directory.organisation(input.organisationId)
    assertHeaderSafe('subject', input.subject)
    if (input.subject.trim() === '') {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'the subject is empty')
    }
    const topic = input.topic === null ? null : directory.resolveTopic(input.topic)
    if (topic === undefined) {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST', `no topic "${input.topic}"`)
    }
    const entry = addEntry(store, { ...input, topic }, this.#o.now())
    const { id, organisationId, month, day, createdBy } = entry
    this.#o.log.info({ entry: id, organisation: organisationId, month, day, by: createdBy },
      'step-mail entry added')
    return entry
  }

  remove (id: number, by: string): void {
    const entry = getEntry(this.#o.store, id)
    removeEntry(this.#o.store, id)
    this.#o.log.info({ entry: id, organisation: entry.organisationId, by },
      'step-mail entry deleted')
  }

  /**
   * Sends every entry that fell due for a child from stepMail.graceDays ago through today (or
   * yesterday, before stepMail.hour) and was not sent yet. An entry added later reaches only
   * children whose day is that recent: a greeting for the third month is no use in the tenth.
   */
  runDue (): StepMailRun {
    const { config } = this.#o
    const now = this.#o.now()
    const today = todayIn(config.timeZone, now)
    const started = hourIn(config.timeZone, now) >= config.stepMail.hour
    const through = started ? today : addDays(today, -1)
    const window = { from: addDays(today, -config.stepMail.graceDays), through }
    const run: StepMailRun = { through, entries: 0, broadcasts: 0, recipients: 0 }

    for (const [entry, due] of this.dueByEntry(window)) {
      run.entries++
      const recipients = this.eligible(entry, due)
      if (recipients.size === 0) continue
      if (this.send(entry, recipients)) {
        run.broadcasts++
        run.recipients += recipients.size
      }
    }
    this.#o.log.info(run, 'step mail run')
    return run
  }

  /** entry → contact → the children the entry is due for, not yet sent. */
  private dueByEntry (
    window: { from: string, through: string }
  ): Map<StepMailEntry, Map<number, DueChild[]>> {
    const { store } = this.#o
    const out = new Map<StepMailEntry, Map<number, DueChild[]>>()
    const byDate = dueByChildDate(listEntries(store), window)
    if (byDate.size === 0) return out
    // Known shortcoming: every household is read once a day in the main thread (about 0.3 s per
    // 100,000), as households have no index by child date; the proper fix is that index.
    for (const { value } of store.households.getRange()) {
      const household = value as Household
      for (const child of household.children) {
        for (const { entry, day } of byDate.get(child.date) ?? []) {
          if (wasSent(store, entry.id, household.firstContact, child.date)) continue
          const byContact = out.get(entry) ?? new Map<number, DueChild[]>()
          const children = byContact.get(household.firstContact) ?? []
          // Twins share a date, and so a record: one mail for both.
          if (children.some((c) => c.childDate === child.date)) continue
          byContact.set(household.firstContact, [...children, { childDate: child.date, day }])
          out.set(entry, byContact)
        }
      }
    }
    return out
  }

  // The same people a broadcast of the entry's organisation would reach: members of its tree,
  // active, not opted out of it, not suppressed, and with the entry's topic chosen.
  private eligible (entry: StepMailEntry, due: Map<number, DueChild[]>): Map<number, DueChild[]> {
    const { directory } = this.#o
    const scope = directory.organisationSubtree(entry.organisationId)
    const out = new Map<number, DueChild[]>()
    for (const [id, children] of due) {
      const s = directory.subscriber(id)
      if (s === undefined || s.status !== 'active') continue
      if (s.left?.includes(entry.organisationId) === true) continue
      if (entry.topic !== null && !s.topics.includes(entry.topic)) continue
      if (directory.isSuppressed(s.index)) continue
      if (!scope.some((org) => directory.isMember(id, org))) continue
      out.set(id, children)
    }
    return out
  }

  private send (entry: StepMailEntry, recipients: Map<number, DueChild[]>): boolean {
    const { store, log } = this.#o
    const { organisationId, subject, body } = entry
    const input = {
      organisationId, subject, body, priority: 'bulk' as const,
      targets: { subscribers: [...recipients.keys()] }, createdBy: `step-mail:${entry.id}`
    }
    try {
      const broadcast = this.#o.submit(input, (b) => {
        const at = new Date().toISOString()
        for (const [subscriberId, children] of recipients) {
          for (const { childDate, day } of children) {
            const sent = { broadcastId: b.id, day, at }
            recordSent(store, { entryId: entry.id, subscriberId, childDate }, sent)
          }
        }
      })
      log.info({
        entry: entry.id, organisation: organisationId, month: entry.month,
        broadcast: broadcast.id, recipients: recipients.size
      }, 'step mail sent')
      return true
    } catch (err) {
      if (err instanceof RunTaken) return false
      const code = err instanceof MimamoriError ? err.code : 'MIMAMORI_INTERNAL'
      const detail = code === 'MIMAMORI_INTERNAL' ? { err } : {}
      log.warn({ entry: entry.id, organisation: organisationId, code, ...detail },
        'step mail failed')
      return false
    }
  }
}

/**
 * child date → the entries falling due for a child of that date within the window. Each day of
 * the window is taken back by the entry's months and days; a month's end can move that by up
 * to three days (31 January and 28 February are both "one month" before 28 March), so the
 * neighbours are tried and dueDay() decides.
 */
export function dueByChildDate (
  entries: StepMailEntry[], window: { from: string, through: string }
): Map<string, Array<{ entry: StepMailEntry, day: string }>> {
  const out = new Map<string, Array<{ entry: StepMailEntry, day: string }>>()
  for (let day = window.from; day <= window.through; day = addDays(day, 1)) {
    for (const entry of entries) {
      const guess = dueDay(addDays(day, -entry.day), -entry.month)
      for (let shift = -3; shift <= 3; shift++) {
        const childDate = addDays(guess, shift)
        if (dueDay(childDate, entry.month, entry.day) !== day) continue
        out.set(childDate, [...(out.get(childDate) ?? []), { entry, day }])
      }
    }
  }
  return out
}
