import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { AlertRuleConfig } from '../../appliance/feeds/feeds-config.js'
import { bearer, json, startApi, type ApiHarness } from './harness.js'

const FIXTURES = new URL('../fixtures/cap/', import.meta.url)
const text = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8')
const FIRE = text('matsuyama-ja.cap')
const CANCEL = text('matsuyama-ja-cancel.cap')
const CAP = { 'content-type': 'application/cap+xml' }

function rule (fields: Partial<AlertRuleConfig> & Pick<AlertRuleConfig, 'id'>): AlertRuleConfig {
  return {
    name: fields.id, kind: 'other', minLevel: 'Severe', organisation: 'matsuyama', targets: {},
    priority: 'emergency', mode: 'auto', holdMinutes: 10, action: 'alert', enabled: true, ...fields
  }
}

type City = ApiHarness & { feeds: Record<string, string> }

async function city (t: Test, rules: AlertRuleConfig[]): Promise<City> {
  const feeds = { areas: { cap: ['382019', '松山市東部地区'] }, rules }
  const harness = await startApi(t, { config: { feeds } })
  return { ...harness, feeds: bearer(harness.appliance, ['feeds:write']) }
}

async function post (harness: ApiHarness, headers: Record<string, string>, payload: string) {
  return await harness.app.inject({ method: 'POST', url: '/api/v1/cap', headers, payload })
}

t.test('an alert for a watched area makes a draft, once; its cancel withdraws it', async (t) => {
  const harness = await city(t, [rule({ id: 'fire' })])
  const { appliance, feeds } = harness

  const made = await post(harness, { ...feeds, ...CAP }, FIRE)
  t.equal(made.statusCode, 202, made.body)
  const result = json(made)
  t.same(result.event, {
    id: 'bousai@fire.matsuyama.example.jp,MFD-2026-0042', kind: 'other', status: 'actual',
    infoType: 'issue'
  })
  t.equal(result.duplicate, false)
  t.equal(result.drafts.length, 1)
  const draft = appliance.hazards.draft(result.drafts[0])
  t.equal(draft.state, 'held', 'an automatic rule holds it first')
  t.equal(draft.subject, '【警報】林野火災（松山市・松山市東部地区）')
  t.match(draft.body, /延焼しています。 東部地区の住民は直ちに避難してください。/)

  const again = json(await post(harness, { ...feeds, ...CAP }, FIRE))
  t.same(again, { ...result, duplicate: true, drafts: [], withdrawn: [] })

  const cancelled = await post(harness, { ...feeds, ...CAP }, CANCEL)
  t.equal(cancelled.statusCode, 202)
  t.match(json(cancelled), { event: { infoType: 'cancel' }, withdrawn: [draft.id], drafts: [] })
  t.match(appliance.hazards.draft(draft.id),
    { state: 'withdrawn', reason: 'cancelled by the source' })
  t.same(appliance.book.list(), [], 'nothing went out')

  const moderate = FIRE.replaceAll('>Severe<', '>Moderate<').replace('0042<', '0044<')
  t.same(json(await post(harness, { ...feeds, ...CAP }, moderate)).drafts, [], 'below the level')
  const elsewhere = FIRE.replaceAll('382019', '131016').replaceAll('松山市東部地区', '千代田区')
    .replace('0042<', '0045<')
  t.same(json(await post(harness, { ...feeds, ...CAP }, elsewhere)).drafts, [],
    'an area the city does not watch')
})

t.test('an Exercise alert acts only on a rule in drill mode, marked as a drill', async (t) => {
  const harness = await city(t, [
    rule({ id: 'fire' }),
    rule({
      id: 'fire-drill', mode: 'draft',
      drill: { enabled: true, targets: { organisations: ['higashi-es'] } }
    })
  ])
  const exercise = FIRE.replace('<status>Actual', '<status>Exercise')
  const response = json(await post(harness, { ...harness.feeds, ...CAP }, exercise))
  t.equal(response.event.status, 'drill')
  t.equal(response.drafts.length, 1)
  const draft = harness.appliance.hazards.draft(response.drafts[0])
  t.match(draft, { ruleId: 'fire-drill', drill: true, targets: { organisations: ['higashi-es'] } })
  t.match(draft.subject, /^【訓練】/)

  const test = FIRE.replace('<status>Actual', '<status>Test').replace('0042<', '0046<')
  t.same(json(await post(harness, { ...harness.feeds, ...CAP }, test)).drafts, [],
    'a Test alert never acts')
})

t.test('the endpoint needs a feeds:write token', async (t) => {
  const harness = await city(t, [])
  const { appliance } = harness
  const none = await post(harness, CAP, FIRE)
  t.equal(none.statusCode, 401)
  t.equal(json(none).error.code, 'MIMAMORI_UNAUTHORIZED')
  const wrong = await post(harness, { ...bearer(appliance, ['broadcasts:write']), ...CAP }, FIRE)
  t.equal(wrong.statusCode, 403)
  t.match(json(wrong).error, { code: 'MIMAMORI_FORBIDDEN', message: /feeds:write/ })
  const admin = await post(harness, { ...bearer(appliance, ['admin']), ...CAP }, FIRE)
  t.equal(admin.statusCode, 202, 'admin holds every scope')
})

t.test('CAP comes as application/cap+xml, application/xml or text/xml, to 1 MB', async (t) => {
  const harness = await city(t, [])
  const { feeds } = harness
  let n = 100
  const fresh = (): string => FIRE.replace('0042<', `${n++}<`)
  const taken = ['application/cap+xml', 'application/xml', 'text/xml',
    'application/cap+xml; charset=utf-8']
  for (const type of taken) {
    const response = await post(harness, { ...feeds, 'content-type': type }, fresh())
    t.equal(response.statusCode, 202, type)
  }
  const others = ['application/json', 'text/plain', 'application/x-www-form-urlencoded',
    'application/octet-stream']
  for (const type of others) {
    const body = type === 'application/json' ? '{}' : fresh()
    const refused = await post(harness, { ...feeds, 'content-type': type }, body)
    t.equal(refused.statusCode, 415, type)
  }
  const empty = await post(harness, { ...feeds, ...CAP }, '')
  t.match([empty.statusCode, json(empty).error.code], [400, 'MIMAMORI_BAD_REQUEST'], 'no body')
  const huge = fresh().replace('<description>', `<description>${'あ'.repeat(400_000)}`)
  t.equal((await post(harness, { ...feeds, ...CAP }, huge)).statusCode, 413, 'over 1 MB')
})

t.test('attacks and broken XML are refused, fetching nothing; invalid CAP is named', async (t) => {
  let requests = 0
  const server = createServer((_req, res) => { requests++; res.end('') })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const origin = `127.0.0.1:${(server.address() as AddressInfo).port}`

  const harness = await city(t, [rule({ id: 'fire' })])
  const headers = { ...harness.feeds, ...CAP }
  for (const name of ['xee.cap', 'xee.atom']) {
    const attack = text(name).replaceAll('localhost:8080', origin)
      .replaceAll('googleusercontent.com', origin)
    const refused = await post(harness, headers, attack)
    t.equal(refused.statusCode, 400, name)
    t.equal(json(refused).error.code, 'MIMAMORI_XML_REFUSED', name)
  }
  const broken = await post(harness, headers, FIRE.slice(0, 300))
  t.equal(json(broken).error.code, 'MIMAMORI_XML_REFUSED')

  const invalid = await post(harness, headers, text('invalid.cap'))
  t.equal(invalid.statusCode, 400)
  t.match(json(invalid).error,
    { code: 'MIMAMORI_CAP_INVALID', details: { problems: ['<scope> is missing'] } })
  const feed = await post(harness, headers, text('weather.atom'))
  t.equal(json(feed).error.code, 'MIMAMORI_CAP_INVALID', 'a feed is no alert')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(requests, 0, 'the counting server was never asked')
  t.same(harness.appliance.hazards.drafts(), [])
})

t.test('one log line per alert, without its words or the sender address', async (t) => {
  const harness = await city(t, [rule({ id: 'fire' })])
  await post(harness, { ...harness.feeds, ...CAP }, FIRE)
  const lines = harness.logLines.filter((l) => l.includes('CAP alert taken in'))
  t.equal(lines.length, 1)
  t.match(JSON.parse(lines[0] as string), {
    identifier: 'MFD-2026-0042', senderDomain: 'fire.matsuyama.example.jp', drafts: 1,
    duplicate: false
  })
  const all = harness.logLines.join('\n')
  t.notMatch(all, /避難してください/, 'the description is not logged')
  t.notMatch(lines[0], /bousai@/, 'nor the sender address')
})
