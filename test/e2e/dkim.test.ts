// DKIM end to end: a broadcast sent with a key configured reaches the gateway simulators signed,
// and each message verifies against the selector's TXT record as `mimamori dkim-keygen` prints it.

import t, { type Test } from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { dkimVerify } from 'mailauth/lib/dkim/verify.js'
import { startAppliance } from '../helpers.js'
import { subscribe } from '../delivered-broadcast.js'
import { generateDkimKey } from '../../ops/dkim-keygen.js'

const DOMAIN = 'mimamori.example.jp'
const SELECTOR = 'mm2025'
const SUBJECT = '【緊急】不審者情報：東小学校付近で目撃されました🚨'

/** A key file outside the appliance's test folder, which startAppliance makes afresh. */
function keyFile (t: Test, privateKeyPem: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'mimamori-dkim-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'dkim.pem')
  writeFileSync(file, privateKeyPem, { mode: 0o600 })
  return file
}

/** A resolver that answers only the selector's TXT record, as the carrier's DNS would. */
function resolverFor (name: string, value: string) {
  return async (query: string, type: string): Promise<string[][]> => {
    if (type === 'TXT' && query === name) return [[value]]
    throw Object.assign(new Error(`no ${type} record for ${query}`), { code: 'ENOTFOUND' })
  }
}

t.test('every message of a broadcast sent with a DKIM key carries a signature that verifies', async (t) => {
  const { privateKeyPem, records } = generateDkimKey({ domain: DOMAIN, selector: SELECTOR })
  const { appliance, city, simulators } = await startAppliance(t, {
    config: { dkim: { domain: DOMAIN, selector: SELECTOR, keyFile: keyFile(t, privateKeyPem) } }
  })
  const addresses = ['mama.tanaka@docomo.ne.jp', 'taro..yamada.@docomo.ne.jp', 'papa@au.com',
    'hanako@softbank.ne.jp', 'grandma@gmail.com']
  for (const address of addresses) subscribe(appliance, city.cityId, address)

  const broadcast = appliance.submit({
    organisationId: city.cityId, subject: SUBJECT, body: '本日午後3時ごろ、不審な人物が目撃されました。\n下校時はご注意ください。',
    priority: 'emergency', targets: {}, createdBy: 'test'
  })
  const report = await appliance.finished(broadcast.id)
  t.equal(report.counts.accepted, addresses.length)

  const resolver = resolverFor(records.dkim.name, records.dkim.value)
  const received = Object.values(simulators).flatMap((s) => s.received)
  t.equal(received.length, addresses.length, 'each recipient got one message')
  for (const message of received) {
    const to = message.rcptTo[0] ?? ''
    const result = await dkimVerify(message.raw as Buffer, { resolver })
    const signature = result.results[0]
    t.equal(result.results.length, 1, `${to}: one signature`)
    t.equal(signature?.status.result, 'pass', `${to}: ${signature?.status.comment ?? 'verified'}`)
    t.equal(signature?.signingDomain, DOMAIN, `${to}: d= is the mail domain, aligned with From for DMARC`)
    t.equal(signature?.selector, SELECTOR)
  }
})

t.test('the signature fails against another key and on an altered message', async (t) => {
  const { privateKeyPem, records } = generateDkimKey({ domain: DOMAIN, selector: SELECTOR })
  const other = generateDkimKey({ domain: DOMAIN, selector: SELECTOR })
  const { appliance, city, simulators } = await startAppliance(t, {
    config: { dkim: { domain: DOMAIN, selector: SELECTOR, keyFile: keyFile(t, privateKeyPem) } }
  })
  subscribe(appliance, city.cityId, 'mama.tanaka@docomo.ne.jp')
  const broadcast = appliance.submit({
    organisationId: city.cityId, subject: SUBJECT, body: '本文です。', priority: 'normal', targets: {}, createdBy: 'test'
  })
  await appliance.finished(broadcast.id)
  const raw = (simulators.docomo?.received[0]?.raw as Buffer).toString('latin1')

  const published = resolverFor(records.dkim.name, records.dkim.value)
  const wrongKey = await dkimVerify(Buffer.from(raw, 'latin1'), {
    resolver: resolverFor(records.dkim.name, other.records.dkim.value)
  })
  t.not(wrongKey.results[0]?.status.result, 'pass', 'a key the sender does not hold does not verify it')
  // The body is base64: its first four characters changed are a different text, same length.
  const altered = raw.replace(/\r\n\r\n[A-Za-z0-9+/]{4}/, '\r\n\r\nQUFB')
  t.not(altered, raw)
  const tampered = await dkimVerify(Buffer.from(altered, 'latin1'), { resolver: published })
  t.not(tampered.results[0]?.status.result, 'pass', 'an altered body does not verify')
})
