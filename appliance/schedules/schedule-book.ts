// Runs in the appliance: scheduled broadcasts as stored in the `schedules` sub-database, and the
// record of each run. A run's key is its due time, so a run is sent, missed or failed once:
//   ['schedule', id]      → Schedule
//   ['run', id, due ms]   → ScheduleRun

import type { Store } from '../store/store.js'
import type { BroadcastInput } from '../broadcasts.js'
import { MimamoriError } from '../errors.js'

export interface ScheduleInput extends BroadcastInput {
  /** one-time: an ISO time with an offset */
  at?: string
  /** repeating: a node-cron expression in config.timeZone */
  cron?: string
  /** a repeating schedule runs no more after this ISO time */
  endsAt?: string
}

/** active: runs to come; done: a one-time schedule has run; ended: past its end. */
export type ScheduleState = 'active' | 'done' | 'ended'

export interface Schedule extends ScheduleInput {
  id: number
  state: ScheduleState
  createdAt: string
  /** epoch ms of the latest run handled (sent, missed or failed): catch-up starts after it */
  lastDue?: number
  counts: { sent: number, missed: number, failed: number }
}

export type RunState = 'sent' | 'missed' | 'failed'

export interface ScheduleRun {
  /** the time the run fell due, ISO */
  due: string
  state: RunState
  /** when the appliance sent it or gave it up, ISO */
  at: string
  broadcastId?: number
  /** why missed (`late`, `superseded`) or failed (an error code) */
  reason?: string
}

/** Thrown inside a run's transaction when another start of the appliance took the run first. */
export class RunTaken extends Error {}

export function findSchedule (store: Store, id: number): Schedule | undefined {
  return store.schedules.get(['schedule', id]) as Schedule | undefined
}

export function getSchedule (store: Store, id: number): Schedule {
  const schedule = findSchedule(store, id)
  if (schedule === undefined) throw new MimamoriError('MIMAMORI_NOT_FOUND', `no schedule ${id}`)
  return schedule
}

/** Schedules, newest first; only those of the organisations given, when given. */
export function listSchedules (store: Store, organisations?: Set<string>): Schedule[] {
  const range = store.schedules.getRange({
    start: ['schedule', Infinity], end: ['schedule', 0], reverse: true
  })
  return [...range].map((e) => e.value as Schedule)
    .filter((s) => organisations === undefined || organisations.has(s.organisationId))
}

export function saveSchedule (store: Store, schedule: Schedule): void {
  store.schedules.putSync(['schedule', schedule.id], schedule)
}

export function findRun (store: Store, id: number, due: number): ScheduleRun | undefined {
  return store.schedules.get(['run', id, due]) as ScheduleRun | undefined
}

/** The latest runs of a schedule, newest first. */
export function recentRuns (store: Store, id: number, limit = 20): ScheduleRun[] {
  const range = store.schedules.getRange({
    start: ['run', id, Infinity], end: ['run', id, -Infinity], reverse: true, limit
  })
  return [...range].map((e) => e.value as ScheduleRun)
}

/**
 * Writes a run and moves the schedule past it; call inside the transaction that claims the run.
 * Throws RunTaken when the run is already recorded.
 */
export function recordRun (
  store: Store, id: number, due: number, run: Omit<ScheduleRun, 'due' | 'at'>
): Schedule {
  if (findRun(store, id, due) !== undefined) throw new RunTaken(`run ${id}@${due} is taken`)
  const schedule = getSchedule(store, id)
  const at = new Date().toISOString()
  const record: ScheduleRun = { due: new Date(due).toISOString(), at, ...run }
  store.schedules.putSync(['run', id, due], record)
  const counts = { ...schedule.counts, [run.state]: schedule.counts[run.state] + 1 }
  const next: Schedule = { ...schedule, counts, lastDue: Math.max(due, schedule.lastDue ?? 0) }
  if (schedule.at !== undefined) next.state = 'done'
  saveSchedule(store, next)
  return next
}

/** Removes a schedule and the record of its runs (the broadcasts it sent stay). */
export function removeSchedule (store: Store, id: number): void {
  store.root.transactionSync(() => {
    const runs = store.schedules.getKeys({
      start: ['run', id, -Infinity], end: ['run', id, Infinity]
    })
    for (const key of runs) store.schedules.removeSync(key)
    store.schedules.removeSync(['schedule', id])
  })
}
