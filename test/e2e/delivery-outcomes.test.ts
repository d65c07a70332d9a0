import t from 'tap'
import { startAppliance, waitFor } from '../helpers.js'
import { parseAddress } from '../../appliance/address.js'
import type { Appliance } from '../../appliance/appliance.js'
import type { LedgerRow } from '../../appliance/ledger.js'
import { seedSubscribers } from '../../ops/sample-city.js'
import { GatewaySimulator } from '../../ops/gateway-simulator.js'

function subscribe (appliance: Appliance, orgId: string, address: string): number {
  const { subscriber } = appliance.directory.upsertSubscriber({ address: parseAddress(address) })
  appliance.directory.addMembership(subscriber.id, orgId)
  return subscriber.id
}

function send (appliance: Appliance, orgId: string, extra: Partial<Parameters<Appliance['submit']>[0]> = {}): number {
  return appliance.submit({
    organisationId: orgId, subject: '連絡', body: '本文です。', priority: 'normal', targets: {}, createdBy: 'test', ...extra
  }).id
}

function rowOf (appliance: Appliance, broadcastId: number, subscriberId: number): LedgerRow | undefined {
  for (const { value } of appliance.store.ledger.getRange({ start: [broadcastId, 0], end: [broadcastId, Infinity] })) {
    if ((value as LedgerRow).s === subscriberId) return value as LedgerRow
  }
  return undefined
}

t.test('a 421 slows the route down and the message goes on a later attempt', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, {
    simulators: { docomo: { rules: [{ match: '^busy', code: 421, times: 1 }] } }
  })
  const id = subscribe(appliance, city.cityId, 'busy.parent@docomo.ne.jp')
  const broadcast = send(appliance, city.cityId)
  const report = await appliance.finished(broadcast)

  t.equal(report.counts.accepted, 1)
  t.equal(rowOf(appliance, broadcast, id)?.n, 2, 'accepted on the second attempt')
  const docomo = appliance.dispatcher.metrics().routes.find((r) => r.target.name === 'docomo')
  t.ok((docomo?.throttles ?? 0) >= 1, 'the route counted the slow-down')
  t.equal(simulators.docomo?.acceptedCount('busy.parent@docomo.ne.jp'), 1)
})

t.test('a 421 closing an idle session is retried at once on a new connection; the route keeps its pace', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, {
    simulators: { docomo: { rules: [{ match: '^idle', code: 421, message: '4.4.2 Timeout - closing connection', times: 1 }] } },
    // a gateway's 4xx would wait a minute before its retry
    config: { delivery: { retryBaseSeconds: 60, slowdownSeconds: 30 } }
  })
  const id = subscribe(appliance, city.cityId, 'idle.parent@docomo.ne.jp')
  const started = Date.now()
  const report = await appliance.finished(send(appliance, city.cityId, { priority: 'emergency' }))
  t.equal(report.counts.accepted, 1)
  t.equal(rowOf(appliance, report.id, id)?.n, 2, 'accepted on the second attempt')
  t.ok(Date.now() - started < 30_000, 'well before the minute a 4xx back-off would take')
  const docomo = appliance.dispatcher.metrics().routes.find((r) => r.target.name === 'docomo')
  t.equal(docomo?.throttles, 0, 'no slow-down counted')
  t.equal(simulators.docomo?.acceptedCount('idle.parent@docomo.ne.jp'), 1)
})

t.test('a 451 defers the recipient and retries it with back-off until accepted', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, {
    simulators: { au: { rules: [{ match: '^tempfail', code: 451, times: 2 }] } }
  })
  const id = subscribe(appliance, city.cityId, 'tempfail.mama@au.com')
  const broadcast = send(appliance, city.cityId)
  const report = await appliance.finished(broadcast)

  t.equal(report.counts.accepted, 1)
  t.equal(rowOf(appliance, broadcast, id)?.n, 3, 'two deferrals, then accepted')
  t.equal(simulators.au?.stats().deferred, 2)
})

t.test('a recipient deferred on every attempt fails as expired after the last attempt', async (t) => {
  const { appliance, city } = await startAppliance(t, { config: { delivery: { retryBaseSeconds: 0.01, retryMaxSeconds: 0.02, maxAttempts: 3 } } })
  const id = subscribe(appliance, city.cityId, 'tempfail.always@softbank.ne.jp')
  const broadcast = send(appliance, city.cityId)
  const report = await appliance.finished(broadcast)

  t.equal(report.counts.failed, 1)
  const row = rowOf(appliance, broadcast, id)
  t.equal(row?.n, 3)
  t.match(row?.m, /^expired/)
  const softbank = appliance.dispatcher.metrics().routes.find((r) => r.target.name === 'softbank')
  t.match(softbank, { deferred: 3, failed: 1 }, 'the route counts the give-up as failed, as the ledger does')
})

t.test('a 550 user unknown fails the recipient and suppresses the address for later broadcasts', async (t) => {
  const { appliance, city } = await startAppliance(t)
  const dead = subscribe(appliance, city.cityId, 'unknown.person@docomo.ne.jp')
  subscribe(appliance, city.cityId, 'alive.person@docomo.ne.jp')
  const first = await appliance.finished(send(appliance, city.cityId))
  t.equal(first.counts.failed, 1)
  t.equal(first.counts.accepted, 1)
  t.equal(rowOf(appliance, first.id, dead)?.c, 550)

  await appliance.store.root.committed
  const second = appliance.submit({
    organisationId: city.cityId, subject: '二通目', body: '本文', priority: 'normal', targets: {}, createdBy: 'test'
  })
  t.equal(second.total, 1, 'the dead address is left out')
  t.equal(second.excluded, 1)
})

t.test("a carrier's domain filter (550 5.7.1) fails the message but does not suppress the address", async (t) => {
  const { appliance, city } = await startAppliance(t)
  subscribe(appliance, city.cityId, 'blocked.filter@ezweb.ne.jp')
  const first = await appliance.finished(send(appliance, city.cityId))
  t.equal(first.counts.failed, 1)

  await appliance.store.root.committed
  const second = appliance.submit({
    organisationId: city.cityId, subject: '二通目', body: '本文', priority: 'normal', targets: {}, createdBy: 'test'
  })
  t.equal(second.total, 1, 'the filtered address is still a recipient')
})

t.test('a dropped connection neither loses nor duplicates a message', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, {
    simulators: { docomo: { dropAfterMessages: 7 }, au: { dropAfterMessages: 5 }, softbank: { dropAfterMessages: 9 } }
  })
  const ids = seedSubscribers(appliance.directory, city, 400)
  const report = await appliance.finished(send(appliance, city.cityId))

  t.equal(report.counts.accepted, ids.length, 'every recipient accepted')
  let dropped = 0
  let received = 0
  let duplicates = 0
  for (const sim of Object.values(simulators)) {
    const s = sim.stats()
    dropped += s.dropped
    received += s.distinctRecipients
    duplicates += s.duplicates
  }
  t.ok(dropped > 0, `connections were dropped (${dropped})`)
  t.equal(received, ids.length, 'each recipient reached the gateway')
  t.equal(duplicates, 0, 'no message was accepted twice')
})

t.test('an emergency broadcast overtakes a running bulk one', async (t) => {
  const batchSize = 10
  const tasksPerRoute = 2
  const { appliance, city, simulators } = await startAppliance(t, {
    simulators: { docomo: { delayMs: 3 }, au: { delayMs: 3 }, softbank: { delayMs: 3 }, default: { delayMs: 3 } },
    config: { delivery: { batchSize, tasksPerRoute, retryBaseSeconds: 0.05 } }
  })
  seedSubscribers(appliance.directory, city, 1200)
  const bulk = send(appliance, city.cityId, { priority: 'bulk', subject: '給食だより' })
  const total = (): number => Object.values(simulators).reduce((n, s) => n + s.stats().acceptedRecipients, 0)
  await waitFor(() => total() >= 200)

  const atSubmission = Object.fromEntries(Object.entries(simulators).map(([r, s]) => [r, s.received.length]))
  const emergency = appliance.submit({
    organisationId: city.schools[0] as string, subject: '【緊急】不審者情報', body: '至急ご確認ください。',
    priority: 'emergency', targets: {}, createdBy: 'test'
  })
  await appliance.finished(emergency.id)
  t.not(appliance.report(bulk).status, 'done', 'the bulk broadcast was still running when the emergency finished')

  // On each route, after the emergency was submitted, the bulk messages already in flight (at
  // most tasksPerRoute × batchSize) may reach the gateway before the emergency's last one, and so
  // may the bulk batches that start beside the emergency's last batch once its lane is empty
  // ((tasksPerRoute − 1) × batchSize). Without the lanes, every bulk message queued on the
  // route before the emergency would come first: hundreds here.
  const isEmergency = (raw: Buffer | undefined): boolean =>
    raw?.toString('latin1').includes(`Message-ID: <${emergency.id}.`) === true
  let emergencyReceived = 0
  for (const [route, sim] of Object.entries(simulators)) {
    const after = sim.received.slice(atSubmission[route])
    const lastEmergency = after.findLastIndex((m) => isEmergency(m.raw))
    if (lastEmergency < 0) continue
    const bulkBefore = after.slice(0, lastEmergency).filter((m) => !isEmergency(m.raw)).length
    const bound = (2 * tasksPerRoute - 1) * batchSize
    t.ok(bulkBefore <= bound,
      `${route}: ${bulkBefore} bulk messages went before the emergency's last (bound ${bound})`)
    emergencyReceived += after.filter((m) => isEmergency(m.raw)).length
  }
  t.equal(emergencyReceived, emergency.total, 'every emergency message arrived')
  await appliance.finished(bulk)
})

t.test('a gateway that refuses connections defers its recipients, who go once it is back', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t, {
    config: { delivery: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.1, maxAttempts: 100 } }
  })
  const down = simulators.docomo as GatewaySimulator
  const port = down.port
  await down.stop()
  for (let n = 0; n < 6; n++) subscribe(appliance, city.cityId, `parent${n}@docomo.ne.jp`)
  const broadcast = send(appliance, city.cityId)
  await waitFor(() => appliance.report(broadcast).counts.deferred > 0)

  // A refused connection once left a dead slot in the worker's pool: the route then hung.
  const back = new GatewaySimulator({ name: 'docomo', port })
  await back.start()
  t.teardown(async () => { await back.stop() })
  const report = await appliance.finished(broadcast)
  t.equal(report.counts.accepted, 6, 'every recipient accepted once the gateway is back')
  t.equal(back.stats().distinctRecipients, 6)
  t.equal(back.stats().duplicates, 0)
})
