// Runs in the appliance's main thread: scheduled broadcasts — one-time (a timer) and repeating
// (a node-cron task in config.timeZone). Each run is claimed in the transaction that freezes its
// broadcast, so a restart neither sends a run twice nor loses one: on start, runs that fell due
// while the appliance was down are sent if they are within the catch-up grace, and recorded as
// missed (with a warning in the log) if they are older.

import type { Logger } from 'pino'
import type { ScheduledTask } from 'node-cron'
import type { Appliance } from '../appliance.js'
import type { Config } from '../config.js'
import type { Store } from '../store/store.js'
import { nextId } from '../store/store.js'
import type { Broadcast, BroadcastInput } from '../broadcasts.js'
import { MimamoriError } from '../errors.js'
import {
  findRun, findSchedule, getSchedule, listSchedules, recordRun, removeSchedule, RunTaken,
  saveSchedule, type Schedule, type ScheduleInput
} from './schedule-book.js'
import { checkScheduleInput } from './schedule-input.js'
import { cronTask, slotsBetween } from './cron-slots.js'

export interface ScheduleDeps {
  store: Store
  config: Config
  log: Logger
  /** Appliance.submit: `claim` runs in the transaction that freezes the broadcast */
  submit: (input: BroadcastInput, claim: (broadcast: Broadcast) => void) => Broadcast
  /** checks a broadcast's targets without sending (BroadcastBook.count) */
  checkTargets: (input: Pick<BroadcastInput, 'organisationId' | 'targets'>) => void
  /** the clock of all date arithmetic; timers and node-cron keep real time */
  now: () => Date
}

/** What the scheduler and step mail need of the appliance; `now` defaults to the real clock. */
export function scheduleDeps (appliance: Appliance, now = (): Date => new Date()): ScheduleDeps & {
  directory: Appliance['directory']
} {
  return {
    store: appliance.store,
    config: appliance.config,
    directory: appliance.directory,
    log: appliance.log.child({ component: 'schedules' }),
    submit: (input, claim) => appliance.submit(input, claim),
    checkTargets: (input) => { appliance.book.count(input) },
    now
  }
}

// setTimeout holds at most 2^31-1 ms (24.8 days); a later time is reached in steps.
const MAX_DELAY = 2 ** 31 - 1
// Missed runs kept one by one after a long downtime; the count goes on beyond them.
const MAX_MISSED_RECORDS = 100

export class Scheduler {
  readonly #o: ScheduleDeps
  readonly #timers = new Map<number, NodeJS.Timeout>()
  readonly #tasks = new Map<number, ScheduledTask>()
  #running = false

  constructor (deps: ScheduleDeps) {
    this.#o = deps
  }

  /** Catches up the runs due while stopped, then arms every active schedule. */
  start (): void {
    this.#running = true
    const active = listSchedules(this.#o.store).filter((s) => s.state === 'active')
    for (const schedule of active) {
      this.safely(schedule.id, () => {
        this.catchUp(schedule)
        this.arm(getSchedule(this.#o.store, schedule.id))
      })
    }
    const armed = this.#timers.size + this.#tasks.size
    this.#o.log.info({ active: active.length, armed }, 'schedules started')
  }

  stop (): void {
    this.#running = false
    for (const id of [...this.#timers.keys(), ...this.#tasks.keys()]) this.disarm(id)
  }

  create (input: ScheduleInput): Schedule {
    const { store, config } = this.#o
    checkScheduleInput(input, this.#o.now().getTime(), config.timeZone)
    this.#o.checkTargets(input)
    const schedule = store.root.transactionSync(() => {
      const created: Schedule = {
        ...input, id: nextId(store, 'schedule'), state: 'active',
        createdAt: this.#o.now().toISOString(), counts: { sent: 0, missed: 0, failed: 0 }
      }
      saveSchedule(store, created)
      return created
    })
    this.arm(schedule)
    this.#o.log.info({
      schedule: schedule.id, organisation: schedule.organisationId,
      repeating: schedule.cron !== undefined, createdBy: schedule.createdBy
    }, 'schedule created')
    return schedule
  }

  remove (id: number, by: string): void {
    const schedule = getSchedule(this.#o.store, id)
    this.disarm(id)
    removeSchedule(this.#o.store, id)
    this.#o.log.info({ schedule: id, organisation: schedule.organisationId, by },
      'schedule deleted')
  }

  /** The next time the schedule will run, if any. */
  nextRun (schedule: Schedule): Date | undefined {
    if (schedule.state !== 'active') return undefined
    if (schedule.at !== undefined) return new Date(schedule.at)
    const next = this.#tasks.get(schedule.id)?.getNextRun() ?? undefined
    const end = schedule.endsAt === undefined ? Infinity : Date.parse(schedule.endsAt)
    return next !== undefined && next.getTime() <= end ? next : undefined
  }

  private arm (schedule: Schedule): void {
    if (!this.#running || schedule.state !== 'active') return
    if (schedule.at !== undefined) {
      this.armOnce(schedule.id, Date.parse(schedule.at))
      return
    }
    const fire = (date: Date): void => {
      this.safely(schedule.id, () => { this.fire(schedule.id, date.getTime()) })
    }
    const task = cronTask(schedule.cron as string, this.#o.config.timeZone, (c) => { fire(c.date) })
    // node-cron reports a tick it ran late (a blocked event loop) as missed; the grace decides.
    task.on('execution:missed', (c) => { fire(c.date) })
    this.#tasks.set(schedule.id, task)
    void task.start()
    this.endIfOver(schedule.id)
  }

  private armOnce (id: number, due: number): void {
    const delay = Math.min(Math.max(due - this.#o.now().getTime(), 0), MAX_DELAY)
    this.#timers.set(id, setTimeout(() => {
      this.#timers.delete(id)
      if (due > this.#o.now().getTime()) this.armOnce(id, due)
      else this.safely(id, () => { this.fire(id, due) })
    }, delay))
  }

  // A schedule that cannot run (a damaged record, the store closing) is logged; it must not
  // take the appliance, and the emergencies it carries, down with it.
  private safely (id: number, work: () => void): void {
    try {
      work()
    } catch (err) {
      this.#o.log.error({ schedule: id, err }, 'schedule error')
    }
  }

  private disarm (id: number): void {
    clearTimeout(this.#timers.get(id))
    this.#timers.delete(id)
    void this.#tasks.get(id)?.destroy()
    this.#tasks.delete(id)
  }

  /** One run falling due: sent when on time or within the grace, else recorded as missed. */
  private fire (id: number, due: number): void {
    if (!this.#running) return
    const schedule = findSchedule(this.#o.store, id)
    if (schedule === undefined || schedule.state !== 'active') {
      this.disarm(id)
      return
    }
    if (schedule.endsAt !== undefined && due > Date.parse(schedule.endsAt)) {
      this.endIfOver(id)
      return
    }
    if (findRun(this.#o.store, id, due) !== undefined) return
    const late = this.#o.now().getTime() - due > this.graceMs
    if (late) this.miss(schedule, { late: [due], superseded: [] })
    else this.send(schedule, due)
    this.endIfOver(id)
  }

  private get graceMs (): number {
    return this.#o.config.schedules.catchUpMinutes * 60_000
  }

  /**
   * The runs due between the last one handled and now. Of those within the grace only the latest
   * is sent — three copies of one notice after a restart help nobody; the earlier ones are
   * recorded as superseded. Older ones are missed.
   */
  private catchUp (schedule: Schedule): void {
    const now = this.#o.now().getTime()
    if (schedule.at !== undefined) {
      if (Date.parse(schedule.at) <= now) this.fire(schedule.id, Date.parse(schedule.at))
      return
    }
    const endsAt = schedule.endsAt === undefined ? Infinity : Date.parse(schedule.endsAt)
    const end = Math.min(now, endsAt)
    const from = schedule.lastDue ?? Date.parse(schedule.createdAt)
    const cutoff = now - this.graceMs
    const task = cronTask(schedule.cron as string, this.#o.config.timeZone, () => undefined)
    const late = slotsBetween(task, from, Math.min(end, cutoff - 1))
    const recent = slotsBetween(task, Math.max(from, cutoff - 1), end).slots
    void task.destroy()

    const latest = recent.pop()
    const through = late.complete ? undefined : cutoff - 1
    this.miss(schedule, { late: late.slots, superseded: recent, through })
    if (latest !== undefined) this.send(getSchedule(this.#o.store, schedule.id), latest)
  }

  private send (schedule: Schedule, due: number): void {
    const { organisationId, subject, body, priority, targets } = schedule
    const createdBy = `schedule:${schedule.id}`
    const input = { organisationId, subject, body, priority, targets, createdBy }
    const lateSeconds = Math.max(0, Math.round((this.#o.now().getTime() - due) / 1000))
    try {
      const broadcast = this.#o.submit(input, (b) => {
        recordRun(this.#o.store, schedule.id, due, { state: 'sent', broadcastId: b.id })
      })
      this.#o.log.info({
        schedule: schedule.id, organisation: organisationId, due: new Date(due).toISOString(),
        broadcast: broadcast.id, total: broadcast.total, lateSeconds
      }, 'scheduled run sent')
    } catch (err) {
      if (err instanceof RunTaken) return
      this.fail(schedule, due, err)
    }
  }

  // A run that cannot be submitted (nobody left in its groups, a group deleted) is not retried:
  // retrying could send it hours late. It is recorded, and the next run tries again.
  private fail (schedule: Schedule, due: number, err: unknown): void {
    const code = err instanceof MimamoriError ? err.code : 'MIMAMORI_INTERNAL'
    try {
      this.#o.store.root.transactionSync(() => {
        recordRun(this.#o.store, schedule.id, due, { state: 'failed', reason: code })
      })
    } catch (taken) {
      if (!(taken instanceof RunTaken)) throw taken
      return
    }
    this.#o.log.warn({
      schedule: schedule.id, organisation: schedule.organisationId,
      due: new Date(due).toISOString(), code, err: code === 'MIMAMORI_INTERNAL' ? err : undefined
    }, 'scheduled run failed')
  }

  private miss (
    schedule: Schedule, runs: { late: number[], superseded: number[], through?: number }
  ): void {
    const { store } = this.#o
    const all = [
      ...runs.late.map((due) => ({ due, reason: 'late' })),
      ...runs.superseded.map((due) => ({ due, reason: 'superseded' }))
    ]
    if (all.length === 0 && runs.through === undefined) return
    store.root.transactionSync(() => {
      for (const { due, reason } of all.slice(-MAX_MISSED_RECORDS)) {
        if (findRun(store, schedule.id, due) !== undefined) continue
        recordRun(store, schedule.id, due, { state: 'missed', reason })
      }
      const current = getSchedule(store, schedule.id)
      const missed = current.counts.missed + Math.max(0, all.length - MAX_MISSED_RECORDS)
      const lastDue = Math.max(current.lastDue ?? 0, runs.through ?? 0)
      saveSchedule(store, { ...current, lastDue, counts: { ...current.counts, missed } })
    })
    const { late } = runs
    const iso = (ms: number | undefined): string | undefined =>
      ms === undefined ? undefined : new Date(ms).toISOString()
    this.#o.log.warn({
      schedule: schedule.id, organisation: schedule.organisationId, late: late.length,
      superseded: runs.superseded.length, more: runs.through !== undefined,
      first: iso(late[0]), last: iso(late[late.length - 1])
    }, 'scheduled runs missed')
  }

  /** Marks a repeating schedule ended once no run remains before its end. */
  private endIfOver (id: number): void {
    const schedule = findSchedule(this.#o.store, id)
    if (schedule?.state !== 'active' || schedule.cron === undefined) return
    if (schedule.endsAt === undefined) return
    const end = Date.parse(schedule.endsAt)
    const next = this.#tasks.get(id)?.getNextRun() ?? null
    if (this.#o.now().getTime() <= end && (next === null || next.getTime() <= end)) return
    this.disarm(id)
    saveSchedule(this.#o.store, { ...schedule, state: 'ended' })
    this.#o.log.info({ schedule: id, organisation: schedule.organisationId }, 'schedule ended')
  }
}
