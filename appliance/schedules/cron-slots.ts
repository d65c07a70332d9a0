// Runs in the appliance: cron expressions (node-cron syntax, five or six fields) — checked with
// clear errors, and the times an expression names between two instants, which node-cron itself
// only gives from now on, so that a restart can tell what fell due while the appliance was down.

import cron, { type ScheduledTask, type TaskFn } from 'node-cron'
import { MimamoriError } from '../errors.js'

const MINUTE = 60_000

/** Throws MIMAMORI_CRON_INVALID naming the fields node-cron refuses. */
export function checkCron (expression: string, timeZone: string): void {
  const checked = cron.validateDetailed(expression)
  const problems = checked.errors.map((e) => `${e.field}: ${e.message}`)
  if (checked.valid) {
    // validate() passes 30 February; only building the task finds a day that never comes.
    try {
      cronTask(expression, timeZone, () => undefined).destroy()
    } catch (err) {
      problems.push((err as Error).message)
    }
  }
  if (problems.length > 0) {
    throw new MimamoriError('MIMAMORI_CRON_INVALID',
      `"${expression}" is not a cron expression node-cron can run: ${problems.join('; ')}`,
      { details: { cron: expression, problems } })
  }
}

/** A node-cron task in the time zone, not yet started. */
export function cronTask (expression: string, timeZone: string, run: TaskFn): ScheduledTask {
  return cron.createTask(expression, run, { timezone: timeZone, noOverlap: false })
}

export interface Slots {
  /** epoch ms of each time the expression names, in order */
  slots: number[]
  /** false when `maxChecks` ran out before `to`: there may be more */
  complete: boolean
}

/**
 * The times in (from, to] the expression names. Each candidate second is one match() (about
 * 15 µs); `maxChecks` bounds the work after a long downtime of a schedule that runs each second.
 */
export function slotsBetween (
  task: ScheduledTask, from: number, to: number, maxChecks = 100_000
): Slots {
  const seconds = cron.parse(task.getPattern()).second
  const slots: number[] = []
  let checks = 0
  for (let minute = Math.floor(from / MINUTE) * MINUTE; minute <= to; minute += MINUTE) {
    for (const second of seconds) {
      const at = minute + second * 1000
      if (at <= from || at > to) continue
      if (++checks > maxChecks) return { slots, complete: false }
      if (task.match(new Date(at))) slots.push(at)
    }
  }
  return { slots, complete: true }
}
