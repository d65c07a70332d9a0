// Runs in the appliance: polls the CAP feeds (feeds.cap.feeds: Atom feeds of CAP alerts) and
// hands each new alert on as a HazardEvent. Timers, back-off, conditional requests and the poll
// state under each feed's URL are feed-loop.ts's, as for the JMA feeds.
//
// No alert is fetched twice. Each entry is recorded once in feedEntries, keyed
// ['cap', id, updated]: CAP feeds update an entry in place, and a changed `updated` is a new
// entry. An alert embedded in its entry is taken without a GET; one only linked is fetched once;
// a refused or invalid alert is recorded with its reason and never fetched again; a GET that
// fails for a moment is asked again on the next polls, three times in all.

import type { Logger } from 'pino'
import type { Store } from '../store/store.js'
import { MimamoriError } from '../errors.js'
import type { FeedsConfig } from './feeds-config.js'
import type { HazardEvent } from './hazard-event.js'
import { readCapAlert, readCapFeed, type CapFeedEntry } from './cap-alert.js'
import { requestDocument } from './feed-request.js'
import type { FeedState } from './feed-state.js'
import { EntryRecords, oldestFirst, type EntryOutcome } from './entry-records.js'
import { FeedLoop, type Feed, type Validators } from './feed-loop.js'

export interface CapFeedPollerOptions {
  store: Store
  /** the feeds configuration: cap.feeds, userAgent, maxBackoffSeconds */
  config: FeedsConfig
  log: Logger
  /** takes an alert's event; awaited before the next entry is taken */
  onAlert: (event: HazardEvent) => void | Promise<void>
  timeoutSeconds?: number
  maxBytes?: number
  /** the first retry after a failed poll; it doubles up to config.maxBackoffSeconds */
  firstRetrySeconds?: number
  /** entries updated longer ago are recorded as stale and never read (a fresh install) */
  maxEntryAgeHours?: number
}

/** What the record of an entry keeps of it. */
type CapEntryRef = Pick<CapFeedEntry, 'id' | 'updated' | 'link'>

type Counts = Record<EntryOutcome | 'retry', number>

const DAY_MS = 24 * 3600_000
/** longer than a feed lists an entry, so a record outlives its entry */
const KEEP_MS = 14 * DAY_MS

export class CapFeedPoller extends FeedLoop {
  readonly #onAlert: (event: HazardEvent) => void | Promise<void>
  readonly #book: EntryRecords<CapEntryRef>
  readonly #maxAgeMs: number
  #prunedAt = 0

  constructor (options: CapFeedPollerOptions) {
    super({ ...options, feeds: options.config.cap.feeds })
    this.#onAlert = options.onAlert
    this.#book = new EntryRecords(options.store, {
      keyOf: (entry) => ['cap', entry.id, entry.updated],
      owns: (key) => key[0] === 'cap',
      notTakenIn: 'CAP alert not taken in'
    })
    this.#maxAgeMs = (options.maxEntryAgeHours ?? 24) * 3600_000
  }

  /** Reads every feed now, then each every everySeconds (0: on start only). */
  start (): void {
    if (this.feeds.length === 0 || !this.open()) return
    this.track('replay', this.#book.replay(this.#onAlert, this.log, () => this.stopped))
    for (const feed of this.feeds) this.run(feed)
  }

  protected async poll (feed: Feed, state: FeedState): Promise<void> {
    const agent = this.agent
    if (agent === undefined) return
    const res = await requestDocument(agent, feed.url, this.limits, state)
    if (res.outcome === 'failed') {
      this.failed(feed, state, res.reason)
      return
    }
    if (res.outcome === 'not-modified') {
      this.settle(feed, state, noCounts())
      return
    }
    const entries = readCapFeed(res.body, this.limits.maxBytes)
    const taken = await this.exclusive(async () => await this.takeEntries(feed.url, entries))
    // a poll stopped part-way keeps the old validators: the next one reads the feed in full
    const validators = { etag: res.etag, lastModified: res.lastModified }
    this.settle(feed, state, taken.counts, taken.interrupted ? undefined : validators)
  }

  private settle (feed: Feed, state: FeedState, counts: Counts, validators?: Validators): void {
    const taken = counts.ok + counts.refused + counts.error + counts.skipped
    if (counts.retry > 0) {
      // the validators are not kept: the feed is read in full while an alert is owed
      this.failed(feed, state, `${counts.retry} CAP alerts could not be fetched`, taken)
      return
    }
    const recovered = this.succeeded(feed, state, taken, validators)
    if (taken > 0 || recovered) {
      this.log.info({ feed: feed.url, ...counts, recovered }, 'feed polled')
    }
    this.pruneDaily()
  }

  /** Takes each entry not seen before, oldest first (a cancellation after what it cancels). */
  private async takeEntries (
    feed: string, entries: CapFeedEntry[]
  ): Promise<{ counts: Counts, interrupted: boolean }> {
    const counts = noCounts()
    for (const { entry, at } of oldestFirst(entries)) {
      if (this.stopped) return { counts, interrupted: true }
      if (this.#book.seen(entry)) continue
      counts[await this.take(feed, entry, at)]++
    }
    return { counts, interrupted: false }
  }

  private async take (
    feed: string, entry: CapFeedEntry, at: number
  ): Promise<EntryOutcome | 'retry'> {
    const ref: CapEntryRef = { id: entry.id, updated: entry.updated }
    if (entry.link !== undefined) ref.link = entry.link
    const embedded = entry.alert !== undefined || entry.refused !== undefined
    const type = embedded ? 'embedded' : 'linked'
    const book = this.#book
    if (entry.refused !== undefined) return book.note(feed, ref, type, 'refused', entry.refused)
    if (!(Date.now() - at <= this.#maxAgeMs)) return book.note(feed, ref, type, 'skipped', 'stale')
    if (entry.alert !== undefined) return await this.hand(feed, ref, type, entry.alert)
    if (entry.link === undefined || !/^https?:\/\//.test(entry.link)) {
      return book.note(feed, ref, type, 'skipped', 'no-link')
    }
    return await this.fetch(feed, ref, entry.link)
  }

  private async fetch (
    feed: string, ref: CapEntryRef, link: string
  ): Promise<EntryOutcome | 'retry'> {
    const body = await this.fetchEntry(link)
    if (!Buffer.isBuffer(body)) {
      return this.#book.failed(feed, ref, 'linked', body.reason, body.transient)
    }
    let event: HazardEvent
    try {
      event = readCapAlert(body, this.limits.maxBytes)
    } catch (err) {
      // unsafe (MIMAMORI_XML_REFUSED) or no valid CAP (MIMAMORI_CAP_INVALID): never asked again
      const e = err as { code?: string, message?: string }
      const outcome = err instanceof MimamoriError ? 'refused' : 'error'
      return this.#book.note(feed, ref, 'linked', outcome, `${e.code ?? 'Error'}: ${e.message}`)
    }
    return await this.hand(feed, ref, 'linked', event)
  }

  // Recorded before it is handed on: a crash in between hands it on again, never a GET.
  private async hand (
    feed: string, ref: CapEntryRef, type: string, event: HazardEvent
  ): Promise<'ok'> {
    this.#book.took(feed, ref, type, event)
    await this.#book.handOn(event, ref, this.#onAlert, this.log)
    return 'ok'
  }

  // An entry listed again after its record is forgotten is by then too old to be read.
  private pruneDaily (): void {
    if (Date.now() - this.#prunedAt < DAY_MS) return
    this.#prunedAt = Date.now()
    this.#book.forget(Math.max(KEEP_MS, 2 * this.#maxAgeMs))
  }
}

function noCounts (): Counts {
  return { ok: 0, refused: 0, error: 0, skipped: 0, retry: 0 }
}
