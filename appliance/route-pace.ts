// Runs in the appliance: the pace of one route — its message rate as a token bucket, the number
// of delivery tasks in flight, and the slow-down a carrier asks for with 421 or 4.7.x.

import type { RouteTarget } from './route-table.js'

const MIN_FACTOR = 0.05
const RECOVERY_MS = 10_000

export class RoutePace {
  tasks = 0
  #tokens: number
  #refilledAt = Date.now()
  #factor = 1
  #pausedUntil = 0
  #throttledAt = 0
  sent = 0
  deferred = 0
  failed = 0
  throttles = 0

  constructor (readonly target: RouteTarget, readonly maxTasks: number, readonly slowdownMs: number) {
    this.#tokens = this.capacity()
  }

  /** The rate in force now, after slow-downs. */
  rate (): number {
    return this.target.messagesPerSecond * this.#factor
  }

  /** How many messages may start now, at most `wanted`; takes them from the bucket. */
  take (wanted: number, now = Date.now()): number {
    if (now < this.#pausedUntil || this.tasks >= this.maxTasks) return 0
    this.refill(now)
    const n = Math.min(wanted, Math.floor(this.#tokens))
    this.#tokens -= n
    return n
  }

  /** Milliseconds until a message may start, for the dispatcher's timer. */
  waitMs (now = Date.now()): number {
    if (now < this.#pausedUntil) return this.#pausedUntil - now
    this.refill(now)
    return this.#tokens >= 1 ? 0 : Math.ceil(((1 - this.#tokens) / this.rate()) * 1000)
  }

  /** The gateway said slow down: halve the rate and hold off once per slow-down period. */
  throttle (now = Date.now()): void {
    this.throttles++
    if (now - this.#throttledAt < this.slowdownMs) return
    this.#throttledAt = now
    this.#factor = Math.max(MIN_FACTOR, this.#factor / 2)
    this.#pausedUntil = now + this.slowdownMs
    this.#tokens = 0
  }

  isSlowed (): boolean {
    return this.#factor < 1
  }

  private capacity (): number {
    // A quarter second of messages, and at least one: small routes still make progress.
    return Math.max(1, this.rate() / 4)
  }

  private refill (now: number): void {
    if (this.#factor < 1 && now - this.#throttledAt > RECOVERY_MS) {
      this.#factor = Math.min(1, this.#factor * 1.5)
      this.#throttledAt = now
    }
    const elapsed = (now - this.#refilledAt) / 1000
    this.#refilledAt = now
    this.#tokens = Math.min(this.capacity(), this.#tokens + elapsed * this.rate())
  }
}
