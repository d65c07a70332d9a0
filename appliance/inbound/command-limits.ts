// Runs in the appliance: the counters that keep the command address from being abused — how
// many commands (and wrong codes) a sender may send an hour, and that a refusal to an
// unauthenticated sender goes out at most once an hour, so a forged From cannot turn the
// appliance into a backscatter source and two auto-responders cannot loop through it.
//
// Why not rate-limiter-flexible: its in-memory limiter forgets every count on a restart (a crash
// loop or a deploy would reset a brute-force attempt), and its persistent stores are Redis,
// Mongo, SQL and the like, none of which this appliance runs. A custom store for it would be
// more code than these fixed one-hour windows kept in the LMDB environment we already have,
// written in the same synchronous transactions as the rest of the command's state.

import type { Store } from '../store/store.js'

const HOUR = 3_600_000

interface Window { start: number, count: number }

export class CommandLimits {
  constructor (readonly store: Store, readonly now: () => number = Date.now) {}

  /** How many hits the key has in its current hour. */
  used (key: string): number {
    const window = this.store.commandLimits.get(`rate:${key}`) as Window | undefined
    if (window === undefined || this.now() - window.start >= HOUR) return 0
    return window.count
  }

  /** Whether the key has used up its allowance for this hour. */
  exhausted (key: string, perHour: number): boolean {
    return this.used(key) >= perHour
  }

  /** Counts one more command (or wrong code) for the key. */
  hit (key: string): void {
    this.store.root.transactionSync(() => {
      const now = this.now()
      const current = this.store.commandLimits.get(`rate:${key}`) as Window | undefined
      const next: Window = current === undefined || now - current.start >= HOUR
        ? { start: now, count: 1 }
        : { start: current.start, count: current.count + 1 }
      this.store.commandLimits.putSync(`rate:${key}`, next)
    })
  }

  /**
   * True at most once an hour per key and kind, and records that a reply goes out. Callers send
   * the refusal only when this says so.
   */
  mayReply (key: string, kind: string): boolean {
    return this.store.root.transactionSync(() => {
      const now = this.now()
      const name = `reply:${kind}:${key}`
      const last = this.store.commandLimits.get(name) as number | undefined
      if (last !== undefined && now - last < HOUR) return false
      this.store.commandLimits.putSync(name, now)
      return true
    })
  }
}
