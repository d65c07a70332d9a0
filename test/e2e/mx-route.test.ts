// The default route in MX mode, against a DNS responder on 127.0.0.1 instead of the real
// network: the best MX that answers gets the message on defaultRoute.port, a domain without MX
// takes its own address, a domain that takes no mail fails for good and is suppressed, and a
// failing name server only defers. Nothing here leaves the loopback range.

import t, { type Test } from 'tap'
import pino from 'pino'
import { Appliance } from '../../appliance/appliance.js'
import type { LedgerRow } from '../../appliance/ledger.js'
import { createSampleCity, type SampleCity } from '../../ops/sample-city.js'
import type { GatewaySimulator } from '../../ops/gateway-simulator.js'
import { startSimulators, testConfig, waitFor } from '../helpers.js'
import { startDnsResponder, type Zone } from '../dns-responder.js'
import { subscribe } from '../delivered-broadcast.js'

// Nothing listens on 127.0.0.2: the simulator is bound to 127.0.0.1 only, so a connection to the
// route's port there is refused at once, as a dead MX host's would be.
const ZONE: Zone = {
  // Listed worst first: the preference, not the order of the answer, decides.
  'mx-order.test': {
    MX: [{ preference: 20, exchange: 'mx2.mx-order.test' }, { preference: 10, exchange: 'mx1.mx-order.test' }]
  },
  'mx1.mx-order.test': { A: ['127.0.0.2'] },
  'mx2.mx-order.test': { A: ['127.0.0.1'] },
  'no-mx.test': { A: ['127.0.0.1'] },
  'empty.test': {},
  'null-mx.test': { MX: [{ preference: 0, exchange: '.' }] },
  'broken.test': {}
}

interface MxHarness { appliance: Appliance, city: SampleCity, gateway: GatewaySimulator, asked: string[] }

async function openMx (t: Test): Promise<MxHarness> {
  const dns = await startDnsResponder(t, ZONE, ['broken.test'])
  const simulators = await startSimulators(t)
  const gateway = simulators.default as GatewaySimulator
  const config = testConfig(t.testdir(), simulators, {
    delivery: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.1, maxAttempts: 2 },
    defaultRoute: {
      mode: 'mx', port: gateway.port, dnsServers: [dns.server], maxConnections: 4, connectTimeoutSeconds: 2
    }
  })
  const appliance = Appliance.open(config, { log: pino({ level: 'silent' }) })
  t.teardown(async () => { await appliance.close() })
  return { appliance, city: createSampleCity(appliance.directory), gateway, asked: dns.asked }
}

function rowOf (appliance: Appliance, broadcastId: number, subscriberId: number): LedgerRow | undefined {
  const range = appliance.store.ledger.getRange({ start: [broadcastId, 0], end: [broadcastId, Infinity] })
  for (const { value } of range) {
    if ((value as LedgerRow).s === subscriberId) return value as LedgerRow
  }
  return undefined
}

function isSuppressed (appliance: Appliance, subscriberId: number): boolean {
  const subscriber = appliance.directory.subscriber(subscriberId)
  return subscriber !== undefined && appliance.directory.isSuppressed(subscriber.index)
}

t.test('MX mode finds each domain\'s mail host through the configured DNS servers', async (t) => {
  const { appliance, city, gateway, asked } = await openMx(t)
  const addresses = ['mama@mx-order.test', 'papa@no-mx.test', 'ghost@nowhere.test',
    'void@empty.test', 'none@null-mx.test', 'wait@broken.test']
  const id = Object.fromEntries(addresses.map((a) => [a.split('@')[0], subscribe(appliance, city.cityId, a)]))
  const broadcast = appliance.submit({
    organisationId: city.cityId, subject: '連絡', body: '本文です。', priority: 'normal', targets: {}, createdBy: 'test'
  })
  const report = await appliance.finished(broadcast.id)
  t.equal(report.counts.accepted, 2)
  t.equal(report.counts.failed, 4)
  const row = (name: string): LedgerRow | undefined => rowOf(appliance, broadcast.id, id[name] as number)

  t.equal(gateway.acceptedCount('mama@mx-order.test'), 1, 'the second MX took the message on defaultRoute.port')
  t.match(row('mama'), { st: 'accepted', n: 1 }, 'in the same attempt: the refused first MX cost no retry')
  t.ok(asked.indexOf('A mx1.mx-order.test') < asked.indexOf('A mx2.mx-order.test'), 'the best preference first')
  t.equal(gateway.acceptedCount('papa@no-mx.test'), 1, 'a domain without MX is reached at its own address')
  t.ok(asked.includes('A no-mx.test'))

  t.match(row('ghost'), { st: 'failed', c: 550, m: /5\.1\.2/ }, 'a domain that does not exist: host unknown')
  t.match(row('void'), { st: 'failed', c: 550, m: /5\.1\.2/ }, 'no MX and no address: host unknown')
  t.match(row('none'), { st: 'failed', c: 556, m: /5\.1\.10/ }, 'a null MX takes no mail')
  t.match(row('wait'), { st: 'failed', n: 2, m: /^expired/ }, 'a failing name server defers until the last attempt')
  for (const name of ['ghost', 'void', 'none']) {
    t.ok(isSuppressed(appliance, id[name] as number), `${name} is suppressed`)
  }
  t.notOk(isSuppressed(appliance, id.wait as number), 'a DNS failure suppresses nobody')
})

t.test('connections to MX hosts are closed once the route has nothing to send', async (t) => {
  const { appliance, city, gateway } = await openMx(t)
  for (let n = 0; n < 30; n++) {
    subscribe(appliance, city.cityId, `parent${n}@${n % 2 === 0 ? 'mx-order.test' : 'no-mx.test'}`)
  }
  const broadcast = appliance.submit({
    organisationId: city.cityId, subject: '連絡', body: '本文です。', priority: 'normal', targets: {}, createdBy: 'test'
  })
  t.equal((await appliance.finished(broadcast.id)).counts.accepted, 30)
  t.ok(gateway.stats().connections > 0)
  // The worker says QUIT when its last task for the route ends; the gateway sees the close.
  await waitFor(() => gateway.stats().currentConnections === 0, 5000)
  t.equal(gateway.stats().currentConnections, 0, 'no connection left open to the MX hosts')
})
