import t from 'tap'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../../appliance/config.js'

const EXAMPLE = fileURLToPath(new URL('../../ops/mimamori.example.yaml', import.meta.url))

t.test('the commented example configuration is valid as shipped', async (t) => {
  const config = loadConfig({ file: EXAMPLE, env: {} })
  t.equal(config.mailDomain, 'mimamori.example.jp')
  t.same(config.sender, {}, 'a section with every line commented out means its defaults')
  t.same(config.routes.map((r) => r.name), ['docomo', 'au', 'softbank'])
  t.equal(config.feeds.jma.enabled, false, 'no feed is polled until the operator says so')
  t.same(config.feeds.areas['jma-seismic'], ['621'])
  t.match(config.feeds.rules, [
    { id: 'quake-chuyo', kind: 'earthquake', minLevel: '5弱', mode: 'auto', drill: { enabled: true } },
    { id: 'heavy-rain-special', kind: 'weather-warning', minLevel: '特別警報', mode: 'draft' }
  ])
  t.equal(config.feeds.holdMinutes['weather-warning'], 10)
  t.equal(config.feeds.holdMinutes.tsunami, 0)
})

t.test('a section left empty is not mistaken for a wrong type, but a scalar still is', async (t) => {
  const dir = t.testdir({ 'empty.yaml': 'sender:\nhttp:\n  port: 8181\n', 'bad.yaml': 'sender: 7\n' })
  t.equal(loadConfig({ file: `${dir}/empty.yaml`, env: {} }).http.port, 8181)
  t.throws(() => loadConfig({ file: `${dir}/bad.yaml`, env: {} }), { code: 'MIMAMORI_CONFIG_INVALID', message: /sender/ })
})

t.test('an alert rule with a level its kind does not have, or an id used twice, stops start-up', async (t) => {
  const rule = { id: 'r', name: 'r', kind: 'earthquake', minLevel: '5弱', organisation: 'matsuyama', targets: {} }
  const cases: Array<[string, unknown[], RegExp]> = [
    ['unknown level', [{ ...rule, minLevel: '特別警報' }], /minLevel "特別警報" is not a level of earthquake \(1, 2/],
    ['twice', [rule, rule], /id "r" is used twice/]
  ]
  for (const [name, rules, message] of cases) {
    t.throws(() => loadConfig({ env: {}, overrides: { feeds: { rules } } }), { code: 'MIMAMORI_CONFIG_INVALID', message }, name)
  }
  t.equal(loadConfig({ env: {}, overrides: { feeds: { rules: [{ ...rule, minLevel: '震度5弱以上' }] } } }).feeds.rules.length, 1,
    'the threshold may be written as 震度5弱以上')
})
