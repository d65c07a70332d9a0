// `mimamori inspect-mail` as an operator runs it (compiled CLI: `npm run build` first), on real
// bounces and carrier mails from test/fixtures and on mails made here.

import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Encoding from 'encoding-japanese'
import { CLI, parseJson, runCli, writeConfig, type CliResult } from './cli-process.js'

const DOMAIN = 'alert.city.example.jp'
const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url))
const BOUNCES = join(FIXTURES, 'bounces', 'bsd')
const SOFTBANK_BLANK = join(FIXTURES, 'jp-mail', 'softbank-blank.eml')

// shaped like the appliance's own secrets: a 27-character recipient token, a 16-character
// staff command secret
const TOKEN = 'AAAAAQAAAAKxY2tHq9RvZ3bJmPq'
const SECRET = 'k7mq2xw9tr4bn8vd'

function configIn (t: Test): string {
  return writeConfig(t.testdir(), { mailDomain: DOMAIN })
}

async function inspect (t: Test, args: string[]): Promise<any> {
  const result = await runCli(t, ['inspect-mail', ...args])
  t.equal(result.code, 0, `exit 0 (${result.stderr.trim()})`)
  return parseJson(t, result)
}

/** Runs `mimamori inspect-mail -` with the mail on standard input (runCli gives none). */
async function inspectStdin (t: Test, raw: Buffer, args: string[]): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('MIMAMORI_')) env[name] = value
  }
  env.LOG_LEVEL = 'silent'
  const child = spawn(process.execPath, [CLI, 'inspect-mail', '-', ...args], { env })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  child.stdin.end(raw)
  const [code, signal] = await once(child, 'close')
  return { code, signal, stdout, stderr }
}

/** A phone mail in ISO-2022-JP, subject and text, as docomo and au still send them. */
function iso2022jpMail (headers: string[], subject: string, text: string): Buffer {
  const jis = (value: string): Buffer =>
    Buffer.from(Encoding.convert(value, { to: 'JIS', from: 'UNICODE', type: 'array' }))
  return Buffer.concat([
    Buffer.from([
      ...headers,
      'From: =?ISO-2022-JP?B?' + jis('山田太郎').toString('base64') + '?= <taro.yamada@docomo.ne.jp>',
      'Subject: =?ISO-2022-JP?B?' + jis(subject).toString('base64') + '?=',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=ISO-2022-JP',
      'Content-Transfer-Encoding: 7bit',
      '', ''
    ].join('\r\n'), 'latin1'),
    jis(text.replace(/\n/g, '\r\n'))
  ])
}

t.test('a carrier bounce (au, user unknown) is a bounce with a hard user-unknown recipient, masked', async (t) => {
  const file = join(BOUNCES, 'rhost-kddi-02.eml')
  const result = await runCli(t, ['inspect-mail', file, '--config', configIn(t)])
  const out = parseJson(t, result)
  t.equal(result.code, 0)
  t.equal(out.kind, 'bounce')
  t.notOk('tag' in out, 'no address of ours named it, so no tag')
  t.equal(out.from, 'po***@libsisimai.org')
  t.equal(out.subject, 'Returned mail: see transcript for details')
  t.equal(out.autoSubmitted, true)
  t.equal(out.bounce.kind, 'bounce')
  t.match(out.bounce.recipients, [{
    address: 'ot***@au.com', verdict: 'hard', reason: 'user-unknown', status: '5.1.1',
    replyCode: 550
  }])
  t.equal(out.bounce.recipients.length, 1)
  t.notMatch(JSON.stringify(out.bounce), /otsu-sakaba/, 'the diagnostic masks the address too')
})

t.test('an RFC 3834 vacation reply is reported as an auto-reply, with no hard or soft verdict', async (t) => {
  const out = await inspect(t, [join(BOUNCES, 'rfc3834-01.eml'), '--config', configIn(t)])
  t.equal(out.subject, 'Away until May 5')
  t.equal(out.autoSubmitted, true)
  t.equal(out.kind, 'other', 'an auto-reply is no bounce')
  t.equal(out.bounce.kind, 'vacation')
  t.ok(out.bounce.recipients.every((r: { verdict: string }) => r.verdict === 'none'))
})

t.test('a blank SoftBank mail sent to entry@ is a sign-up, with an empty subject and no error', async (t) => {
  const out = await inspect(t, [SOFTBANK_BLANK, '--to', `entry@${DOMAIN}`, '--config', configIn(t)])
  t.equal(out.kind, 'signup')
  t.equal(out.recipient, `entry@${DOMAIN}`)
  t.equal(out.from, 'so***@softbank.ne.jp')
  t.equal(out.subject, '')
  t.equal(out.text.trim(), '')
  t.same(out.attachments, [])
  t.equal(out.autoSubmitted, false)
  t.notOk('bounce' in out)
})

t.test('a sign-up to entry+<organisation code>@ shows the code in full: it is not a secret', async (t) => {
  const to = `entry+higashi-es@${DOMAIN}`
  const out = await inspect(t, [SOFTBANK_BLANK, '--to', to, '--config', configIn(t)])
  t.equal(out.kind, 'signup')
  t.equal(out.tag, 'higashi-es')
})

t.test('an ISO-2022-JP reply found by its Delivered-To header is decoded, its token masked', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'reply.eml')
  writeFileSync(file, iso2022jpMail(
    [`Delivered-To: reply+${TOKEN}@${DOMAIN}`, 'To: =?UTF-8?B?5biC?= <info@city.example.jp>'],
    'Re: 【緊急】避難指示', '家族全員、小学校に避難しました。\n停止\n'
  ))
  const config = writeConfig(dir, { mailDomain: DOMAIN })
  const result = await runCli(t, ['inspect-mail', file, '--config', config])
  const out = parseJson(t, result)
  t.equal(out.kind, 'reply')
  t.equal(out.tag, `${TOKEN.slice(0, 4)}…`)
  t.equal(out.recipient, `reply+${TOKEN.slice(0, 4)}…@${DOMAIN}`)
  t.equal(out.subject, 'Re: 【緊急】避難指示')
  t.equal(out.text, '家族全員、小学校に避難しました。\n停止\n')
  t.equal(out.from, 'ta***@docomo.ne.jp')
  t.notOk(result.stdout.includes(TOKEN), 'the full token is printed nowhere')
  t.notOk(result.stdout.includes('taro.yamada'), 'nor the sender in clear')
})

t.test('a mail read from standard input to cmd+<secret>@ is a command; the secret never shows', async (t) => {
  const raw = iso2022jpMail([`To: cmd+${SECRET}@${DOMAIN}`], '送信', '本文\n')
  const result = await inspectStdin(t, raw, ['--config', configIn(t)])
  t.equal(result.code, 0, result.stderr)
  const out = parseJson(t, result)
  t.equal(out.kind, 'command')
  t.equal(out.tag, `${SECRET.slice(0, 4)}…`)
  t.equal(out.subject, '送信')
  t.notOk(result.stdout.includes(SECRET), 'the staff secret is printed nowhere')
})

t.test('--to wins over the headers, as the envelope does in the inbound service', async (t) => {
  const raw = iso2022jpMail([`To: cmd+${SECRET}@${DOMAIN}`], '件名', '本文\n')
  const to = `<bounce+${TOKEN}@${DOMAIN}>`
  const result = await inspectStdin(t, raw, ['--to', to, '--config', configIn(t)])
  const out = parseJson(t, result)
  t.equal(out.kind, 'bounce', 'the return path makes it a bounce whatever it says')
  t.equal(out.tag, `${TOKEN.slice(0, 4)}…`)
  t.same(out.bounce, { kind: 'other', recipients: [] }, 'and the classifier finds no bounce in it')
})

t.test('a bounce sent to bounce+<token>@ carries the classifier report too', async (t) => {
  const file = join(BOUNCES, 'lhost-postfix-13.eml')
  const out = await inspect(t, [file, '--to', `bounce+${TOKEN}@${DOMAIN}`, '--config', configIn(t)])
  t.equal(out.kind, 'bounce')
  t.match(out.bounce.recipients, [
    { address: 'ki***@example.jp', verdict: 'hard', reason: 'user-unknown' },
    { address: 'no***@example.jp', verdict: 'soft', reason: 'mailbox-full' }
  ])
})

t.test('--to at another domain is refused by the inbound service, so the content decides', async (t) => {
  const result = await runCli(t, [
    'inspect-mail', SOFTBANK_BLANK, '--to', 'entry@other.example.jp', '--config', configIn(t)
  ])
  t.equal(result.code, 0)
  t.equal(parseJson(t, result).kind, 'other')
  t.match(result.stderr, /not an address of the appliance at alert\.city\.example\.jp/)
})

t.test('a malformed mail is reported as what it is, not as an error', async (t) => {
  const raw = Buffer.from(
    '\u0000\u00ff garbage\r\n\r\n--\r\nContent-Type: multipart/mixed; boundary=', 'latin1')
  const result = await inspectStdin(t, raw, ['--config', configIn(t)])
  t.equal(result.code, 0, result.stderr)
  const out = parseJson(t, result)
  t.equal(out.kind, 'other')
  t.equal(out.subject, '')
  t.notOk('from' in out)
})

t.test('a missing file or a folder is refused in one line with its code, and nothing on stdout', async (t) => {
  const dir = t.testdir()
  for (const path of [join(dir, 'missing.eml'), dir]) {
    const result = await runCli(t, ['inspect-mail', path])
    t.equal(result.code, 1)
    t.equal(result.stdout, '')
    t.match(result.stderr, /^mimamori: cannot read .+ \(MIMAMORI_NOT_FOUND\)\n$/)
  }
})

t.test('inspect-mail without a file, or with two, prints its usage line', async (t) => {
  for (const args of [[], ['a.eml', 'b.eml']]) {
    const result = await runCli(t, ['inspect-mail', ...args])
    t.equal(result.code, 1)
    t.match(result.stderr, /usage: mimamori inspect-mail FILE\|- .*\(MIMAMORI_BAD_REQUEST\)\n$/)
  }
})
