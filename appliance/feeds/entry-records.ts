// Runs in the appliance: the records of feed entries seen (the feedEntries sub-database), shared
// by the JMA and the CAP pollers, each under its own keys. An entry is recorded when it has been
// read, together with its event, and the event is dropped from the record once handed on: a crash
// in between hands the event on again after the restart, never the GET.

import type { Logger } from 'pino'
import type { Store } from '../store/store.js'
import type { HazardEvent } from './hazard-event.js'

/** What came of an entry: handed on, refused as unsafe, failed for good, or not fetched. */
export type EntryOutcome = 'ok' | 'refused' | 'error' | 'skipped'

export interface EntryRecord<E = unknown> {
  at: string
  /** the feed it was first seen in */
  feed: string
  type: string
  /** 'retry': a transient failure, asked again on the next poll, MAX_ATTEMPTS times in all */
  outcome: EntryOutcome | 'retry'
  reason?: string
  eventId?: string
  attempts?: number
  /** the event and its entry, until the event has been handed on */
  pending?: { event: HazardEvent, entry: E }
}

export interface EntryKeys<E> {
  keyOf: (entry: E) => string[]
  /** whether a stored key is this book's: the pollers share the sub-database */
  owns: (key: string[]) => boolean
  /** the error logged when handing an event on throws (docs/feeds.md lists it) */
  notTakenIn: string
}

/** Takes a handed-on event; the entry is the one it was read from. */
export type EventTaker<E> = (event: HazardEvent, entry: E) => void | Promise<void>

const MAX_ATTEMPTS = 3

export class EntryRecords<E> {
  protected readonly store: Store
  readonly #keys: EntryKeys<E>

  constructor (store: Store, keys: EntryKeys<E>) {
    this.store = store
    this.#keys = keys
  }

  get (entry: E): EntryRecord<E> | undefined {
    return this.store.feedEntries.get(this.#keys.keyOf(entry)) as EntryRecord<E> | undefined
  }

  /** Seen: recorded with an outcome for good (a transient failure is asked again). */
  seen (entry: E): boolean {
    const record = this.get(entry)
    return record !== undefined && record.outcome !== 'retry'
  }

  /** Records an entry that is not handed on: skipped, refused or failed for good. */
  note<O extends EntryOutcome> (
    feed: string, entry: E, type: string, outcome: O, reason: string
  ): O {
    this.put(entry, { at: now(), feed, type, outcome, reason: reason.slice(0, 300) })
    return outcome
  }

  /** A GET that failed: transient failures are asked again, a few times, then given up. */
  failed (
    feed: string, entry: E, type: string, reason: string, transient: boolean
  ): 'retry' | 'error' {
    const attempts = (this.get(entry)?.attempts ?? 0) + 1
    const outcome = transient && attempts < MAX_ATTEMPTS ? 'retry' : 'error'
    this.put(entry, { at: now(), feed, type, outcome, reason, attempts })
    return outcome
  }

  /** Records an entry read into an event, which stays in the record until handed on. */
  took (feed: string, entry: E, type: string, event: HazardEvent): 'ok' {
    const pending = { event, entry }
    this.put(entry, { at: now(), feed, type, outcome: 'ok', eventId: event.id, pending })
    return 'ok'
  }

  /** Hands a recorded event on; a failure to take it in is logged, never handed on again. */
  async handOn (event: HazardEvent, entry: E, take: EventTaker<E>, log: Logger): Promise<void> {
    try {
      await take(event, entry)
    } catch (err) {
      log.error({ err, event: event.id, type: event.type }, this.#keys.notTakenIn)
    } finally {
      this.handed(entry)
    }
  }

  // An event recorded but not handed on when the process died is handed on now: the desk
  // knows events by id, so a second hand-over does nothing there.
  async replay (take: EventTaker<E>, log: Logger, stopped: () => boolean): Promise<void> {
    for (const { entry, event } of this.pending()) {
      if (stopped()) return
      await this.handOn(event, entry, take, log)
    }
  }

  /** Events recorded but never handed on (the process stopped in between). */
  pending (): Array<{ event: HazardEvent, entry: E }> {
    const out: Array<{ event: HazardEvent, entry: E }> = []
    for (const { key, value } of this.store.feedEntries.getRange()) {
      const pending = (value as EntryRecord<E>).pending
      if (pending !== undefined && this.#keys.owns(key as string[])) out.push(pending)
    }
    return out
  }

  /** Forgets this book's records older than keepMs, except those still to be handed on. */
  forget (keepMs: number): number {
    if (!Number.isFinite(keepMs)) return 0
    const cutoff = new Date(Date.now() - keepMs).toISOString()
    const old: string[][] = []
    for (const { key, value } of this.store.feedEntries.getRange()) {
      const record = value as EntryRecord<E>
      if (record.at < cutoff && record.pending === undefined && this.#keys.owns(key as string[])) {
        old.push(key as string[])
      }
    }
    this.store.root.transactionSync(() => {
      for (const key of old) this.store.feedEntries.removeSync(key)
    })
    return old.length
  }

  private handed (entry: E): void {
    const record = this.get(entry)
    if (record?.pending === undefined) return
    const { pending: _, ...rest } = record
    this.put(entry, rest)
  }

  private put (entry: E, record: EntryRecord<E>): void {
    this.store.feedEntries.putSync(this.#keys.keyOf(entry), record)
  }
}

/** Entries oldest first, with their times: a cancellation is taken after what it cancels. */
export function oldestFirst<T extends { updated: string }> (
  entries: T[]
): Array<{ entry: T, at: number }> {
  return entries.map((entry, i) => ({ entry, i, at: Date.parse(entry.updated) }))
    // feeds list the newest first: among equal times, the later in the feed is the older
    .sort((a, b) => (a.at - b.at) || (b.i - a.i))
}

function now (): string {
  return new Date().toISOString()
}
