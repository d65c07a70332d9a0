// Runs in the appliance: what the JMA and the CAP pollers share — one poll per feed at a time,
// on timers that never keep the process alive, over one HTTP agent; a failed poll retried with
// back-off; each feed's poll state kept in feedState under its URL, which status() shows.

import { Agent, interceptors, type Dispatcher } from 'undici'
import type { Logger } from 'pino'
import type { Store } from '../store/store.js'
import type { FeedsConfig } from './feeds-config.js'
import { requestDocument, type RequestLimits } from './feed-request.js'
import { loadFeedState, saveFeedState, type FeedState, type FeedStatus } from './feed-state.js'

export interface Feed { url: string, everySeconds: number }

export interface Validators { etag?: string, lastModified?: string }

export interface FeedLoopOptions {
  store: Store
  log: Logger
  feeds: Feed[]
  config: Pick<FeedsConfig, 'userAgent' | 'maxBackoffSeconds'>
  timeoutSeconds?: number
  maxBytes?: number
  /** the first retry after a failed poll; it doubles up to maxBackoffSeconds */
  firstRetrySeconds?: number
}

export abstract class FeedLoop {
  protected readonly store: Store
  protected readonly log: Logger
  protected readonly feeds: Feed[]
  protected readonly limits: RequestLimits
  readonly #backoff: { firstSeconds: number, maxSeconds: number }
  readonly #timers = new Map<string, NodeJS.Timeout>()
  readonly #inFlight = new Map<string, Promise<void>>()
  readonly #rerun = new Set<string>()
  #taking: Promise<unknown> = Promise.resolve()
  #agent: Dispatcher | undefined
  #stopped = true

  constructor (o: FeedLoopOptions) {
    this.store = o.store
    this.log = o.log
    this.feeds = o.feeds.map(({ url, everySeconds }) => ({ url, everySeconds }))
    this.limits = {
      userAgent: o.config.userAgent,
      timeoutMs: (o.timeoutSeconds ?? 20) * 1000,
      maxBytes: o.maxBytes ?? 8 * 1024 * 1024
    }
    const maxSeconds = o.config.maxBackoffSeconds
    this.#backoff = { firstSeconds: o.firstRetrySeconds ?? 15, maxSeconds }
  }

  /** Reads one feed and settles it with succeeded() or failed(); a throw counts as failed. */
  protected abstract poll (feed: Feed, state: FeedState): Promise<void>

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
    return this.feeds.map(({ url, everySeconds }) => {
      const state = loadFeedState(this.store, url)
      const { lastSuccessAt, failures, nextPollAt, entriesSeen, lastError } = state
      return { url, everySeconds, lastSuccessAt, failures, nextPollAt, entriesSeen, lastError }
    })
  }

  /** Resolves when no poll is in flight (for tests and an orderly shutdown). */
  async idle (): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight.values()])
  }

  protected get stopped (): boolean {
    return this.#stopped
  }

  /** The agent polls go through; undefined once stopped. */
  protected get agent (): Dispatcher | undefined {
    return this.#agent
  }

  /** Opens the agent; false when already running. */
  protected open (): boolean {
    if (!this.#stopped) return false
    this.#stopped = false
    // a redirect (http:// to https://, a moved document) is followed, not a failure
    this.#agent = new Agent({ connections: 2, keepAliveTimeout: 30_000 })
      .compose(interceptors.redirect({ maxRedirections: 3 }))
    return true
  }

  /** Settles when the polls in flight now have. */
  protected async current (): Promise<void> {
    await Promise.allSettled([...this.#inFlight.values()])
  }

  /** GETs an entry's document: its body, or why not (transient: worth asking again). */
  protected async fetchEntry (
    url: string
  ): Promise<Buffer | { reason: string, transient: boolean }> {
    const agent = this.#agent
    if (agent === undefined) return { reason: 'stopped', transient: true }
    const res = await requestDocument(agent, url, this.limits)
    if (res.outcome === 'ok') return res.body
    if (res.outcome === 'failed') return res
    return { reason: 'HTTP 304 without a conditional request', transient: false }
  }

  protected run (feed: Feed): void {
    if (this.#stopped) return
    if (this.#inFlight.has(feed.url)) {
      // asked again while reading: read once more right after
      this.#rerun.add(feed.url)
      return
    }
    this.track(feed.url, this.attempt(feed), () => {
      if (this.#rerun.delete(feed.url)) this.run(feed)
    })
  }

  protected track (key: string, work: Promise<void>, then?: () => void): void {
    const done = work.catch((err: unknown) => this.log.error({ err }, 'feed poller failed'))
      .finally(() => {
        this.#inFlight.delete(key)
        then?.()
      })
    this.#inFlight.set(key, done)
  }

  // One feed's entries at a time: a feed's entries are handed on in their order, never
  // interleaved with another feed's, and the publisher sees one download at a time.
  protected async exclusive<T> (work: () => Promise<T>): Promise<T> {
    const turn = this.#taking.then(work)
    this.#taking = turn.catch(() => undefined)
    return await turn
  }

  /** Records a good read and schedules the next; true when the feed had been failing. */
  protected succeeded (
    feed: Feed, state: FeedState, entries: number, validators?: Validators
  ): boolean {
    const recovered = state.failures > 0
    state.failures = 0
    state.lastError = undefined
    state.lastSuccessAt = state.lastAttemptAt
    state.entriesSeen += entries
    if (validators !== undefined) {
      state.etag = validators.etag
      state.lastModified = validators.lastModified
    }
    const nextMs = feed.everySeconds > 0 ? feed.everySeconds * 1000 : undefined
    state.nextPollAt = nextMs === undefined ? undefined : inMs(nextMs)
    saveFeedState(this.store, feed.url, state)
    if (nextMs !== undefined) this.schedule(feed, nextMs)
    return recovered
  }

  /** Records a failed poll and retries it after 15 s, doubling up to maxBackoffSeconds. */
  protected failed (feed: Feed, state: FeedState, reason: string, entries = 0): void {
    state.failures += 1
    state.lastError = reason.slice(0, 300)
    state.entriesSeen += entries
    const { firstSeconds, maxSeconds } = this.#backoff
    const seconds = Math.min(firstSeconds * 2 ** (state.failures - 1), maxSeconds)
    state.nextPollAt = inMs(seconds * 1000)
    saveFeedState(this.store, feed.url, state)
    this.log.warn({
      feed: feed.url, failures: state.failures, retryInSeconds: seconds, reason: state.lastError
    }, 'feed poll failed')
    this.schedule(feed, seconds * 1000)
  }

  private async attempt (feed: Feed): Promise<void> {
    const state = loadFeedState(this.store, feed.url)
    state.lastAttemptAt = new Date().toISOString()
    try {
      await this.poll(feed, state)
    } catch (err) {
      // a feed that is no Atom feed, or unsafe (MIMAMORI_XML_REFUSED)
      this.failed(feed, state, (err as Error).message)
    }
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
}

function inMs (ms: number): string {
  return new Date(Date.now() + ms).toISOString()
}
