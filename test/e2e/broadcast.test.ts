import t from 'tap'
import { simpleParser } from 'mailparser'
import { startAppliance } from '../helpers.js'
import { seedSubscribers } from '../../ops/sample-city.js'
import { parseAddress } from '../../appliance/address.js'

t.test('a broadcast reaches every subscriber through its carrier gateway', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t)
  const ids = seedSubscribers(appliance.directory, city, 300)
  const broadcast = appliance.submit({
    organisationId: city.cityId,
    subject: '【緊急】不審者情報',
    body: '本日15時ごろ、東小学校付近で不審者が目撃されました。',
    priority: 'emergency',
    targets: {},
    createdBy: 'test'
  })
  t.equal(broadcast.total, ids.length)

  const report = await appliance.finished(broadcast.id)
  t.equal(report.status, 'done')
  t.equal(report.counts.accepted, ids.length, 'every recipient accepted')
  t.ok(report.firstAcceptedAt !== undefined && report.lastAcceptedAt !== undefined)

  let received = 0
  for (const sim of Object.values(simulators)) received += sim.stats().acceptedRecipients
  t.equal(received, ids.length, 'the gateways received each message once')
  for (const [route, counts] of Object.entries(report.routes)) {
    t.equal(counts.accepted, simulators[route]?.stats().acceptedRecipients, `route ${route} counted`)
  }
})

t.test('a legacy carrier address is delivered quoted', async (t) => {
  const { appliance, city, simulators } = await startAppliance(t)
  const { subscriber } = appliance.directory.upsertSubscriber({ address: parseAddress('taro..yamada.@docomo.ne.jp') })
  appliance.directory.addMembership(subscriber.id, city.cityId)
  const b = appliance.submit({
    organisationId: city.cityId, subject: 'テスト', body: '本文', priority: 'normal', targets: {}, createdBy: 'test'
  })
  await appliance.finished(b.id)
  const message = simulators.docomo?.received[0]
  t.same(message?.rcptTo, ['"taro..yamada."@docomo.ne.jp'])
  const parsed = await simpleParser(message?.raw as Buffer)
  t.equal(parsed.subject, 'テスト')
})
