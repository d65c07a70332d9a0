// Runs in the appliance: what a new schedule must satisfy before it is stored — one of a time or
// a cron expression, a time with its offset and still to come, an end after the first run.

import { MimamoriError, assertHeaderSafe } from '../errors.js'
import type { ScheduleInput } from './schedule-book.js'
import { checkCron, cronTask } from './cron-slots.js'

// An offset is required: "08:00" alone would be read in the server's zone, not the city's.
const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/

function timeProblem (message: string, field: string): MimamoriError {
  return new MimamoriError('MIMAMORI_SCHEDULE_TIME_INVALID', message, { details: { field } })
}

/** Epoch ms of an ISO time with an offset; MIMAMORI_SCHEDULE_TIME_INVALID otherwise. */
export function readTime (value: string, field: string): number {
  const ms = ISO_WITH_OFFSET.test(value) ? Date.parse(value) : Number.NaN
  if (Number.isNaN(ms)) {
    const example = '2026-04-07T08:00:00+09:00'
    throw timeProblem(`${field} must be an ISO time with its offset, e.g. ${example}`, field)
  }
  return ms
}

/** Checks the timing and the subject of a schedule against the clock; returns nothing. */
export function checkScheduleInput (input: ScheduleInput, now: number, timeZone: string): void {
  assertHeaderSafe('subject', input.subject)
  if (input.subject.trim() === '') {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'the subject is empty')
  }
  if ((input.at === undefined) === (input.cron === undefined)) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST',
      'give either `at` (one time) or `cron` (repeating)')
  }
  if (input.at !== undefined) {
    if (input.endsAt !== undefined) {
      throw timeProblem('only a repeating schedule has an end', 'endsAt')
    }
    if (readTime(input.at, 'at') <= now) throw timeProblem(`at ${input.at} is in the past`, 'at')
    return
  }
  checkCron(input.cron as string, timeZone)
  if (input.endsAt === undefined) return
  const end = readTime(input.endsAt, 'endsAt')
  const task = cronTask(input.cron as string, timeZone, () => undefined)
  const first = task.getNextRuns(1)[0]?.getTime()
  task.destroy()
  if (end <= now || first === undefined || first > end) {
    throw timeProblem(`the schedule ends (${input.endsAt}) before its first run`, 'endsAt')
  }
}
