import t from 'tap'
import { join } from 'node:path'
import { loadConfig, checkConfig } from '../../appliance/config.js'

t.test('the defaults are the documented ones', async (t) => {
  const config = loadConfig({ env: {} })
  t.equal(config.http.host, '127.0.0.1')
  t.equal(config.http.port, 8080)
  t.equal(config.smtp.port, 2525)
  t.equal(config.timeZone, 'Asia/Tokyo')
  t.equal(config.dataDir, join(process.cwd(), 'data'))
  t.equal(config.defaultRoute.mode, 'mx')
})

t.test('a YAML file is read and its paths resolved beside it', async (t) => {
  const dir = t.testdir({
    'mimamori.yaml': [
      'dataDir: ./store',
      'mailDomain: mail.city.matsuyama.example.jp',
      'routes:',
      '  - name: docomo',
      '    domains: [docomo.ne.jp]',
      '    host: gw.docomo.example',
      '    maxConnections: 5'
    ].join('\n')
  })
  const config = loadConfig({ file: join(dir, 'mimamori.yaml'), env: {} })
  t.equal(config.dataDir, join(dir, 'store'))
  t.equal(config.routes[0]?.maxConnections, 5)
  t.equal(config.routes[0]?.port, 25, 'route defaults filled in')
})

t.test('environment variables override nested keys', async (t) => {
  const config = loadConfig({
    env: {
      MIMAMORI_HTTP__PORT: '9090',
      MIMAMORI_PUBLIC_BASE_URL: 'https://alert.city.example.jp',
      MIMAMORI_DELIVERY__MAX_ATTEMPTS: '5',
      MIMAMORI_ROUTES: '[{"name":"au","domains":["au.com"],"host":"gw.au.example"}]'
    }
  })
  t.equal(config.http.port, 9090)
  t.equal(config.publicBaseUrl, 'https://alert.city.example.jp')
  t.equal(config.delivery.maxAttempts, 5)
  t.equal(config.routes[0]?.name, 'au')
})

t.test('unknown keys and bad values are refused with every problem named', async (t) => {
  t.throws(() => checkConfig({ htpp: { port: 1 } }), { code: 'MIMAMORI_CONFIG_INVALID', message: /htpp/ })
  t.throws(() => checkConfig({ http: { port: 70000 } }), { code: 'MIMAMORI_CONFIG_INVALID', message: /\/http\/port/ })
  t.throws(() => checkConfig({ defaultRoute: { mode: 'smarthost' } }), { message: /needs a host/ })
  t.throws(() => checkConfig({ routes: [{ name: 'a', domains: ['x.jp'], host: 'h' }, { name: 'a', domains: ['y.jp'], host: 'h' }] }),
    { message: /used twice/ })
  t.throws(() => loadConfig({ env: { MIMAMORI_NO_SUCH_THING: '1' } }), { message: /names no setting/ })
})

t.test('a file that is not YAML or not a mapping is refused clearly', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'http: [unclosed', 'list.yaml': '- a\n- b\n' })
  t.throws(() => loadConfig({ file: join(dir, 'bad.yaml'), env: {} }), { message: /not valid YAML/ })
  t.throws(() => loadConfig({ file: join(dir, 'list.yaml'), env: {} }), { message: /mapping/ })
  t.throws(() => loadConfig({ file: join(dir, 'missing.yaml'), env: {} }), { message: /cannot read/ })
})

t.test('a TOML file is read as well', async (t) => {
  const dir = t.testdir({ 'mimamori.toml': 'mailDomain = "mail.city.example.jp"\n[http]\nport = 8181\n' })
  const config = loadConfig({ file: join(dir, 'mimamori.toml'), env: {} })
  t.equal(config.http.port, 8181)
  t.equal(config.mailDomain, 'mail.city.example.jp')
})

t.test('variables that name the file or a token are not taken for settings', async (t) => {
  const config = loadConfig({ env: { MIMAMORI_CONFIG: '/etc/mimamori.yaml', MIMAMORI_API_TOKEN: 'mmr_x' } })
  t.equal(config.http.port, 8080)
})

t.test('an empty or non-numeric number, a bad sender address and an unknown time zone are refused', async (t) => {
  t.throws(() => loadConfig({ env: { MIMAMORI_HTTP__PORT: '' } }), { message: /must be a number/ })
  t.throws(() => loadConfig({ env: { MIMAMORI_HTTP__PORT: 'eighty' } }), { message: /must be a number/ })
  t.throws(() => checkConfig({ sender: { address: 'not an address' } }), { message: /sender\.address/ })
  t.throws(() => checkConfig({ timeZone: 'Mars/Olympus' }), { message: /time zone/ })
})

t.test('defaultRoute.dnsServers takes IP addresses with an optional port, and nothing else', async (t) => {
  const good = ['192.0.2.53', '127.0.0.1:5353', '2001:db8::53', '[2001:db8::53]:5353']
  const config = checkConfig({ defaultRoute: { mode: 'mx', port: 2525, dnsServers: good } })
  t.same(config.defaultRoute.dnsServers, good)
  t.equal(config.defaultRoute.port, 2525, 'MX mode keeps the port it is given')
  t.equal(checkConfig({}).defaultRoute.dnsServers, undefined, 'the system resolver by default')
  const env = loadConfig({ env: { MIMAMORI_DEFAULT_ROUTE__DNS_SERVERS: '["127.0.0.1:53"]' } })
  t.same(env.defaultRoute.dnsServers, ['127.0.0.1:53'], 'a JSON list from the environment')

  for (const bad of ['ns1.example.jp', '127.0.0.1:0', '127.0.0.1:70000', '[192.0.2.1]:53', '1.2.3.4:dns', '']) {
    t.throws(() => checkConfig({ defaultRoute: { dnsServers: [bad] } }), { code: 'MIMAMORI_CONFIG_INVALID' },
      `"${bad}" is refused`)
  }
  t.throws(() => checkConfig({ defaultRoute: { dnsServers: [] } }), { code: 'MIMAMORI_CONFIG_INVALID' },
    'an empty list is refused: leave the key out for the system resolver')
})
