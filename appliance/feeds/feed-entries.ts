// Runs in the appliance: the book of JMA feed entries seen (in the feedEntries sub-database,
// beside the CAP poller's), which decides which telegrams are fetched at all and makes sure none
// is fetched twice.
//
// An entry is keyed by its link and id, which the short and the long feed list alike, so a
// telegram seen in extra.xml is not fetched again from extra_l.xml. Its record is written when
// the telegram has been read, together with the event (see entry-records.ts).

import type { Store } from '../store/store.js'
import type { AtomEntry } from './atom-feed.js'
import type { HazardEvent } from './hazard-event.js'
import { READ_TYPES, readJmaTelegram, telegramType } from './jma-telegram.js'
import {
  EntryRecords, oldestFirst, type EntryOutcome, type EntryRecord as AnyEntryRecord
} from './entry-records.js'

export type { EntryOutcome }
export type EntryRecord = AnyEntryRecord<AtomEntry>

export interface PlannedEntry {
  entry: AtomEntry
  type: string
  /** why it is recorded without a GET: not-read, stale, paired, no-link */
  skip?: string
}

/** kinds a local observatory issues for its own prefecture */
const REGIONAL: ReadonlySet<string> = new Set(['weather-warning', 'landslide'])
/** longer than a long feed lists an entry (a few days), so a record outlives its entry */
const KEEP_MS = 14 * 24 * 3600_000

export class EntryBook extends EntryRecords<AtomEntry> {
  readonly #maxAgeMs: number
  readonly #offices: ReadonlySet<string>

  /** offices: the authors whose weather telegrams are fetched; none given means every one */
  constructor (store: Store, maxEntryAgeHours: number, offices: readonly string[] = []) {
    super(store, {
      keyOf: (entry) => [entry.link, entry.id],
      // the CAP poller's keys begin with 'cap'; a JMA link never is that word
      owns: (key) => key[0] !== 'cap',
      notTakenIn: 'telegram not taken in'
    })
    this.#maxAgeMs = maxEntryAgeHours * 3600_000
    this.#offices = new Set(offices)
  }

  /** The entries not seen yet, oldest first (a cancellation after what it cancels). */
  plan (entries: AtomEntry[]): PlannedEntry[] {
    const fresh = oldestFirst(entries).filter(({ entry }) => !this.seen(entry))
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
    return this.note(feed, entry, type, 'skipped', reason)
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
      return { outcome: this.note(feed, entry, type, outcome, String(e.message)) }
    }
    return { outcome: this.took(feed, entry, type, event), event }
  }

  /**
   * Forgets records older than KEEP_MS, or twice the age past which entries are not fetched:
   * an entry listed again after its record is gone is then too old to be fetched anyway.
   */
  prune (): number {
    return this.forget(Math.max(KEEP_MS, 2 * this.#maxAgeMs))
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
