// Runs in the appliance: polls the JMA Atom feeds and hands each new telegram on as a
// HazardEvent. It owns the feedState and feedEntries sub-databases.
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

import { Agent, interceptors, type Dispatcher } from 'undici'
import type { Logger } from 'pino'
import type { Store } from '../store/store.js'
import type { FeedsConfig } from './feeds-config.js'
import type { HazardEvent } from './hazard-event.js'
import { readAtomFeed, type AtomEntry } from './atom-feed.js'
import { requestDocument, type RequestLimits } from './feed-request.js'
import { EntryBook, type EntryOutcome } from './feed-entries.js'
import { loadFeedState, saveFeedState, type FeedState, type FeedStatus } from './feed-state.js'

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

interface Feed { url: string, everySeconds: number }

interface PollResult {
  changed: boolean
  counts: Record<EntryOutcome | 'retry', number>
  gap: boolean
  interrupted: boolean
  validators?: { etag?: string, lastModified?: string }
}

const SKEW_MS = 60_000
const DAY_MS = 24 * 3600_000

export class FeedPoller {
  readonly #o: FeedPollerOptions
  readonly #feeds: Feed[]
  readonly #limits: RequestLimits
  readonly #book: EntryBook
  readonly #timers = new Map<string, NodeJS.Timeout>()
  readonly #inFlight = new Map<string, Promise<void>>()
  readonly #rerun = new Set<string>()
  #taking: Promise<unknown> = Promise.resolve()
  #agent: Dispatcher | undefined
  #stopped = true
  #prunedAt = 0

  constructor (options: FeedPollerOptions) {
    this.#o = options
    this.#feeds = options.config.jma.feeds.map(({ url, everySeconds }) => ({ url, everySeconds }))
    this.#limits = {
      userAgent: options.config.userAgent,
      timeoutMs: (options.timeoutSeconds ?? 20) * 1000,
      maxBytes: options.maxBytes ?? 8 * 1024 * 1024
    }
    this.#book = new EntryBook(options.store, options.maxEntryAgeHours ?? 6, options.config.jma.offices)
  }

  /** Reads every feed once (the long ones to catch up), then polls the high-frequency ones. */
  start (): void {
    if (!this.#stopped || !this.#o.config.jma.enabled) return
    this.#stopped = false
    // a redirect (http:// to https:// in the old feed format's links) is followed, not a failure
    this.#agent = new Agent({ connections: 2, keepAliveTimeout: 30_000 })
      .compose(interceptors.redirect({ maxRedirections: 3 }))
    this.track('replay', this.replay())
    // the high-frequency feeds first, for what is new; then the long ones, to catch up
    for (const feed of this.#feeds) if (feed.everySeconds > 0) this.run(feed)
    const first = Promise.allSettled([...this.#inFlight.values()])
    this.track('start', first.then(() => this.readLongFeeds()))
  }

  /** Stops the timers and waits for the polls in flight; nothing keeps the process alive after. */
  async stop (): Promise<void> {
    this.#stopped = true
    for (const timer of this.#timers.values()) clearTimeout(timer)
    this.#timers.clear()
    this.#rerun.clear()
    await Promise.allSettled([...this.#inFlight.values()])
    await this.#agent?.close()
    this.#agent = undefined
  }

  status (): FeedStatus[] {
    return this.#feeds.map(({ url, everySeconds }) => {
      const state = loadFeedState(this.#o.store, url)
      const { lastSuccessAt, failures, nextPollAt, entriesSeen, lastError } = state
      return { url, everySeconds, lastSuccessAt, failures, nextPollAt, entriesSeen, lastError }
    })
  }

  /** Resolves when no poll is in flight (for tests and an orderly shutdown). */
  async idle (): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight.values()])
  }

  private schedule (feed: Feed, delayMs: number): void {
    if (this.#stopped) return
    clearTimeout(this.#timers.get(feed.url))
    const timer = setTimeout(() => {
      this.#timers.delete(feed.url)
      this.run(feed)
    }, delayMs)
    timer.unref()
    this.#timers.set(feed.url, timer)
  }

  private run (feed: Feed): void {
    if (this.#stopped) return
    if (this.#inFlight.has(feed.url)) {
      // asked again while reading (a gap seen meanwhile): read once more right after
      this.#rerun.add(feed.url)
      return
    }
    this.track(feed.url, this.poll(feed), () => {
      if (this.#rerun.delete(feed.url)) this.run(feed)
    })
  }

  private track (key: string, work: Promise<void>, then?: () => void): void {
    const done = work.catch((err: unknown) => this.#o.log.error({ err }, 'feed poller failed'))
      .finally(() => {
        this.#inFlight.delete(key)
        then?.()
      })
    this.#inFlight.set(key, done)
  }

  private async poll (feed: Feed): Promise<void> {
    const state = loadFeedState(this.#o.store, feed.url)
    state.lastAttemptAt = new Date().toISOString()
    let result: PollResult | { failure: string }
    try {
      result = await this.read(feed, state)
    } catch (err) {
      // a feed that is no Atom feed, or unsafe (MIMAMORI_XML_REFUSED)
      result = { failure: (err as Error).message }
    }
    if ('failure' in result) {
      this.failed(feed, state, result.failure)
    } else if (result.counts.retry > 0) {
      this.failed(feed, state, `${result.counts.retry} telegrams could not be fetched`, result)
    } else {
      this.succeeded(feed, state, result)
    }
  }

  private async read (feed: Feed, state: FeedState): Promise<PollResult | { failure: string }> {
    const counts = { ok: 0, refused: 0, error: 0, skipped: 0, retry: 0 }
    const unchanged = { changed: false, counts, gap: false, interrupted: false }
    const agent = this.#agent
    if (agent === undefined) return { ...unchanged, interrupted: true }
    const res = await requestDocument(agent, feed.url, this.#limits, state)
    if (res.outcome === 'not-modified') return unchanged
    if (res.outcome === 'failed') return { failure: res.reason }

    const atom = readAtomFeed(res.body, this.#limits.maxBytes)
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

  // One feed's entries at a time: a feed's telegrams are handed on in their order, never
  // interleaved with another feed's, and the publisher sees one download at a time.
  private async exclusive<T> (work: () => Promise<T>): Promise<T> {
    const turn = this.#taking.then(work)
    this.#taking = turn.catch(() => undefined)
    return await turn
  }

  /** Takes each entry not seen before, oldest first; true when stopped part-way. */
  private async takeEntries (
    feed: Feed, entries: AtomEntry[], counts: PollResult['counts']
  ): Promise<boolean> {
    for (const { entry, type, skip } of this.#book.plan(entries)) {
      if (this.#stopped) return true
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
    const agent = this.#agent
    if (agent === undefined) return 'retry'
    const res = await requestDocument(agent, entry.link, this.#limits)
    if (res.outcome !== 'ok') {
      const failed = res.outcome === 'failed'
      const reason = failed ? res.reason : 'HTTP 304 without a conditional request'
      return this.#book.failed(feed.url, entry, type, reason, failed && res.transient)
    }
    const taken = this.#book.read(feed.url, entry, type, res.body)
    if (taken.event !== undefined) await this.hand(taken.event, entry)
    return taken.outcome
  }

  private async hand (event: HazardEvent, entry: AtomEntry): Promise<void> {
    try {
      await this.#o.onTelegram(event, entry)
    } catch (err) {
      this.#o.log.error({ err, event: event.id, type: event.type }, 'telegram not taken in')
    } finally {
      this.#book.handed(entry)
    }
  }

  // An event recorded but not handed on when the process died is handed on now: the desk
  // knows events by id, so a second hand-over does nothing there.
  private async replay (): Promise<void> {
    for (const { entry, event } of this.#book.pending()) {
      if (this.#stopped) return
      await this.hand(event, entry)
    }
  }

  private succeeded (feed: Feed, state: FeedState, result: PollResult): void {
    const recovered = state.failures > 0
    const taken = total(result.counts)
    state.failures = 0
    state.lastError = undefined
    state.lastSuccessAt = state.lastAttemptAt
    state.entriesSeen += taken
    // validators are kept only once every listed entry is handled: a poll stopped part-way
    // must read the whole feed again rather than get a 304 for entries it never took
    if (result.changed && !result.interrupted) {
      state.etag = result.validators?.etag
      state.lastModified = result.validators?.lastModified
    }
    const nextMs = feed.everySeconds > 0 ? feed.everySeconds * 1000 : undefined
    state.nextPollAt = nextMs === undefined ? undefined : inMs(nextMs)
    saveFeedState(this.#o.store, feed.url, state)

    if (taken > 0 || recovered) {
      const { counts, gap } = result
      this.#o.log.info({ feed: feed.url, ...counts, recovered, gap }, 'feed polled')
    }
    if (result.gap) this.readLongFeeds()
    if (nextMs !== undefined) this.schedule(feed, nextMs)
    this.pruneDaily()
  }

  private failed (feed: Feed, state: FeedState, reason: string, result?: PollResult): void {
    state.failures += 1
    state.lastError = reason.slice(0, 300)
    state.entriesSeen += result === undefined ? 0 : total(result.counts)
    const first = this.#o.firstRetrySeconds ?? 15
    const seconds = Math.min(first * 2 ** (state.failures - 1), this.#o.config.maxBackoffSeconds)
    const delayMs = seconds * 1000
    state.nextPollAt = inMs(delayMs)
    saveFeedState(this.#o.store, feed.url, state)
    this.#o.log.warn({
      feed: feed.url, failures: state.failures, retryInSeconds: seconds, reason: state.lastError
    }, 'feed poll failed')
    this.schedule(feed, delayMs)
  }

  private readLongFeeds (): void {
    for (const feed of this.#feeds) {
      if (feed.everySeconds === 0) this.run(feed)
    }
  }

  private pruneDaily (): void {
    if (Date.now() - this.#prunedAt < DAY_MS) return
    this.#prunedAt = Date.now()
    this.#book.prune()
  }
}

function inMs (ms: number): string {
  return new Date(Date.now() + ms).toISOString()
}

function total (counts: PollResult['counts']): number {
  return counts.ok + counts.refused + counts.error + counts.skipped
}
