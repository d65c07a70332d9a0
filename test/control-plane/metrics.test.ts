// /metrics as an operator's Prometheus reads it: per-route outcomes, queue depth per lane while a
// broadcast runs, and ledger states that still count a broadcast after it has finished.

import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { addMember, startApi } from './harness.js'
import { waitFor } from '../helpers.js'
import { seedSubscribers } from '../../ops/sample-city.js'

type Series = Map<string, number>

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const LABELS = '\\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*",?)*\\}'
const SAMPLE = new RegExp(`^(${NAME})(${LABELS})? (-?[0-9.e+]+|NaN|[+-]Inf)$`)

// The 451 recipient waits retryBaseSeconds (±10 %) before its second attempt, so for at least
// 1.8 s after its deferral is recorded the broadcast cannot finish: a scrape taken as soon as the
// ledger shows it is mid-send without racing the clock.
const DELIVERY = { retryBaseSeconds: 2, retryMaxSeconds: 2, slowdownSeconds: 0.1, batchSize: 10 }
const DOCOMO_RULES = [
  { match: '^tempfail', code: 451, times: 1 },
  { match: '^unknown', code: 550, message: '5.1.1 User unknown' }
]

async function scrape (t: Test, app: FastifyInstance): Promise<{ text: string, series: Series }> {
  const response = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(response.statusCode, 200)
  t.match(response.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  return { text: response.body, series: parseExposition(t, response.body) }
}

/** Checks the Prometheus text format (0.0.4) and returns every sample by its series name. */
function parseExposition (t: Test, text: string): Series {
  t.ok(text.endsWith('\n'), 'the exposition ends with a line feed')
  const help = new Set<string>()
  const types = new Map<string, string>()
  const series: Series = new Map()
  const problems: string[] = []
  for (const line of text.trimEnd().split('\n')) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line)
    if (meta !== null) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string]
      if (kind === 'HELP') help.add(name)
      else types.set(name, rest)
      continue
    }
    const sample = SAMPLE.exec(line)
    if (sample === null) { problems.push(`not a sample: ${line}`); continue }
    const name = sample[1] as string
    if (!help.has(name) || !types.has(name)) problems.push(`${name} has no HELP or TYPE before it`)
    if (!['counter', 'gauge'].includes(types.get(name) ?? '')) problems.push(`${name}: unknown TYPE`)
    const type = types.get(name)
    if (type === 'counter' && !name.endsWith('_total')) problems.push(`counter ${name} lacks _total`)
    const key = `${name}${sample[2] ?? ''}`
    if (series.has(key)) problems.push(`${key} appears twice`)
    series.set(key, Number(sample[3]))
  }
  t.same(problems, [], 'every line is HELP, TYPE or a sample of a declared family')
  return series
}

function value (series: Series, key: string): number {
  const v = series.get(key)
  if (v === undefined) throw new Error(`no series ${key}`)
  return v
}

t.test('/metrics counts outcomes per route, lane depth mid-send and final ledger states after', async (t) => {
  const { appliance, app, city, simulators } = await startApi(t, {
    simulators: { docomo: { rules: DOCOMO_RULES } },
    config: { delivery: DELIVERY }
  })
  const domains = ['docomo.ne.jp', 'au.com', 'gmail.com']
  const seeded = seedSubscribers(appliance.directory, city, 60, { domains })
  addMember(appliance, 'tempfail.mama@docomo.ne.jp', city.cityId)
  addMember(appliance, 'unknown.papa@docomo.ne.jp', city.cityId)
  const total = seeded.length + 2

  const broadcast = appliance.submit({
    organisationId: city.cityId, subject: '給食だより', body: '今月の献立です。', priority: 'bulk', targets: {}, createdBy: 'test'
  })
  t.equal(broadcast.total, total)
  await waitFor(() => appliance.report(broadcast.id).counts.deferred >= 1)

  const mid = (await scrape(t, app)).series
  t.ok(value(mid, 'mimamori_queue_depth{lane="bulk"}') >= 1, 'the bulk lane has recipients waiting mid-send')
  t.equal(value(mid, 'mimamori_queue_depth{lane="emergency"}'), 0, 'the emergency lane is empty')
  t.equal(value(mid, 'mimamori_queue_depth{lane="normal"}'), 0, 'the normal lane is empty')
  t.ok(value(mid, 'mimamori_ledger_recipients{state="deferred"}') >= 1, 'the deferred recipient is counted')
  t.equal(value(mid, 'mimamori_broadcasts_running'), 1)

  const report = await appliance.finished(broadcast.id)
  t.equal(report.counts.accepted, total - 1)
  t.equal(report.counts.failed, 1)

  const after = (await scrape(t, app)).series
  for (const lane of ['emergency', 'normal', 'bulk']) {
    t.equal(value(after, `mimamori_queue_depth{lane="${lane}"}`), 0, `${lane} lane empty after the broadcast`)
  }
  for (const state of ['queued', 'sending', 'deferred']) {
    t.equal(value(after, `mimamori_ledger_recipients{state="${state}"}`), 0, `no recipient left ${state}`)
  }
  t.equal(value(after, 'mimamori_ledger_final_total{state="accepted"}'), total - 1,
    'accepted recipients stay counted after the broadcast finished')
  t.equal(value(after, 'mimamori_ledger_final_total{state="failed"}'), 1)
  t.equal(value(after, 'mimamori_ledger_final_total{state="suppressed"}'), 0)
  t.equal(value(after, 'mimamori_ledger_final_total{state="cancelled"}'), 0)
  t.equal(value(after, 'mimamori_broadcasts_running'), 0)

  t.equal(value(after, 'mimamori_route_deferred_total{route="docomo"}'), 1, 'docomo counted the 451')
  t.equal(value(after, 'mimamori_route_failed_total{route="docomo"}'), 1, 'docomo counted the 550')
  t.equal(value(after, 'mimamori_route_throttled_total{route="docomo"}'), 0, 'a 451 4.3.0 is no slow-down')
  for (const route of ['docomo', 'au', 'softbank', 'default']) {
    t.equal(value(after, `mimamori_route_sent_total{route="${route}"}`),
      simulators[route]?.stats().acceptedRecipients, `${route} counts what its gateway accepted`)
    if (route === 'docomo') continue
    t.equal(value(after, `mimamori_route_deferred_total{route="${route}"}`), 0)
    t.equal(value(after, `mimamori_route_failed_total{route="${route}"}`), 0)
  }
  t.notMatch(after, 'mimamori_feed_failures{', 'JMA feeds switched off (the default) are not listed as feeds')
})

t.test('final ledger states add up over broadcasts and lanes count each priority apart', async (t) => {
  const { appliance, app, city } = await startApi(t, { config: { delivery: DELIVERY } })
  addMember(appliance, 'tempfail.first@docomo.ne.jp', city.cityId)
  const mama = addMember(appliance, 'mama@au.com', city.cityId)
  const emergency = appliance.submit({
    organisationId: city.cityId, subject: '【緊急】避難指示', body: '避難してください。', priority: 'emergency', targets: {}, createdBy: 'test'
  })
  // The default simulator defers tempfail... on every attempt: the emergency stays running.
  await waitFor(() => {
    const { counts } = appliance.report(emergency.id)
    return counts.deferred === 1 && counts.accepted === 1
  })
  const mid = (await scrape(t, app)).series
  t.equal(value(mid, 'mimamori_queue_depth{lane="emergency"}'), 1, 'the deferred emergency recipient')
  t.equal(value(mid, 'mimamori_queue_depth{lane="bulk"}'), 0)
  appliance.cancel(emergency.id)
  await appliance.finished(emergency.id)

  const normal = appliance.submit({
    organisationId: city.cityId, subject: '連絡', body: '本文', priority: 'normal', targets: { subscribers: [mama] }, createdBy: 'test'
  })
  await appliance.finished(normal.id)
  const after = (await scrape(t, app)).series
  t.equal(value(after, 'mimamori_ledger_final_total{state="cancelled"}'), 1, 'the cancelled emergency recipient')
  t.equal(value(after, 'mimamori_ledger_final_total{state="accepted"}'), 2,
    'one from the emergency and one from the normal broadcast: the tempfail recipient is cancelled')
  t.equal(value(after, 'mimamori_ledger_final_total{state="failed"}'), 0)
})
