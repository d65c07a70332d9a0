// Runs in the appliance: the dispatcher. It reads each running broadcast's ledger route by route
// in small chunks, hands batches to the delivery workers in priority order (emergency, normal,
// bulk) within each route's pace, and writes every outcome back to the ledger — the only writer.
//
// A row is marked `sending` and that mark committed before its batch leaves for a worker, so a
// crash can only repeat the messages in flight at that moment: on start, `sending` rows go again.

import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import type { Piscina } from 'piscina'
import type { Store } from './store/store.js'
import type { Directory, Subscriber } from './directory.js'
import type { Broadcast, BroadcastBook, Priority } from './broadcasts.js'
import type { RouteTable } from './route-table.js'
import type { Config } from './config.js'
import {
  type LedgerCounts, type LedgerRow, type LedgerState, type StateCounts,
  countLedger, emptyCounts, moveCount, isComplete, FINAL_STATES, OPEN_STATES
} from './ledger.js'
import { RetryHeap } from './retry-heap.js'
import { RoutePace } from './route-pace.js'
import { applyBouncePolicy, refusalFacts } from './bounce-policy.js'
import type { Outcome } from '../workers/smtp-outcome.js'
import type { SendTask } from '../workers/send-worker.js'
import type { BroadcastContent } from '../workers/message-template.js'

const CHUNK = 500
const QUICK_RETRY_MS = 1000
const LANES: Priority[] = ['emergency', 'normal', 'bulk']

interface Pending { seq: number, row: LedgerRow }

/** What /metrics reads: counters and sums kept as rows move, so a scrape reads no ledger. */
export interface DispatcherMetrics {
  routes: RoutePace[]
  /** recipients waiting or in flight, per lane, in the broadcasts sending or paused here */
  lanes: Record<Priority, number>
  /** recipients of those broadcasts in each state that is not final */
  open: Partial<StateCounts>
  /** recipients that reached each final state since this process started */
  finals: Partial<StateCounts>
}

interface RouteCursor { next: number, end: number, buffer: Pending[], retries: RetryHeap }

interface Running {
  broadcast: Broadcast
  content: BroadcastContent
  counts: LedgerCounts
  cursors: Map<string, RouteCursor>
  inFlight: Set<number>
  paused: boolean
  cancelled: boolean
  firstAcceptedAt?: number
  lastAcceptedAt?: number
  startedAt: number
}

export interface DispatcherOptions {
  store: Store
  directory: Directory
  book: BroadcastBook
  routes: RouteTable
  pool: Piscina
  config: Config
  log: Logger
  contentFor: (broadcast: Broadcast) => BroadcastContent
}

export class Dispatcher extends EventEmitter {
  readonly #o: DispatcherOptions
  readonly #running = new Map<number, Running>()
  readonly #paces = new Map<string, RoutePace>()
  readonly #tasks = new Set<Promise<void>>()
  readonly #finals = emptyCounts()
  #timer: NodeJS.Timeout | undefined
  #timerAt = Infinity
  #stopped = false

  constructor (options: DispatcherOptions) {
    super()
    this.#o = options
    const { delivery } = options.config
    for (const target of options.routes.targets) {
      const maxTasks = Math.min(delivery.tasksPerRoute, target.maxConnections)
      this.#paces.set(target.name, new RoutePace(target, maxTasks, delivery.slowdownSeconds * 1000))
    }
  }

  /** Takes up every broadcast left sending or paused, as after a crash or restart. */
  resumeUnfinished (): number {
    const unfinished = this.#o.book.unfinished()
    for (const broadcast of unfinished) this.add(broadcast)
    return unfinished.length
  }

  /** Starts sending a submitted broadcast. */
  add (broadcast: Broadcast): void {
    const counts = countLedger(this.#o.store, broadcast.id, broadcast.routes)
    const cursors = new Map<string, RouteCursor>()
    for (const slice of broadcast.routes) {
      this.ensureRoute(slice.name, broadcast.id)
      cursors.set(slice.name, { next: slice.start, end: slice.end, buffer: [], retries: new RetryHeap() })
    }
    const running: Running = {
      broadcast,
      content: this.#o.contentFor(broadcast),
      counts,
      cursors,
      inFlight: new Set(),
      paused: broadcast.status === 'paused',
      cancelled: false,
      startedAt: Date.now()
    }
    if (broadcast.firstAcceptedAt !== undefined) running.firstAcceptedAt = Date.parse(broadcast.firstAcceptedAt)
    this.#running.set(broadcast.id, running)
    if (broadcast.cancelRequested === true) this.cancel(broadcast.id)
    else if (!this.finishIfComplete(running)) this.pump()
  }

  // A broadcast frozen before its route was renamed or removed from the configuration goes on
  // through the default route, under the old name, rather than waiting for ever.
  private ensureRoute (name: string, broadcastId: number): void {
    if (this.#paces.has(name)) return
    const fallback = this.#o.routes.defaultTarget
    this.#o.log.warn({ broadcast: broadcastId, route: name, via: fallback.name },
      'route no longer configured; its recipients go through the default route')
    const { delivery } = this.#o.config
    const target = { ...fallback, name }
    this.#paces.set(name, new RoutePace(target, Math.min(delivery.tasksPerRoute, target.maxConnections),
      delivery.slowdownSeconds * 1000))
  }

  pause (id: number): void {
    const running = this.#running.get(id)
    if (running === undefined) return
    running.paused = true
  }

  resume (id: number): void {
    const running = this.#running.get(id)
    if (running === undefined) return
    running.paused = false
    this.pump()
  }

  /** Cancels every recipient not yet sent; messages in flight end as the gateway answers. */
  cancel (id: number): void {
    const running = this.#running.get(id)
    if (running === undefined) return
    running.cancelled = true
    running.paused = true
    for (const [route, cursor] of running.cursors) this.cancelRoute(running, route, cursor)
    this.finishIfComplete(running)
  }

  /** Live counts of a running broadcast, or undefined when it is not running here. */
  live (id: number): { counts: LedgerCounts, firstAcceptedAt?: number, lastAcceptedAt?: number } | undefined {
    const running = this.#running.get(id)
    if (running === undefined) return undefined
    const out: { counts: LedgerCounts, firstAcceptedAt?: number, lastAcceptedAt?: number } = { counts: running.counts }
    if (running.firstAcceptedAt !== undefined) out.firstAcceptedAt = running.firstAcceptedAt
    if (running.lastAcceptedAt !== undefined) out.lastAcceptedAt = running.lastAcceptedAt
    return out
  }

  /** Per-route counters, queue depth per lane and ledger states, for /metrics. */
  metrics (): DispatcherMetrics {
    const lanes: Record<Priority, number> = { emergency: 0, normal: 0, bulk: 0 }
    const open: Partial<StateCounts> = Object.fromEntries(OPEN_STATES.map((s) => [s, 0]))
    for (const running of this.#running.values()) {
      for (const state of OPEN_STATES) {
        const n = running.counts.byState[state]
        lanes[running.broadcast.priority] += n
        open[state] = (open[state] ?? 0) + n
      }
    }
    const finals: Partial<StateCounts> = {}
    for (const state of FINAL_STATES) finals[state] = this.#finals[state]
    return { routes: [...this.#paces.values()], lanes, open, finals }
  }

  get runningCount (): number {
    return this.#running.size
  }

  /** Starts nothing new and lets the batches in flight finish (within graceMs), so that a
   * normal stop sends nothing twice. */
  async stop (graceMs = 15_000): Promise<void> {
    this.#stopped = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs) })
    await Promise.race([Promise.allSettled([...this.#tasks]), grace])
    clearTimeout(timer)
    await this.#o.store.root.committed
  }

  // ---- the loop ------------------------------------------------------------------------

  /** Starts every batch the routes' paces allow now, and sets a timer for the next. */
  pump (): void {
    if (this.#stopped) return
    const now = Date.now()
    let wait = Infinity

    for (const pace of this.#paces.values()) {
      while (pace.tasks < pace.maxTasks) {
        const next = this.nextWork(pace.target.name, now)
        if (next === undefined) break
        if (next.waitUntil !== undefined) {
          wait = Math.min(wait, next.waitUntil - now)
          break
        }
        const n = pace.take(this.#o.config.delivery.batchSize, now)
        if (n === 0) {
          wait = Math.min(wait, Math.max(1, pace.waitMs(now)))
          break
        }
        const batch = this.takeBatch(next.running, pace.target.name, n, now)
        if (batch.length > 0) this.track(this.dispatch(next.running, pace, batch))
      }
    }

    if (wait !== Infinity) this.wakeIn(wait)
  }

  private track (task: Promise<void>): void {
    this.#tasks.add(task)
    void task.finally(() => this.#tasks.delete(task))
  }

  private wakeIn (ms: number): void {
    const at = Date.now() + ms
    if (this.#timer !== undefined && this.#timerAt <= at) return
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timerAt = at
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#timerAt = Infinity
      this.pump()
    }, Math.max(1, ms))
  }

  // The first broadcast, in lane order and then age, with work ready for this route; or the
  // earliest time a deferred recipient of one becomes ready.
  private nextWork (route: string, now: number): { running: Running, waitUntil?: number } | undefined {
    let earliest: { running: Running, waitUntil: number } | undefined
    for (const lane of LANES) {
      for (const running of this.#running.values()) {
        if (running.broadcast.priority !== lane || running.paused) continue
        const cursor = running.cursors.get(route)
        if (cursor === undefined) continue
        this.fill(running, cursor)
        const due = cursor.retries.peek()
        if (cursor.buffer.length > 0 || (due !== undefined && due.at <= now)) return { running }
        if (due !== undefined && (earliest === undefined || due.at < earliest.waitUntil)) {
          earliest = { running, waitUntil: due.at }
        }
      }
    }
    return earliest
  }

  /** Reads the next chunk of a route's slice when its buffer runs dry. */
  private fill (running: Running, cursor: RouteCursor): void {
    if (cursor.buffer.length > 0 || cursor.next >= cursor.end) return
    const id = running.broadcast.id
    const range = this.#o.store.ledger.getRange({
      start: [id, cursor.next], end: [id, cursor.end], limit: CHUNK
    })
    let seen = 0
    for (const { key, value } of range) {
      seen++
      const seq = (key as [number, number])[1]
      const row = value as LedgerRow
      cursor.next = seq + 1
      if (FINAL_STATES.has(row.st)) continue
      if (row.st === 'deferred') cursor.retries.push({ at: row.t ?? 0, seq })
      else cursor.buffer.push({ seq, row })
    }
    if (seen === 0) {
      cursor.next = cursor.end
    }
  }

  private takeBatch (running: Running, route: string, n: number, now: number): Pending[] {
    const cursor = running.cursors.get(route) as RouteCursor
    const batch: Pending[] = []
    while (batch.length < n) {
      const due = cursor.retries.peek()
      if (due === undefined || due.at > now) break
      cursor.retries.pop()
      const row = this.#o.store.ledger.get([running.broadcast.id, due.seq]) as LedgerRow | undefined
      if (row !== undefined && row.st === 'deferred') batch.push({ seq: due.seq, row })
    }
    while (batch.length < n) {
      if (cursor.buffer.length === 0) this.fill(running, cursor)
      const next = cursor.buffer.shift()
      if (next === undefined) break
      batch.push(next)
    }
    return batch
  }

  // ---- one batch -----------------------------------------------------------------------

  private async dispatch (running: Running, pace: RoutePace, batch: Pending[]): Promise<void> {
    const id = running.broadcast.id
    const route = pace.target.name
    const recipients: SendTask['recipients'] = []
    const rows = new Map<number, LedgerRow>()
    let last: Promise<boolean> | undefined

    for (const { seq, row } of batch) {
      const subscriber = this.#o.directory.subscriber(row.s)
      const reason = subscriber === undefined ? 'gone' : this.stopReason(running, subscriber)
      if (reason !== undefined || subscriber === undefined) {
        this.write(running, route, seq, row, { st: 'suppressed', m: reason ?? 'gone', at: Date.now() })
        continue
      }
      const sending: LedgerRow = { ...row, st: 'sending', n: row.n + 1 }
      delete sending.t
      last = this.write(running, route, seq, row, sending)
      rows.set(seq, sending)
      running.inFlight.add(seq)
      recipients.push({ seq, sealed: subscriber.sealed })
    }
    if (recipients.length === 0) {
      this.finishIfComplete(running)
      return
    }

    pace.tasks++
    try {
      await last
      const task: SendTask = { route: pace.target, broadcastId: id, content: running.content, recipients }
      const outcomes = await this.#o.pool.run(task) as Outcome[]
      this.record(running, pace, rows, outcomes)
    } catch (err) {
      this.#o.log.error({ err, broadcast: id, route }, 'delivery task failed')
      const outcomes: Outcome[] = recipients.map((r) => ({
        seq: r.seq, kind: 'deferred', category: 'connection', message: 'delivery task failed'
      }))
      this.record(running, pace, rows, outcomes)
    } finally {
      pace.tasks--
      this.pump()
    }
  }

  // An opt-out takes effect at once, also for a broadcast already running.
  private stopReason (running: Running, subscriber: Subscriber): string | undefined {
    if (subscriber.status !== 'active') return 'unsubscribed'
    if (subscriber.left?.includes(running.broadcast.organisationId) === true) return 'unsubscribed'
    if (this.#o.directory.isSuppressed(subscriber.index)) return 'suppressed'
    return undefined
  }

  private record (running: Running, pace: RoutePace, rows: Map<number, LedgerRow>, outcomes: Outcome[]): void {
    const now = Date.now()
    const route = pace.target.name
    const firstBefore = running.firstAcceptedAt
    for (const outcome of outcomes) {
      const row = rows.get(outcome.seq)
      if (row === undefined) continue
      running.inFlight.delete(outcome.seq)
      this.apply(running, pace, route, outcome, row, now)
    }
    // one write per batch, however its outcomes are ordered
    const first = running.firstAcceptedAt
    if (first !== firstBefore && first !== undefined) {
      this.#o.book.update(running.broadcast.id, { firstAcceptedAt: new Date(first).toISOString() })
    }
    this.finishIfComplete(running)
  }

  private apply (
    running: Running, pace: RoutePace, route: string, outcome: Outcome, row: LedgerRow, now: number
  ): void {
    const seq = outcome.seq
    const detail: Partial<LedgerRow> = {}
    if (outcome.code !== undefined) detail.c = outcome.code
    if (outcome.message !== undefined) detail.m = outcome.message

    if (outcome.kind === 'accepted') {
      // the gateway's time, not the batch's: the first of a batch was accepted well before its last
      const at = Math.min(outcome.at ?? now, now)
      pace.sent++
      running.firstAcceptedAt = Math.min(running.firstAcceptedAt ?? at, at)
      running.lastAcceptedAt = Math.max(running.lastAcceptedAt ?? 0, at)
      this.write(running, route, seq, row, { ...detail, st: 'accepted', at })
      return
    }
    if (outcome.kind === 'rejected') {
      pace.failed++
      this.write(running, route, seq, row, { ...detail, st: 'failed', at: now })
      this.applyRefusal(running, pace, seq, row.s, outcome, now)
      return
    }

    pace.deferred++
    if (outcome.category === 'throttled') pace.throttle(now)
    const final = this.defer(running, route, seq, row, detail, now, outcome.category === 'connection')
    // given up after its last attempt: failed for good, like a 5xx
    if (final === 'failed') pace.failed++
  }

  // A lost connection says nothing about the recipient: its first retry comes at once, on a
  // new connection, rather than after the back-off a gateway's 4xx earns.
  private defer (
    running: Running, route: string, seq: number, row: LedgerRow, detail: Partial<LedgerRow>, now: number,
    connectionLost = false
  ): LedgerState {
    const { delivery } = this.#o.config
    if (running.cancelled) {
      this.write(running, route, seq, row, { ...detail, st: 'cancelled', at: now })
      return 'cancelled'
    }
    if (row.n >= delivery.maxAttempts) {
      this.write(running, route, seq, row, { ...detail, st: 'failed', m: `expired: ${detail.m ?? ''}`, at: now })
      return 'failed'
    }
    const backOff = Math.min(delivery.retryMaxSeconds, delivery.retryBaseSeconds * 2 ** (row.n - 1)) * 1000
    const delay = connectionLost && row.n <= 1 ? Math.min(backOff, QUICK_RETRY_MS) : backOff
    const at = now + Math.round(delay * (0.9 + Math.random() * 0.2))
    this.write(running, route, seq, row, { ...detail, st: 'deferred', t: at })
    running.cursors.get(route)?.retries.push({ at, seq })
    return 'deferred'
  }

  // A 5xx speaks about the address: the bounce policy decides (suppress, flag, count).
  private applyRefusal (
    running: Running, pace: RoutePace, seq: number, subscriberId: number, outcome: Outcome, now: number
  ): void {
    const facts = refusalFacts(outcome, pace.target.mode === 'gateway')
    const subscriber = this.#o.directory.subscriber(subscriberId)
    if (facts === undefined || subscriber === undefined) return
    const id = running.broadcast.id
    applyBouncePolicy({ store: this.#o.store, directory: this.#o.directory }, subscriber, {
      ...facts, source: 'smtp', eventId: `smtp:${id}:${seq}`, at: now, broadcastId: id, seq
    })
  }

  /** Writes a row's new state (batched by LMDB into the next commit) and moves the counts. */
  private write (
    running: Running, route: string, seq: number, row: LedgerRow, change: Partial<LedgerRow>
  ): Promise<boolean> {
    const next: LedgerRow = { ...row, ...change }
    moveCount(running.counts, route, row.st, next.st as LedgerState)
    if (FINAL_STATES.has(next.st) && !FINAL_STATES.has(row.st)) this.#finals[next.st]++
    row.st = next.st
    return this.#o.store.ledger.put([running.broadcast.id, seq], next)
  }

  private cancelRoute (running: Running, route: string, cursor: RouteCursor): void {
    const now = Date.now()
    for (const { seq, row } of cursor.buffer.splice(0)) {
      this.write(running, route, seq, row, { st: 'cancelled', at: now })
    }
    for (const { seq } of cursor.retries.drain()) {
      const row = this.#o.store.ledger.get([running.broadcast.id, seq]) as LedgerRow | undefined
      if (row?.st === 'deferred') this.write(running, route, seq, row, { st: 'cancelled', at: now })
    }
    const id = running.broadcast.id
    for (const { key, value } of this.#o.store.ledger.getRange({ start: [id, cursor.next], end: [id, cursor.end] })) {
      const row = value as LedgerRow
      if (!FINAL_STATES.has(row.st)) this.write(running, route, (key as [number, number])[1], row, { st: 'cancelled', at: now })
    }
    cursor.next = cursor.end
  }

  private finishIfComplete (running: Running): boolean {
    if (!isComplete(running.counts) || running.inFlight.size > 0) return false
    const id = running.broadcast.id
    this.#running.delete(id)
    const change: Partial<Broadcast> = {
      status: running.cancelled ? 'cancelled' : 'done',
      completedAt: new Date().toISOString(),
      finalCounts: running.counts
    }
    if (running.firstAcceptedAt !== undefined) change.firstAcceptedAt = new Date(running.firstAcceptedAt).toISOString()
    if (running.lastAcceptedAt !== undefined) change.lastAcceptedAt = new Date(running.lastAcceptedAt).toISOString()
    const broadcast = this.#o.book.update(id, change)
    const c = running.counts.byState
    this.#o.log.info({
      broadcast: id,
      status: broadcast.status,
      priority: broadcast.priority,
      total: running.counts.total,
      accepted: c.accepted,
      failed: c.failed,
      suppressed: c.suppressed,
      cancelled: c.cancelled,
      seconds: (Date.now() - running.startedAt) / 1000
    }, 'broadcast finished')
    this.emit('finished', broadcast, running.counts)
    return true
  }
}
