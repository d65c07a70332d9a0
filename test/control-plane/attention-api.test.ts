import t from 'tap'
import nodemailer from 'nodemailer'
import { startApi, bearer, json } from './harness.js'
import { deliver, subscribe } from '../delivered-broadcast.js'

const MAMA = 'mama.tanaka@docomo.ne.jp'
const FILTERED = 'blocked.filter@ezweb.ne.jp'

t.test("staff read their organisation's replies and the members a domain filter refused, masked",
  async (t) => {
    const { appliance, app, city, simulators, logLines } = await startApi(t)
    await appliance.listenInbound()
    const school = city.schools[0] as string
    const other = city.schools[1] as string
    const mama = subscribe(appliance, school, MAMA)
    const filtered = subscribe(appliance, school, FILTERED)
    const sent = await deliver(appliance, simulators, school)
    const mine = sent.byAddress.get(MAMA)

    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: appliance.inboundPort, ignoreTLS: true })
    t.teardown(() => transport.close())
    await transport.sendMail({
      from: MAMA, to: mine?.replyTo, subject: `Re: ${mine?.subject ?? ''}`, text: '明日は祖母が迎えに行きます。'
    })
    await appliance.inbound.idle()

    const headers = bearer(appliance, ['members:read'], school)
    const replies = await app.inject({ method: 'GET', url: `/api/v1/organisations/${school}/replies`, headers })
    t.equal(replies.statusCode, 200)
    t.match(json(replies).replies, [{
      broadcastId: sent.broadcastId, subscriberId: mama, from: 'ma***@docomo.ne.jp',
      text: /祖母が迎えに行きます/, action: 'none'
    }])
    t.notMatch(replies.body, MAMA, 'no address in clear')

    const refused = await app.inject({ method: 'GET', url: `/api/v1/organisations/${school}/domain-filtered`, headers })
    t.equal(refused.statusCode, 200)
    t.match(json(refused).members, [{ subscriberId: filtered, address: 'bl***@ezweb.ne.jp', carrier: 'ezweb.ne.jp', reason: 'filtered', source: 'smtp' }])
    t.equal(json(refused).members.length, 1, 'only the refused member')
    t.notMatch(refused.body, FILTERED)
    const since = json(refused).members[0].since as string
    await deliver(appliance, simulators, school, '【連絡】二通目')
    const later = await app.inject({ method: 'GET', url: `/api/v1/organisations/${school}/domain-filtered`, headers })
    t.equal(json(later).members[0].since, since, 'a second refusal keeps the time of the first')
    t.notOk(logLines.some((l) => l.includes(MAMA) || l.includes(FILTERED)), 'no address in the logs')

    for (const url of [`/api/v1/organisations/${other}/replies`, `/api/v1/organisations/${other}/domain-filtered`]) {
      const response = await app.inject({ method: 'GET', url, headers })
      t.equal(response.statusCode, 403, `another school's ${url.split('/').pop() ?? ''} are refused`)
      t.equal(json(response).error.code, 'MIMAMORI_FORBIDDEN')
    }
    const sender = bearer(appliance, ['broadcasts:write'], school)
    const noScope = await app.inject({ method: 'GET', url: `/api/v1/organisations/${school}/replies`, headers: sender })
    t.equal(noScope.statusCode, 403, 'a token without members:read is refused')
    const bad = await app.inject({ method: 'GET', url: `/api/v1/organisations/${school}/replies?limit=0`, headers })
    t.equal(bad.statusCode, 400, 'a limit out of range is refused')
    const unknown = await app.inject({ method: 'GET', url: '/api/v1/organisations/nowhere/replies', headers: bearer(appliance, ['members:read']) })
    t.equal(unknown.statusCode, 404)
  })
