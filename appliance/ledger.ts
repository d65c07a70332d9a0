// Runs in the appliance: the delivery ledger — one row per broadcast × recipient, keyed
// [broadcastId, seq]. It is the truth about every message; only the appliance writes it.

import type { Store } from './store/store.js'

export const LEDGER_STATES = [
  'queued', 'sending', 'deferred', 'accepted', 'failed', 'suppressed', 'cancelled'
] as const
export type LedgerState = typeof LEDGER_STATES[number]

/** Where a recipient's story ends; every row reaches exactly one of these. */
export const FINAL_STATES: ReadonlySet<LedgerState> =
  new Set(['accepted', 'failed', 'suppressed', 'cancelled'])

/** The states a row passes through on its way to a final one. */
export const OPEN_STATES: readonly LedgerState[] = LEDGER_STATES.filter((s) => !FINAL_STATES.has(s))

export interface LedgerRow {
  /** subscriber id */
  s: number
  st: LedgerState
  /** delivery attempts made */
  n: number
  /** when a deferred row may be tried again (ms since epoch) */
  t?: number
  /** last SMTP reply code, and a short reason */
  c?: number
  m?: string
  /** when the row reached its final state */
  at?: number
  /** a bounce that came back after the gateway accepted the message; the state stays */
  b?: { v: 'hard' | 'soft' | 'none', r: string, at: number }
}

/** The seq range of a broadcast's ledger that goes through one route. */
export interface RouteSlice { name: string, start: number, end: number }

export type StateCounts = Record<LedgerState, number>

export function emptyCounts (): StateCounts {
  return Object.fromEntries(LEDGER_STATES.map((s) => [s, 0])) as StateCounts
}

export interface LedgerCounts {
  total: number
  byState: StateCounts
  byRoute: Record<string, StateCounts>
}

/** Counts a broadcast's rows by state and route by reading its ledger range once. */
export function countLedger (store: Store, broadcastId: number, slices: RouteSlice[]): LedgerCounts {
  const counts: LedgerCounts = { total: 0, byState: emptyCounts(), byRoute: {} }
  for (const slice of slices) {
    const perRoute = emptyCounts()
    counts.byRoute[slice.name] = perRoute
    const range = store.ledger.getRange({
      start: [broadcastId, slice.start], end: [broadcastId, slice.end]
    })
    for (const { value } of range) {
      const state = (value as LedgerRow).st
      perRoute[state]++
      counts.byState[state]++
      counts.total++
    }
  }
  return counts
}

/** Moves one counted row from a state to another, overall and for its route. */
export function moveCount (counts: LedgerCounts, route: string, from: LedgerState, to: LedgerState): void {
  counts.byState[from]--
  counts.byState[to]++
  const perRoute = counts.byRoute[route]
  if (perRoute !== undefined) {
    perRoute[from]--
    perRoute[to]++
  }
}

export function isComplete (counts: LedgerCounts): boolean {
  let final = 0
  for (const state of FINAL_STATES) final += counts.byState[state]
  return final === counts.total
}
