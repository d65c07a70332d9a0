// Runs in the appliance: the child-rearing office's calendar of step mail (ステップメール) by a
// child's month of age, and the record of what each child's contact was sent, in `stepMail`:
//   ['entry', id]                                → StepMailEntry
//   ['sent', entry id, subscriber id, child date] → StepMailSent (at most once, ever)

import type { Store } from '../store/store.js'
import { nextId } from '../store/store.js'
import { MimamoriError } from '../errors.js'
import { RunTaken } from './schedule-book.js'

export const MONTH_RANGE = { min: -10, max: 240 } as const
export const DAY_RANGE = { min: -60, max: 60 } as const

export interface StepMailEntryInput {
  organisationId: string
  /** months from the child's date: -3 is three months before a due date, 0 the birth month */
  month: number
  /** days after that date; negative for days before */
  day: number
  subject: string
  body: string
  /** the topic a subscriber must have chosen; null: every contact with a child's date */
  topic: string | null
  createdBy: string
}

export interface StepMailEntry extends StepMailEntryInput {
  id: number
  createdAt: string
}

export interface StepMailSent {
  broadcastId: number
  /** the day the entry fell due for this child, YYYY-MM-DD */
  day: string
  at: string
}

export function addEntry (store: Store, input: StepMailEntryInput, now: Date): StepMailEntry {
  return store.root.transactionSync(() => {
    const id = nextId(store, 'step-mail')
    const entry: StepMailEntry = { ...input, id, createdAt: now.toISOString() }
    store.stepMail.putSync(['entry', entry.id], entry)
    return entry
  })
}

export function getEntry (store: Store, id: number): StepMailEntry {
  const entry = store.stepMail.get(['entry', id]) as StepMailEntry | undefined
  if (entry === undefined) throw new MimamoriError('MIMAMORI_NOT_FOUND', `no step-mail entry ${id}`)
  return entry
}

/** Entries by month of age, then day; only the organisations given, when given. */
export function listEntries (store: Store, organisations?: Set<string>): StepMailEntry[] {
  const range = store.stepMail.getRange({ start: ['entry', 0], end: ['entry', Infinity] })
  return [...range].map((e) => e.value as StepMailEntry)
    .filter((e) => organisations === undefined || organisations.has(e.organisationId))
    .sort((a, b) => a.month - b.month || a.day - b.day || a.id - b.id)
}

/** Removes an entry; the record of whom it was sent to stays, as the broadcasts do. */
export function removeEntry (store: Store, id: number): void {
  getEntry(store, id)
  store.stepMail.removeSync(['entry', id])
}

export function sentCount (store: Store, entryId: number): number {
  return store.stepMail.getKeysCount({ start: ['sent', entryId], end: ['sent', entryId, Infinity] })
}

export function wasSent (
  store: Store, entryId: number, subscriberId: number, childDate: string
): boolean {
  return store.stepMail.get(['sent', entryId, subscriberId, childDate]) !== undefined
}

/** Records a send; call inside the transaction that freezes its broadcast. */
export function recordSent (
  store: Store,
  key: { entryId: number, subscriberId: number, childDate: string },
  sent: StepMailSent
): void {
  if (wasSent(store, key.entryId, key.subscriberId, key.childDate)) {
    throw new RunTaken(`step mail ${key.entryId} is taken for subscriber ${key.subscriberId}`)
  }
  store.stepMail.putSync(['sent', key.entryId, key.subscriberId, key.childDate], sent)
}

/**
 * The day an entry falls due for a child's date (YYYY-MM-DD): that many months on, on the same
 * day of the month or the month's last day (a child born on 31 January is one month old on
 * 28 or 29 February), then `days` on.
 */
export function dueDay (childDate: string, months: number, days = 0): string {
  const [year, month, day] = childDate.split('-').map(Number) as [number, number, number]
  const target = new Date(Date.UTC(year, month - 1 + months, 1))
  const monthEnd = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0))
  const lastDay = monthEnd.getUTCDate()
  target.setUTCDate(Math.min(day, lastDay) + days)
  return target.toISOString().slice(0, 10)
}

/** A YYYY-MM-DD day moved by some days. */
export function addDays (date: string, days: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10)
}

/** The hour (0–23) of an instant in a time zone. */
export function hourIn (timeZone: string, now: Date): number {
  const format = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', hourCycle: 'h23' })
  return Number(format.format(now))
}
