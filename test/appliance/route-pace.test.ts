// The pace of one route on a clock the test drives: messages are counted against the rate, so
// nothing here depends on how fast the machine runs.

import t from 'tap'
import { RoutePace } from '../../appliance/route-pace.js'
import type { RouteTarget } from '../../appliance/route-table.js'

const RATE = 100
const SLOWDOWN_MS = 1000

function pace (): { pace: RoutePace, start: number } {
  const target: RouteTarget = {
    name: 'docomo', mode: 'gateway', host: '127.0.0.1', port: 25, maxConnections: 4,
    messagesPerSecond: RATE, recipientsPerSession: 100, connectTimeoutSeconds: 5
  }
  // The bucket starts full when made: read the clock after, so the first step refills nothing.
  const made = new RoutePace(target, 4, SLOWDOWN_MS)
  return { pace: made, start: Date.now() }
}

/** Messages the pace lets start from `from` for `ms`, asking greedily every 10 ms. */
function taken (p: RoutePace, from: number, ms: number): number {
  let n = 0
  for (let at = from; at < from + ms; at += 10) n += p.take(1000, at)
  return n
}

t.test('the bucket lets a quarter second of messages go at once, then the rate', async (t) => {
  const { pace: p, start } = pace()
  t.equal(p.take(1000, start), RATE / 4, 'the burst is a quarter second of the rate')
  const second = taken(p, start + 10, 1000)
  t.ok(second >= RATE - 1 && second <= RATE, `${second} in the next second at ${RATE}/s`)
})

t.test('a slow-down holds the route for the period, then sends at half the rate', async (t) => {
  const { pace: p, start } = pace()
  taken(p, start, 1000)
  p.throttle(start + 1000)
  t.equal(p.rate(), RATE / 2)
  t.ok(p.isSlowed())
  t.equal(p.throttles, 1)
  t.equal(taken(p, start + 1000, SLOWDOWN_MS), 0, 'nothing starts during the slow-down period')
  t.ok(p.waitMs(start + 1500) >= 499, 'the dispatcher is told to wait for the end of the period')
  const after = taken(p, start + 1000 + SLOWDOWN_MS, 1000)
  t.ok(after <= RATE / 2 + RATE / 8, `${after} in the second after the period: half the rate, plus one burst`)
})

t.test('a second slow-down within the period counts but does not halve again', async (t) => {
  const { pace: p, start } = pace()
  p.throttle(start + 10)
  p.throttle(start + 500)
  t.equal(p.throttles, 2)
  t.equal(p.rate(), RATE / 2)
  p.throttle(start + 10 + SLOWDOWN_MS + 1)
  t.equal(p.rate(), RATE / 4, 'a slow-down after the period halves again')
})

t.test('the rate never falls below 5 % and climbs back after 10 s without a slow-down', async (t) => {
  const { pace: p, start } = pace()
  let at = start
  for (let i = 0; i < 10; i++) p.throttle(at += SLOWDOWN_MS + 1)
  t.equal(p.rate(), RATE * 0.05, 'floored at 5 % of messagesPerSecond')
  p.take(1, at + 10_001)
  t.equal(Math.round(p.rate() * 1000) / 1000, RATE * 0.075, 'up by half after 10 s')
})
