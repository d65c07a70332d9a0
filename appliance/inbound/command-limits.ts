// Runs in the appliance: the counters that keep the command address from being abused. They are
// kept apart so that a forged From never uses up what the real sender is allowed:
//   - the sender's allowance: commands and wrong codes an authenticated sender may send an hour;
//   - refusals: mails that failed authentication, per From and for all addresses together,
//     answered and audited one by one only up to a cap, so a flood is bounded;
//   - PIN tries: wrong PINs per From an hour, so a PIN cannot be guessed by brute force;
//   - notices: a refusal goes to an address at most once an hour, so a forged From cannot turn
//     the appliance into a backscatter source and two auto-responders cannot loop through it.
//
// Why not rate-limiter-flexible: its in-memory limiter forgets every count on a restart (a crash
// loop or a deploy would reset a brute-force attempt), and its persistent stores are Redis,
// Mongo, SQL and the like, none of which this appliance runs. A custom store for it would be
// more code than these fixed one-hour windows kept in the LMDB environment we already have,
// written in the same synchronous transactions as the rest of the command's state.

import type { Store } from '../store/store.js'

const HOUR = 3_600_000

interface Window { start: number, count: number }

/** The caps on refused (unauthenticated) mail, per hour. */
export interface RefusalLimits {
  /** refused mails from one From that are answered and audited; later ones are dropped */
  perSender: number
  /** the same for all addresses together: what a flood from many forged Froms can cost */
  overall: number
  /** wrong PINs one address may try; after that its PIN lines are not checked */
  pinTries: number
}

// Known shortcoming: these are constants because appliance/config.ts has no keys for them yet;
// the proper fix is `commands.refusals.*` settings with these values as defaults.
export const REFUSAL_LIMITS: Readonly<RefusalLimits> = { perSender: 20, overall: 200, pinTries: 5 }

/** Which cap a refused mail went over. */
export type RefusalCap = 'sender' | 'overall'

const EVERYONE = '*'

export class CommandLimits {
  constructor (readonly store: Store, readonly now: () => number = Date.now) {}

  /** How many hits the key has in its current hour (the sender's allowance). */
  used (key: string): number {
    return this.read(`rate:${key}`)
  }

  /** Whether the key has used up its allowance for this hour. */
  exhausted (key: string, perHour: number): boolean {
    return this.used(key) >= perHour
  }

  /** Counts one more command (or wrong code) of an authenticated sender. */
  hit (key: string): void {
    this.count(`rate:${key}`)
  }

  /**
   * Counts a mail that failed authentication, apart from the sender's allowance, and says which
   * cap it is over, if any. A mail over its sender's cap is not counted for everyone, so that
   * one forged From alone cannot silence the refusals of all the others.
   */
  refusal (key: string, limits: RefusalLimits): RefusalCap | undefined {
    return this.store.root.transactionSync(() => {
      if (this.count(`refused:${key}`) > limits.perSender) return 'sender'
      if (this.count(`refused:${EVERYONE}`) > limits.overall) return 'overall'
      return undefined
    })
  }

  /** Whether the address has tried its wrong PINs for this hour. */
  pinLocked (key: string, limits: RefusalLimits): boolean {
    return this.read(`pin:${key}`) >= limits.pinTries
  }

  wrongPin (key: string): void {
    this.count(`pin:${key}`)
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

  /** The key for the cap a refused mail went over, for mayReply. */
  static capKey (key: string, cap: RefusalCap): string {
    return cap === 'sender' ? key : EVERYONE
  }

  private read (name: string): number {
    const window = this.store.commandLimits.get(name) as Window | undefined
    if (window === undefined || this.now() - window.start >= HOUR) return 0
    return window.count
  }

  /** One more in the named window; the new count. */
  private count (name: string): number {
    return this.store.root.transactionSync(() => {
      const now = this.now()
      const current = this.store.commandLimits.get(name) as Window | undefined
      const next: Window = current === undefined || now - current.start >= HOUR
        ? { start: now, count: 1 }
        : { start: current.start, count: current.count + 1 }
      this.store.commandLimits.putSync(name, next)
      return next.count
    })
  }
}
