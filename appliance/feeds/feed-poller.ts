// Runs in the appliance: polls the JMA Atom feeds and hands each new telegram on as a
// HazardEvent. The polling itself (timers, back-off, the feedState records) is feed-loop.ts.
//
// The publisher blocks clients that download the same file again, so no telegram is ever
// fetched twice: an entry is recorded (by its link and id, the same in the short and the long
// feed) before its event is handed on, and a record survives a restart. Feeds are asked with
// If-None-Match / If-Modified-Since, and a 304 costs one request and nothing else.
//
// When the long feeds are read: on start, and after a gap in a high-frequency feed — when the
// oldest entry it lists is newer than our last successful read of it (less a minute for clock
// skew), entries may have dropped out of it unseen, and the long feeds (which hold days) are
// read to catch up. A failed poll counts as a gap only if the next good read shows one. On
// start the high-frequency feeds are read first, for what is new, then the long ones.

import type { Logger } from 'pino'
import type { Store } from '../store/store.js'
import type { FeedsConfig } from './feeds-config.js'
import type { HazardEvent } from './hazard-event.js'
import { readAtomFeed, type AtomEntry } from './atom-feed.js'
import { requestDocument } from './feed-request.js'
import { EntryBook, type EntryOutcome } from './feed-entries.js'
import type { FeedState, FeedStatus } from './feed-state.js'
import { FeedLoop, type Feed, type Validators } from './feed-loop.js'

export type { FeedState, FeedStatus }

export interface FeedPollerOptions {
  store: Store
  /** the feeds configuration: jma.enabled, jma.feeds, userAgent, maxBackoffSeconds */
  config: FeedsConfig
  log: Logger
  /** takes a telegram's event; awaited before the next telegram is fetched */
  onTelegram: (event: HazardEvent, entry: AtomEntry) => void | Promise<void>
  timeoutSeconds?: number
  maxBytes?: number
  /** the first retry after a failed poll; it doubles up to config.maxBackoffSeconds */
  firstRetrySeconds?: number
  /** older entries are recorded as stale and never fetched (a fresh install, a long outage) */
  maxEntryAgeHours?: number
}

interface PollResult {
  changed: boolean
  counts: Record<EntryOutcome | 'retry', number>
  gap: boolean
  interrupted: boolean
  validators?: Validators
}

const SKEW_MS = 60_000
const DAY_MS = 24 * 3600_000

export class FeedPoller extends FeedLoop {
  readonly #o: FeedPollerOptions
  readonly #book: EntryBook
  #prunedAt = 0

  constructor (options: FeedPollerOptions) {
    super({ ...options, feeds: options.config.jma.feeds })
    this.#o = options
    const { store, maxEntryAgeHours, config } = options
    this.#book = new EntryBook(store, maxEntryAgeHours ?? 6, config.jma.offices)
  }

  /** Reads every feed once (the long ones to catch up), then polls the high-frequency ones. */
  start (): void {
    if (!this.#o.config.jma.enabled || !this.open()) return
    this.track('replay', this.replay())
    // the high-frequency feeds first, for what is new; then the long ones, to catch up
    for (const feed of this.feeds) if (feed.everySeconds > 0) this.run(feed)
    this.track('start', this.current().then(() => { this.readLongFeeds() }))
  }

  protected async poll (feed: Feed, state: FeedState): Promise<void> {
    const result = await this.read(feed, state)
    if ('failure' in result) {
      this.failed(feed, state, result.failure)
    } else if (result.counts.retry > 0) {
      const reason = `${result.counts.retry} telegrams could not be fetched`
      this.failed(feed, state, reason, total(result.counts))
    } else {
      this.tookAll(feed, state, result)
    }
  }

  private async read (feed: Feed, state: FeedState): Promise<PollResult | { failure: string }> {
    const counts = { ok: 0, refused: 0, error: 0, skipped: 0, retry: 0 }
    const unchanged = { changed: false, counts, gap: false, interrupted: false }
    const agent = this.agent
    if (agent === undefined) return { ...unchanged, interrupted: true }
    const res = await requestDocument(agent, feed.url, this.limits, state)
    if (res.outcome === 'not-modified') return unchanged
    if (res.outcome === 'failed') return { failure: res.reason }

    const atom = readAtomFeed(res.body, this.limits.maxBytes)
    const gap = feed.everySeconds > 0 && this.gapBefore(atom.entries, state)
    const interrupted = await this.exclusive(async () =>
      await this.takeEntries(feed, atom.entries, counts))
    const validators = { etag: res.etag, lastModified: res.lastModified }
    return { changed: true, counts, gap, interrupted, validators }
  }

  // The feed lists a window of entries; if our last good read is older than its oldest entry,
  // what fell out of the window in between was never seen here.
  private gapBefore (entries: AtomEntry[], state: FeedState): boolean {
    const times = entries.map((e) => Date.parse(e.updated)).filter(Number.isFinite)
    if (state.lastSuccessAt === undefined || times.length === 0) return false
    return Math.min(...times) > Date.parse(state.lastSuccessAt) - SKEW_MS
  }

  /** Takes each entry not seen before, oldest first; true when stopped part-way. */
  private async takeEntries (
    feed: Feed, entries: AtomEntry[], counts: PollResult['counts']
  ): Promise<boolean> {
    for (const { entry, type, skip } of this.#book.plan(entries)) {
      if (this.stopped) return true
      // another feed may have taken it while this one waited for its turn
      if (this.#book.seen(entry)) continue
      const outcome = skip === undefined
        ? await this.take(feed, entry, type)
        : this.#book.skip(feed.url, entry, type, skip)
      counts[outcome]++
    }
    return false
  }

  private async take (feed: Feed, entry: AtomEntry, type: string): Promise<EntryOutcome | 'retry'> {
    const body = await this.fetchEntry(entry.link)
    if (!Buffer.isBuffer(body)) {
      return this.#book.failed(feed.url, entry, type, body.reason, body.transient)
    }
    const taken = this.#book.read(feed.url, entry, type, body)
    if (taken.event !== undefined) {
      await this.#book.handOn(taken.event, entry, this.#o.onTelegram, this.log)
    }
    return taken.outcome
  }

  private async replay (): Promise<void> {
    await this.#book.replay(this.#o.onTelegram, this.log, () => this.stopped)
  }

  private tookAll (feed: Feed, state: FeedState, result: PollResult): void {
    const taken = total(result.counts)
    // validators are kept only once every listed entry is handled: a poll stopped part-way
    // must read the whole feed again rather than get a 304 for entries it never took
    const keep = result.changed && !result.interrupted
    const recovered = this.succeeded(feed, state, taken, keep ? result.validators : undefined)
    if (taken > 0 || recovered) {
      const { counts, gap } = result
      this.log.info({ feed: feed.url, ...counts, recovered, gap }, 'feed polled')
    }
    if (result.gap) this.readLongFeeds()
    this.pruneDaily()
  }

  private readLongFeeds (): void {
    for (const feed of this.feeds) {
      if (feed.everySeconds === 0) this.run(feed)
    }
  }

  private pruneDaily (): void {
    if (Date.now() - this.#prunedAt < DAY_MS) return
    this.#prunedAt = Date.now()
    this.#book.prune()
  }
}

function total (counts: PollResult['counts']): number {
  return counts.ok + counts.refused + counts.error + counts.skipped
}
