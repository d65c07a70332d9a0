// Carriers decide the pace: a route slows down when its gateway says so, retries a deferred
// recipient later each time, keeps to its recipients per session and its message rate. Each bound
// is one that slowness on a busy machine can only make easier to meet, never harder.

import t, { type Test } from 'tap'
import pino from 'pino'
import { Appliance } from '../../appliance/appliance.js'
import type { Config, RouteConfig } from '../../appliance/config.js'
import type { LedgerRow } from '../../appliance/ledger.js'
import { createSampleCity, seedSubscribers, type SampleCity } from '../../ops/sample-city.js'
import type { GatewaySimulator, GatewaySimulatorOptions } from '../../ops/gateway-simulator.js'
import { startSimulators, testConfig } from '../helpers.js'
import { subscribe } from '../delivered-broadcast.js'

interface Setup {
  simulators?: Record<string, GatewaySimulatorOptions>
  delivery?: Record<string, unknown>
  docomo?: Partial<RouteConfig>
}

async function open (t: Test, setup: Setup = {}): Promise<{
  appliance: Appliance, city: SampleCity, simulators: Record<string, GatewaySimulator>, config: Config
}> {
  const simulators = await startSimulators(t, setup.simulators)
  const config = testConfig(t.testdir(), simulators, {
    delivery: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.2, slowdownSeconds: 0.2, ...setup.delivery }
  })
  config.routes = config.routes.map((r) => r.name === 'docomo' ? { ...r, ...setup.docomo } : r)
  const appliance = Appliance.open(config, { log: pino({ level: 'silent' }) })
  t.teardown(async () => { await appliance.close() })
  return { appliance, city: createSampleCity(appliance.directory), simulators, config }
}

function send (appliance: Appliance, organisationId: string): number {
  return appliance.submit({
    organisationId, subject: '連絡', body: '本文です。', priority: 'normal', targets: {}, createdBy: 'test'
  }).id
}

function rate (appliance: Appliance, route: string): number | undefined {
  return appliance.dispatcher.metrics().routes.find((r) => r.target.name === route)?.rate()
}

t.test('a 421 and a 4.7.x reply halve the route\'s rate; a 451 4.3.0 does not', async (t) => {
  const { appliance, city, config } = await open(t, {
    simulators: {
      docomo: { rules: [{ match: '^busy', code: 421, times: 1 }] },
      au: { rules: [{ match: '^slow', code: 450, message: '4.7.1 Too many messages, slow down', times: 1 }] },
      softbank: { rules: [{ match: '^tempfail', code: 451, times: 1 }] }
    }
  })
  for (const a of ['busy.mama@docomo.ne.jp', 'slow.papa@au.com', 'tempfail.oba@softbank.ne.jp']) {
    subscribe(appliance, city.cityId, a)
  }
  const full = config.routes[0]?.messagesPerSecond ?? 0
  t.equal(rate(appliance, 'docomo'), full, 'routes start at their full rate')

  const report = await appliance.finished(send(appliance, city.cityId))
  t.equal(report.counts.accepted, 3, 'each recipient went on its second attempt')
  // The rate climbs back only after 10 s without a slow-down; this broadcast takes well under.
  t.equal(rate(appliance, 'docomo'), full / 2, 'a 421 halved the docomo rate')
  t.equal(rate(appliance, 'au'), full / 2, 'a 450 4.7.1 halved the au rate')
  t.equal(rate(appliance, 'softbank'), full, 'a 451 4.3.0 left the softbank rate alone')
  const routes = appliance.dispatcher.metrics().routes
  const throttles = Object.fromEntries(routes.map((r) => [r.target.name, r.throttles]))
  t.same(throttles, { docomo: 1, au: 1, softbank: 0, default: 0 })
})

t.test('a 451 is retried with a back-off that grows at every attempt', async (t) => {
  const base = 0.5
  const { appliance, city } = await open(t, {
    simulators: { softbank: { rules: [{ match: '^tempfail', code: 451, times: 3 }] } },
    delivery: { retryBaseSeconds: base, retryMaxSeconds: 60 }
  })
  subscribe(appliance, city.cityId, 'tempfail.mama@softbank.ne.jp')
  const id = send(appliance, city.cityId)

  // Each deferral waits at least 0.9 × base × 2^(n-1) s: polling every 10 ms sees every one.
  const seen = new Map<number, number>()
  let row: LedgerRow | undefined
  while (row?.st !== 'accepted') {
    row = appliance.store.ledger.get([id, 0]) as LedgerRow | undefined
    if (row?.st === 'deferred' && row.t !== undefined) seen.set(row.n, row.t)
    if (row?.st === 'failed') break
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.equal(row?.st, 'accepted')
  t.equal(row?.n, 4, 'three deferrals, accepted on the fourth attempt')
  t.same([...seen.keys()], [1, 2, 3], 'the row was deferred after attempts 1, 2 and 3')

  // The attempt after a deferral starts no earlier than its next-try time, and the new next-try
  // time is that start plus the new delay: successive next-try times are at least the new delay
  // (less 10 % jitter) apart. A slow machine only widens the gaps.
  const times = [...seen.values()]
  for (let n = 1; n < times.length; n++) {
    const gap = ((times[n] as number) - (times[n - 1] as number)) / 1000
    const least = 0.9 * base * 2 ** n
    t.ok(gap >= least,
      `next-try ${n + 1} is ${gap.toFixed(3)} s after next-try ${n} (at least ${least.toFixed(2)} s)`)
  }
})

t.test('a route never puts more recipients on one SMTP session than recipientsPerSession', async (t) => {
  const { appliance, city, simulators } = await open(t, { docomo: { recipientsPerSession: 3 } })
  seedSubscribers(appliance.directory, city, 40, { domains: ['docomo.ne.jp'] })
  const report = await appliance.finished(send(appliance, city.cityId))
  t.equal(report.counts.accepted, 40)

  const stats = simulators.docomo?.stats()
  t.ok((stats?.maxRecipientsPerConnection ?? 0) > 0, 'the gateway counted recipients per session')
  t.ok((stats?.maxRecipientsPerConnection ?? Infinity) <= 3,
    `at most 3 recipients on any one session (${String(stats?.maxRecipientsPerConnection)})`)
  t.ok((stats?.connections ?? 0) >= Math.ceil(40 / 3),
    `a new session every 3 recipients (${String(stats?.connections)})`)
})

t.test('messagesPerSecond bounds what the gateway receives over any stretch from the start', async (t) => {
  const perSecond = 50
  const count = 100
  const { appliance, city, simulators } = await open(t, { docomo: { messagesPerSecond: perSecond } })
  seedSubscribers(appliance.directory, city, count, { domains: ['docomo.ne.jp'] })

  const submittedAt = Date.now()
  const report = await appliance.finished(send(appliance, city.cityId))
  t.equal(report.counts.accepted, count)

  // The route's bucket holds at most a quarter second of messages when the broadcast starts and
  // gains perSecond tokens a second after; a message reaches the gateway only after its token was
  // taken. So by any moment, at most perSecond × elapsed + capacity messages can have arrived —
  // whatever the machine's speed. Without the bucket, 100 messages arrive in a fraction of this.
  const capacity = perSecond / 4
  const arrivals = (simulators.docomo?.received ?? []).map((m) => m.at)
  t.equal(arrivals.length, count)
  const over = arrivals.filter((at, i) => i + 1 > perSecond * (at - submittedAt) / 1000 + capacity)
  t.same(over, [], `no arrival ran ahead of ${perSecond}/s plus a burst of ${capacity}`)
  const elapsed = ((arrivals.at(-1) ?? submittedAt) - submittedAt) / 1000
  t.ok(elapsed >= (count - capacity) / perSecond, `${count} messages took ${elapsed.toFixed(2)} s`)
})
