// Runs in the appliance: the book of feed entries seen (the feedEntries sub-database), which
// decides which telegrams are fetched at all and makes sure none is fetched twice.
//
// An entry is keyed by its link and id, which the short and the long feed list alike, so a
// telegram seen in extra.xml is not fetched again from extra_l.xml. Its record is written when
// the telegram has been read, together with the event, and the event is dropped from it once
// handed on: a crash in between hands the event on again after the restart, never the GET.

import type { Store } from '../store/store.js'
import type { AtomEntry } from './atom-feed.js'
import type { HazardEvent } from './hazard-event.js'
import { READ_TYPES, readJmaTelegram, telegramType } from './jma-telegram.js'

/** What came of an entry: handed on, refused as unsafe, failed for good, or not fetched. */
export type EntryOutcome = 'ok' | 'refused' | 'error' | 'skipped'

export interface EntryRecord {
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
  pending?: { event: HazardEvent, entry: AtomEntry }
}

export interface PlannedEntry {
  entry: AtomEntry
  type: string
  /** why it is recorded without a GET: not-read, stale, paired, no-link */
  skip?: string
}

const MAX_ATTEMPTS = 3
/** kinds a local observatory issues for its own prefecture */
const REGIONAL: ReadonlySet<string> = new Set(['weather-warning', 'landslide'])
/** longer than a long feed lists an entry (a few days), so a record outlives its entry */
const KEEP_MS = 14 * 24 * 3600_000

export class EntryBook {
  readonly #store: Store
  readonly #maxAgeMs: number
  readonly #offices: ReadonlySet<string>

  /** offices: the authors whose weather telegrams are fetched; none given means every one */
  constructor (store: Store, maxEntryAgeHours: number, offices: readonly string[] = []) {
    this.#store = store
    this.#maxAgeMs = maxEntryAgeHours * 3600_000
    this.#offices = new Set(offices)
  }

  /** The entries not seen yet, oldest first (a cancellation after what it cancels). */
  plan (entries: AtomEntry[]): PlannedEntry[] {
    const fresh = entries.map((entry, i) => ({ entry, i, at: Date.parse(entry.updated) }))
      .filter(({ entry }) => !this.seen(entry))
      // feeds list the newest first: among equal times, the later in the feed is the older
      .sort((a, b) => (a.at - b.at) || (b.i - a.i))
    const paired = pairedKeys(entries)
    return fresh.map(({ entry, at }) => {
      const type = entryType(entry)
      return { entry, type, skip: this.skipReason(entry, type, at, paired) }
    })
  }

  private skipReason (
    entry: AtomEntry, type: string, at: number, paired: Set<string>
  ): string | undefined {
    const read = READ_TYPES[type]
    if (read === undefined) return 'not-read'
    if (!/^https?:\/\//.test(entry.link)) return 'no-link'
    if (REGIONAL.has(read.kind) && this.#offices.size > 0 && !this.#offices.has(entry.author)) {
      return 'other-office'
    }
    if (!(Date.now() - at <= this.#maxAgeMs)) return 'stale'
    // VPWW53 and VPWW54 carry the same warnings at the same moment: only VPWW54 is fetched
    // when the feed lists both, so that each warning is downloaded and handed on once
    if (type === 'VPWW53' && paired.has(`${entry.author}\n${entry.updated}`)) return 'paired'
    return undefined
  }

  skip (feed: string, entry: AtomEntry, type: string, reason: string): 'skipped' {
    this.put(entry, { at: now(), feed, type, outcome: 'skipped', reason })
    return 'skipped'
  }

  /** A GET that failed: transient failures are asked again, a few times, then given up. */
  failed (
    feed: string, entry: AtomEntry, type: string, reason: string, transient: boolean
  ): 'retry' | 'error' {
    const attempts = (this.get(entry)?.attempts ?? 0) + 1
    const outcome = transient && attempts < MAX_ATTEMPTS ? 'retry' : 'error'
    this.put(entry, { at: now(), feed, type, outcome, reason, attempts })
    return outcome
  }

  /** Reads a fetched telegram and records it; the event comes back to be handed on. */
  read (
    feed: string, entry: AtomEntry, type: string, body: Buffer
  ): { outcome: EntryOutcome, event?: HazardEvent } {
    let event: HazardEvent
    try {
      event = readJmaTelegram(body)
    } catch (err) {
      const e = err as { code?: string, message?: string }
      const outcome = e.code === 'MIMAMORI_XML_REFUSED' ? 'refused' : 'error'
      this.put(entry, { at: now(), feed, type, outcome, reason: String(e.message).slice(0, 300) })
      return { outcome }
    }
    const pending = { event, entry }
    this.put(entry, { at: now(), feed, type, outcome: 'ok', eventId: event.id, pending })
    return { outcome: 'ok', event }
  }

  handed (entry: AtomEntry): void {
    const record = this.get(entry)
    if (record?.pending === undefined) return
    const { pending: _, ...rest } = record
    this.put(entry, rest)
  }

  /** Events recorded but never handed on (the process stopped in between). */
  pending (): Array<{ event: HazardEvent, entry: AtomEntry }> {
    const out: Array<{ event: HazardEvent, entry: AtomEntry }> = []
    for (const { value } of this.#store.feedEntries.getRange()) {
      const pending = (value as EntryRecord).pending
      if (pending !== undefined) out.push(pending)
    }
    return out
  }

  /**
   * Forgets records older than KEEP_MS, or twice the age past which entries are not fetched:
   * an entry listed again after its record is gone is then too old to be fetched anyway.
   */
  prune (): number {
    const keepMs = Math.max(KEEP_MS, 2 * this.#maxAgeMs)
    if (!Number.isFinite(keepMs)) return 0
    const cutoff = new Date(Date.now() - keepMs).toISOString()
    const old: unknown[] = []
    for (const { key, value } of this.#store.feedEntries.getRange()) {
      const record = value as EntryRecord
      if (record.at < cutoff && record.pending === undefined) old.push(key)
    }
    this.#store.root.transactionSync(() => {
      for (const key of old) this.#store.feedEntries.removeSync(key as string[])
    })
    return old.length
  }

  get (entry: AtomEntry): EntryRecord | undefined {
    return this.#store.feedEntries.get([entry.link, entry.id]) as EntryRecord | undefined
  }

  seen (entry: AtomEntry): boolean {
    const record = this.get(entry)
    return record !== undefined && record.outcome !== 'retry'
  }

  private put (entry: AtomEntry, record: EntryRecord): void {
    this.#store.feedEntries.putSync([entry.link, entry.id], record)
  }
}

/** An entry's telegram type: from the data file name (…_VPWW54_380000.xml), else its title. */
export function entryType (entry: AtomEntry): string {
  const fromLink = /_(V[A-Z0-9]{5})_[^/]*\.xml$/.exec(entry.link)?.[1]
  return fromLink ?? telegramType(entry.title)
}

function pairedKeys (entries: AtomEntry[]): Set<string> {
  const vpww54 = entries.filter((e) => entryType(e) === 'VPWW54')
  return new Set(vpww54.map((e) => `${e.author}\n${e.updated}`))
}

function now (): string {
  return new Date().toISOString()
}
