// Runs in the appliance: households — the children, each with a birth or due date, and their
// contacts. A household is kept under its first contact's subscriber id; the second contact
// (for escalation) is set by staff, never by the sign-up form.

import type { Store } from './store/store.js'

export interface Child {
  /** YYYY-MM-DD */
  date: string
  /** a date still to come is a due date (出産予定日) */
  kind: 'birth' | 'due'
}

export interface Household {
  firstContact: number
  secondContact?: number
  children: Child[]
  createdAt: string
  updatedAt: string
}

/** How far back a birth date and how far ahead a due date may lie. */
const OLDEST_YEARS = 22
const DUE_DAYS_AHEAD = 300

export function householdOf (store: Store, firstContact: number): Household | undefined {
  return store.households.get(firstContact) as Household | undefined
}

/** Sets the children of the subscriber's household, creating it; the second contact stays. */
export function saveHousehold (store: Store, firstContact: number, children: Child[]): Household {
  const now = new Date().toISOString()
  const existing = householdOf(store, firstContact)
  const household: Household = existing === undefined
    ? { firstContact, children, createdAt: now, updatedAt: now }
    : { ...existing, children, updatedAt: now }
  store.households.putSync(firstContact, household)
  return household
}

export type DateProblem = 'format' | 'range'

/**
 * Reads a date as people type it on a phone — 2019-04-05, 2019/4/5, 2019年4月5日, in full-width
 * digits too — and checks that it is a real day within a child's plausible span.
 * `today` is YYYY-MM-DD in the appliance's time zone.
 */
export function readChildDate (input: string, today: string): Child | DateProblem {
  const text = input.normalize('NFKC').trim()
  const m = /^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$/.exec(text)
  if (m === null) return 'format'
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])]
  const utc = new Date(Date.UTC(year, month - 1, day))
  // Date.UTC rolls 2019-02-30 over into March; a day that moved was no real day.
  const real = utc.getUTCFullYear() === year && utc.getUTCMonth() === month - 1 && utc.getUTCDate() === day
  if (!real) return 'format'

  const date = utc.toISOString().slice(0, 10)
  const todayMs = Date.parse(`${today}T00:00:00Z`)
  const oldest = new Date(todayMs)
  oldest.setUTCFullYear(oldest.getUTCFullYear() - OLDEST_YEARS)
  const latest = todayMs + DUE_DAYS_AHEAD * 86_400_000
  if (utc.getTime() < oldest.getTime() || utc.getTime() > latest) return 'range'
  return { date, kind: date > today ? 'due' : 'birth' }
}

/** Today as YYYY-MM-DD in a time zone. */
export function todayIn (timeZone: string, now = new Date()): string {
  const format = new Intl.DateTimeFormat('en-CA', {
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit'
  })
  return format.format(now)
}
