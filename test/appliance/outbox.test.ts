import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { simpleParser } from 'mailparser'
import { dkimVerify } from 'mailauth/lib/dkim/verify.js'
import { Appliance } from '../../appliance/appliance.js'
import { loggerOptions } from '../../appliance/logger.js'
import type { Config } from '../../appliance/config.js'
import { startSimulators, testConfig, waitFor } from '../helpers.js'
import { createSampleCity } from '../../ops/sample-city.js'
import { generateDkimKey } from '../../ops/dkim-keygen.js'
import type { GatewaySimulatorOptions } from '../../ops/gateway-simulator.js'

const DOMAIN = 'mimamori.example.jp'
const FAST = { retryBaseSeconds: 0.02, retryMaxSeconds: 0.05, slowdownSeconds: 0.01 }

/** An appliance whose log lines are kept as objects (with the production redaction). */
function openLogged (t: Test, config: Config): { appliance: Appliance, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line))
      done()
    }
  })
  const log = pino({ ...loggerOptions('debug'), level: 'debug' }, sink)
  const appliance = Appliance.open(config, { log })
  return { appliance, lines }
}

async function setup (
  t: Test, simulators: Record<string, GatewaySimulatorOptions> = {}, extra: Record<string, unknown> = {},
  dataDir: string = t.testdir()
) {
  const sims = await startSimulators(t, simulators)
  const config = testConfig(dataDir, sims, { delivery: FAST, ...extra })
  const { appliance, lines } = openLogged(t, config)
  t.teardown(async () => { await appliance.close() })
  createSampleCity(appliance.directory)
  return { appliance, lines, simulators: sims, config }
}

t.test('a transactional mail goes out once, in UTF-8 Japanese, with its sender named', async (t) => {
  const { appliance, simulators } = await setup(t)
  const id = appliance.outbox.enqueue({
    to: 'taro..yamada.@docomo.ne.jp',
    subject: '【見守りメール】登録用のリンクです①',
    text: 'ご登録ありがとうございます。\n次のリンクを開いてください。\nhttps://mimamori.example.jp/s/abc',
    replyTo: `entry@${DOMAIN}`,
    inReplyTo: '<CAxyz@docomo.ne.jp>',
    references: ['<CAold@docomo.ne.jp>', 'not an id', '<CAxyz@docomo.ne.jp>'],
    purpose: 'signup-link'
  })
  t.type(id, 'number')
  await appliance.outbox.idle()

  const received = simulators.docomo?.received ?? []
  t.equal(received.length, 1, 'one message reached the carrier route')
  const message = received[0]
  t.same(message?.rcptTo, ['"taro..yamada."@docomo.ne.jp'], 'a legacy address goes quoted in the envelope')
  t.equal(message?.mailFrom, `postmaster@${DOMAIN}`, 'bounces of transactional mail reach postmaster@')

  const parsed = await simpleParser(message?.raw as Buffer)
  t.equal(parsed.subject, '【見守りメール】登録用のリンクです①')
  t.equal(parsed.text?.trim(), 'ご登録ありがとうございます。\n次のリンクを開いてください。\nhttps://mimamori.example.jp/s/abc')
  t.same(parsed.from?.value[0], { name: '松山市', address: `alert@${DOMAIN}` }, 'the city sends, by name')
  t.equal(parsed.replyTo?.value[0]?.address, `entry@${DOMAIN}`)
  t.equal(parsed.inReplyTo, '<CAxyz@docomo.ne.jp>')
  t.same(parsed.references, ['<CAold@docomo.ne.jp>', '<CAxyz@docomo.ne.jp>'], 'a malformed id is left out')
  t.match(parsed.messageId, new RegExp(`^<o${id}\\.[0-9a-f]+@${DOMAIN.replace(/\./g, '\\.')}>$`))
  t.equal(parsed.headers.get('auto-submitted'), 'auto-replied', 'an answer to a mail is marked (RFC 3834)')
  t.equal(appliance.store.outbox.getKeysCount(), 0, 'the row is gone once the gateway took it')
})

t.test('a bad recipient or a line break in the subject is refused at enqueue', async (t) => {
  const { appliance } = await setup(t)
  const mail = { to: 'hanako@au.com', subject: '件名', text: '本文', purpose: 'test' }
  t.throws(() => appliance.outbox.enqueue({ ...mail, to: 'no-at-sign' }), { code: 'MIMAMORI_BAD_ADDRESS' })
  t.throws(() => appliance.outbox.enqueue({ ...mail, to: 'a@b.jp\r\nRCPT TO:<c@d.jp>' }), { code: 'MIMAMORI_BAD_ADDRESS' })
  t.throws(() => appliance.outbox.enqueue({ ...mail, subject: '件名\r\nBcc: x@y.jp' }), { code: 'MIMAMORI_HEADER_INJECTION' })
  t.equal(appliance.store.outbox.getKeysCount(), 0)
})

t.test('a 421 or 450 from the gateway is retried with back-off until accepted', async (t) => {
  const { appliance, simulators } = await setup(t, {
    docomo: { rules: [{ match: '^busy', code: 421, times: 1 }, { match: '^tempfail', code: 450, times: 2 }] }
  })
  appliance.outbox.enqueue({ to: 'busy.mama@docomo.ne.jp', subject: '一', text: '一', purpose: 'test' })
  appliance.outbox.enqueue({ to: 'tempfail.papa@docomo.ne.jp', subject: '二', text: '二', purpose: 'test' })
  await appliance.outbox.idle()

  const docomo = simulators.docomo
  t.equal(docomo?.acceptedCount('busy.mama@docomo.ne.jp'), 1, 'accepted once after the 421')
  t.equal(docomo?.acceptedCount('tempfail.papa@docomo.ne.jp'), 1, 'accepted once after two 450s')
  t.equal(docomo?.stats().deferred, 3)
})

t.test('a 550 drops the mail with one log line that does not show the address', async (t) => {
  const { appliance, simulators, lines } = await setup(t)
  appliance.outbox.enqueue({ to: 'unknown.person@au.com', subject: '件名', text: '本文', purpose: 'signup-link' })
  await appliance.outbox.idle()

  t.equal(simulators.au?.stats().rejected, 1)
  t.equal(simulators.au?.stats().accepted, 0)
  t.equal(appliance.store.outbox.getKeysCount(), 0, 'dropped, not retried')
  const dropped = lines.filter((l) => l.msg === 'outbox mail dropped')
  t.equal(dropped.length, 1)
  t.match(dropped[0], { level: 40, component: 'outbox', purpose: 'signup-link', code: 550, category: 'no-mailbox', recipient: 'un***@au.com' })
  t.notOk(JSON.stringify(lines).includes('unknown.person'), 'the address never appears in clear')
})

t.test('a mail left in the outbox by a stop goes out after the next open', async (t) => {
  const simulators = await startSimulators(t)
  const dataDir = t.testdir()
  // First run: the docomo gateway cannot be reached, so the mail stays, deferred.
  const unreachable = testConfig(dataDir, simulators, { delivery: { ...FAST, retryBaseSeconds: 0.5 } })
  const refused = unreachable.routes.find((r) => r.name === 'docomo')
  if (refused !== undefined) refused.port = 1
  const first = Appliance.open(unreachable, { log: pino({ level: 'silent' }) })
  createSampleCity(first.directory)
  first.outbox.enqueue({ to: 'hanako@docomo.ne.jp', subject: '再起動', text: '再起動の後に届きます。', purpose: 'test' })
  await waitFor(() => [...first.store.outbox.getRange()].some((e) => (e.value as { attempts: number }).attempts >= 1))
  await first.close()
  t.equal(simulators.docomo?.stats().accepted, 0, 'nothing went out before the stop')

  const second = Appliance.open(testConfig(dataDir, simulators, { delivery: FAST }), { log: pino({ level: 'silent' }) })
  t.teardown(async () => { await second.close() })
  await second.outbox.idle()
  t.equal(simulators.docomo?.acceptedCount('hanako@docomo.ne.jp'), 1, 'delivered once after the restart')
})

t.test('with DKIM configured the mail is signed and verifies', async (t) => {
  const dir = t.testdir()
  const key = generateDkimKey({ domain: DOMAIN, selector: 'mm1' })
  const keyFile = join(dir, 'dkim.pem')
  writeFileSync(keyFile, key.privateKeyPem, { mode: 0o600 })
  const { appliance, simulators } = await setup(t, {}, { dkim: { domain: DOMAIN, selector: 'mm1', keyFile } },
    join(dir, 'data'))
  appliance.outbox.enqueue({ to: 'hanako@gmail.com', subject: '署名つき', text: '本文', purpose: 'test' })
  await appliance.outbox.idle()

  const raw = simulators.default?.received[0]?.raw as Buffer
  t.ok(raw, 'the default route received it')
  const record = key.records.dkim.value.replace(/"\s*"/g, '').replace(/^"|"$/g, '')
  const resolver = async (name: string, type: string): Promise<string[][]> => {
    if (type === 'TXT' && name === `mm1._domainkey.${DOMAIN}`) return [[record]]
    throw Object.assign(new Error('no record'), { code: 'ENOTFOUND' })
  }
  const result = await dkimVerify(raw, { resolver })
  t.equal(result.results[0]?.status.result, 'pass')
})
