import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { startSimulators, testConfig, waitFor } from '../helpers.js'
import { Appliance } from '../../appliance/appliance.js'
import { createSampleCity, seedSubscribers } from '../../ops/sample-city.js'
import type { GatewaySimulator } from '../../ops/gateway-simulator.js'

const silent = pino({ level: 'silent' })
// Small batches, so that a pause right after submission leaves most recipients unsent.
const small = { delivery: { batchSize: 10, tasksPerRoute: 2, retryBaseSeconds: 0.05 } }
const slow = { keepMessages: false, delayMs: 2 }
const accepted = (sims: Record<string, GatewaySimulator>): number =>
  Object.values(sims).reduce((n, s) => n + s.stats().acceptedRecipients, 0)
const duplicates = (sims: Record<string, GatewaySimulator>): number =>
  Object.values(sims).reduce((n, s) => n + s.duplicates(), 0)

function submitAll (appliance: Appliance, cityId: string): number {
  return appliance.submit({
    organisationId: cityId, subject: '臨時休校', body: '明日は臨時休校です。', priority: 'normal', targets: {}, createdBy: 'test'
  }).id
}

t.test('a normal stop mid-broadcast sends nothing twice and the broadcast resumes on start', async (t) => {
  const sims = await startSimulators(t, { docomo: slow, au: slow, softbank: slow, default: slow })
  const config = testConfig(t.testdir(), sims)
  const first = Appliance.open(config, { log: silent })
  const city = createSampleCity(first.directory)
  seedSubscribers(first.directory, city, 800)
  const id = submitAll(first, city.cityId)
  await waitFor(() => accepted(sims) >= 200)
  await first.close()
  t.ok(accepted(sims) < 800, 'stopped mid-send')

  const second = Appliance.open(config, { log: silent })
  t.teardown(async () => { await second.close() })
  const report = await second.finished(id)
  t.equal(report.counts.accepted, 800)
  t.equal(accepted(sims), 800)
  t.equal(duplicates(sims), 0, 'nobody received it twice')
})

t.test('a cancel recorded before a crash is finished after the restart', async (t) => {
  const sims = await startSimulators(t, { docomo: slow, au: slow, softbank: slow, default: slow })
  const config = testConfig(t.testdir(), sims, small)
  const first = Appliance.open(config, { log: silent })
  const city = createSampleCity(first.directory)
  seedSubscribers(first.directory, city, 600)
  const id = submitAll(first, city.cityId)
  first.pause(id)
  first.book.update(id, { cancelRequested: true })
  await first.close()

  const second = Appliance.open(config, { log: silent })
  t.teardown(async () => { await second.close() })
  const report = await second.finished(id)
  t.equal(report.status, 'cancelled')
  const c = report.counts
  t.equal(c.accepted + c.cancelled + c.failed + c.suppressed, 600, 'every recipient in one final state')
  t.ok(c.cancelled > 0)
})

t.test('recipients of a route removed from the configuration go through the default route', async (t) => {
  const sims = await startSimulators(t, { docomo: slow, au: slow, softbank: slow, default: slow })
  const dir = t.testdir()
  const first = Appliance.open(testConfig(dir, sims, small), { log: silent })
  const city = createSampleCity(first.directory)
  seedSubscribers(first.directory, city, 300)
  const id = submitAll(first, city.cityId)
  first.pause(id)
  await first.close()

  const withoutAu = testConfig(dir, sims, small)
  withoutAu.routes = withoutAu.routes.filter((r) => r.name !== 'au')
  const second = Appliance.open(withoutAu, { log: silent })
  t.teardown(async () => { await second.close() })
  second.resume(id)
  const report = await second.finished(id)
  t.equal(report.counts.accepted, 300, 'every recipient accepted')
  const auGateway = sims.au?.stats().acceptedRecipients ?? 0
  t.ok(auGateway < (report.routes.au?.accepted ?? 0), 'most au recipients were still unsent at the restart')
  t.equal((sims.au?.stats().acceptedRecipients ?? 0) + (sims.default?.stats().acceptedRecipients ?? 0),
    (report.routes.au?.accepted ?? 0) + (report.routes.default?.accepted ?? 0),
    'the rest of the au recipients went through the default route')
})

t.test('a route allowed one connection never opens a second, even with two workers', async (t) => {
  const sims = await startSimulators(t, { docomo: { keepMessages: false, maxConnections: 1 } })
  const config = testConfig(t.testdir(), sims)
  config.routes = config.routes.map((r) => r.name === 'docomo' ? { ...r, maxConnections: 1 } : r)
  const appliance = Appliance.open(config, { log: silent })
  t.teardown(async () => { await appliance.close() })
  const city = createSampleCity(appliance.directory)
  seedSubscribers(appliance.directory, city, 300, { domains: ['docomo.ne.jp'] })
  const report = await appliance.finished(submitAll(appliance, city.cityId))
  t.equal(report.counts.accepted, 300)
  t.equal(sims.docomo?.stats().refusedConnections, 0, 'the gateway never refused a connection')
  t.equal(sims.docomo?.stats().maxConcurrentConnections, 1)
})

t.test('a DKIM key that cannot sign stops start-up', async (t) => {
  const sims = await startSimulators(t)
  const dir = t.testdir()
  writeFileSync(join(dir, 'bad.pem'), '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n')
  const config = testConfig(join(dir, 'data'), sims, { dkim: { domain: 'mimamori.example.jp', selector: 's1', keyFile: join(dir, 'bad.pem') } })
  t.throws(() => Appliance.open(config, { log: silent }), { code: 'MIMAMORI_DKIM_KEY_INVALID' })
})
