import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { classifyBounce, type BounceReport } from '../../../appliance/inbound/bounce-classifier.js'
import type { BounceReason } from '../../../appliance/inbound/bounce-patterns.js'

// The real bounce set and its verdicts (test/fixtures/bounces/MANIFEST.md): hard=true is hard;
// delivered, vacation, feedback and the not/ files are no bounce; everything else is soft.
const FIXTURES = new URL('../../fixtures/bounces/', import.meta.url)

interface Expected { file: string, rows: Array<{ verdict: 'hard' | 'soft' | 'none', reason: string }> }

function manifest (): Expected[] {
  const text = readFileSync(new URL('MANIFEST.md', FIXTURES), 'utf8')
  const out: Expected[] = []
  for (const line of text.split('\n')) {
    const cells = line.split('|').map((c) => c.trim())
    const file = cells[1] ?? ''
    if (!/^(?:bsd|dos|mac|not)\/.+\.eml$/.test(file)) continue
    const expected = cells[4] ?? ''
    if (file.startsWith('not/')) {
      out.push({ file, rows: [{ verdict: 'none', reason: 'not-a-bounce' }] })
      continue
    }
    const rows = [...expected.matchAll(/\*\*(\w+)\*\* \/ hard=(true|false)/g)].map((m) => {
      const reason = m[1] ?? ''
      const none = reason === 'delivered' || reason === 'vacation' || reason === 'feedback'
      return { verdict: none ? 'none' as const : m[2] === 'true' ? 'hard' as const : 'soft' as const, reason }
    })
    out.push({ file, rows })
  }
  return out
}

// sisimai's reason names → ours. Several of theirs are one of ours: a bad reputation, a missing
// PTR record and too many connections are all the receiving side blocking our server.
const REASONS: Record<string, BounceReason[]> = {
  userunknown: ['user-unknown'],
  hasmoved: ['user-unknown'],
  hostunknown: ['host-unknown'],
  mailboxfull: ['mailbox-full'],
  filtered: ['filtered'],
  suspend: ['suspended'],
  rejected: ['rejected'],
  blocked: ['blocked'],
  badreputation: ['blocked'],
  requireptr: ['blocked'],
  toomanyconn: ['blocked'],
  expired: ['expired'],
  mesgtoobig: ['message-too-big'],
  exceedlimit: ['message-too-big'],
  spamdetected: ['spam'],
  virusdetected: ['spam'],
  policyviolation: ['policy'],
  authfailure: ['policy'],
  failedstarttls: ['policy'],
  notcompliantrfc: ['policy'],
  syntaxerror: ['system'],
  systemerror: ['system'],
  networkerror: ['network'],
  // sisimai's "cannot tell yet"
  onhold: ['other', 'system', 'network'],
  delivered: ['delivered'],
  vacation: ['vacation'],
  feedback: ['feedback']
}

function verdictOf (report: BounceReport, index: number): 'hard' | 'soft' | 'none' {
  if (report.kind !== 'bounce') return 'none'
  return report.recipients[index]?.verdict ?? report.recipients[0]?.verdict ?? 'soft'
}

t.test('bounce verdicts and reasons on the real bounce set reach the required accuracy', async (t) => {
  const cases = manifest()
  t.ok(cases.length >= 75, `the manifest lists the set (${cases.length} files)`)
  let recipients = 0
  let verdicts = 0
  let reasons = 0
  const misses: string[] = []

  for (const { file, rows } of cases) {
    const report = await classifyBounce(readFileSync(new URL(file, FIXTURES)))
    rows.forEach((row, i) => {
      recipients++
      const verdict = verdictOf(report, i)
      const got = report.recipients[i] ?? report.recipients[0]
      const reason = report.kind === 'bounce' ? got?.reason : report.kind
      const reasonOk = row.reason === 'not-a-bounce'
        ? report.kind !== 'bounce'
        : (REASONS[row.reason] ?? []).includes(reason as BounceReason) ||
          (row.reason === 'vacation' && report.kind === 'vacation')
      if (verdict === row.verdict) verdicts++
      if (reasonOk) reasons++
      if (verdict !== row.verdict || !reasonOk) {
        misses.push(`${file}#${i + 1}: expected ${row.verdict}/${row.reason}, got ${verdict}/${reason}`)
      }
    })
  }

  t.comment(misses.join('\n'))
  t.ok(verdicts / recipients >= 0.95, `verdict right for ${verdicts} of ${recipients} recipients`)
  t.ok(reasons / recipients >= 0.85, `reason right for ${reasons} of ${recipients} recipients`)
})

t.test('the same bounce with LF, CRLF or CR-only line ends is read alike', async (t) => {
  const names = ['lhost-ezweb-01.eml', 'lhost-kddi-01.eml']
  for (const name of names) {
    const bsd = await classifyBounce(readFileSync(new URL(`bsd/${name}`, FIXTURES)))
    for (const other of ['dos', 'mac']) {
      let raw: Buffer
      try {
        raw = readFileSync(new URL(`${other}/${name}`, FIXTURES))
      } catch {
        continue
      }
      const report = await classifyBounce(raw)
      t.same(report.recipients.map((r) => [r.verdict, r.reason]), bsd.recipients.map((r) => [r.verdict, r.reason]),
        `${other}/${name}`)
    }
  }
})

t.test('a DSN names each failed recipient with its status and the server reply', async (t) => {
  const report = await classifyBounce(readFileSync(new URL('bsd/lhost-postfix-13.eml', FIXTURES)))
  t.equal(report.kind, 'bounce')
  t.equal(report.recipients.length, 2)
  t.match(report.recipients[0], { verdict: 'hard', reason: 'user-unknown', status: '5.2.1', replyCode: 550 })
  t.match(report.recipients[1], { verdict: 'soft', reason: 'mailbox-full', status: '5.2.2' })
  t.match(report.recipients[0]?.address, /@/)
})

t.test('a legacy quoted carrier address in Final-Recipient is read without its quotes', async (t) => {
  const report = await classifyBounce(readFileSync(new URL('bsd/lhost-postfix-32.eml', FIXTURES)))
  t.equal(report.kind, 'bounce')
  t.match(report.recipients[0]?.address, /^neko\.\.\.\.[^"]*@/)
})

t.test('a feedback report is a complaint with its type, never a bounce', async (t) => {
  const abuse = await classifyBounce(readFileSync(new URL('bsd/arf-01.eml', FIXTURES)))
  t.equal(abuse.kind, 'feedback')
  t.equal(abuse.feedbackType, 'abuse')
  const optOut = await classifyBounce(readFileSync(new URL('bsd/arf-12.eml', FIXTURES)))
  t.equal(optOut.feedbackType, 'opt-out')
})

t.test('the classifier is total: broken, empty and hostile input get a verdict, never a throw', async (t) => {
  const inputs: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['binary', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256))],
    ['no body', Buffer.from('From: MAILER-DAEMON@example.jp\r\nSubject: Undelivered Mail\r\n')],
    ['a DSN part with nothing in it', Buffer.from([
      'From: MAILER-DAEMON@example.jp', 'Content-Type: multipart/report; report-type=delivery-status; boundary=b', '',
      '--b', 'Content-Type: message/delivery-status', '', '', '--b--', ''
    ].join('\r\n'))],
    ['a huge header', Buffer.from(`Subject: ${'あ'.repeat(300_000)}\r\n\r\nbody`)],
    ['broken SES JSON', Buffer.from('From: x@example.jp\r\n\r\n{"notificationType":"Bounce", "bounce": [')],
    ['deep nesting', Buffer.from(`Content-Type: multipart/mixed; boundary=a\r\n\r\n${'--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n'.repeat(2000)}`)]
  ]
  for (const [name, raw] of inputs) {
    const report = await classifyBounce(raw)
    t.ok(['bounce', 'feedback', 'delivered', 'vacation', 'other'].includes(report.kind), name)
    t.ok(Array.isArray(report.recipients), `${name}: recipients listed`)
  }
})

t.test('an ordinary mail to the return path is no bounce, whatever its words', async (t) => {
  const raw = Buffer.from([
    'From: papa@docomo.ne.jp', 'To: bounce+abc@mimamori.example.jp', 'Subject: Re: 通行止め',
    'Content-Type: text/plain; charset=UTF-8', '', '道路が blocked と聞きました。user unknown?', ''
  ].join('\r\n'))
  const report = await classifyBounce(raw)
  t.equal(report.kind, 'other')
})

t.test('a message/global-delivery-status report (RFC 6533) is read like the classic one, UTF-8 and all', async (t) => {
  // written for this project (MANIFEST.md, last section): a Japanese ISP's Postfix answering in UTF-8
  const report = await classifyBounce(readFileSync(new URL('written/global-dsn-01.eml', FIXTURES)))
  t.equal(report.kind, 'bounce')
  t.equal(report.recipients.length, 1)
  t.match(report.recipients[0], {
    address: 'hanako.yamada@mail.example.ne.jp', verdict: 'hard', reason: 'user-unknown', status: '5.1.1', replyCode: 550
  })
  t.match(report.recipients[0]?.diagnostic, /User unknown in virtual mailbox table \(宛先不明\)$/,
    'the diagnostic comes from the global report, its UTF-8 read as UTF-8')
})

// ---- a seeded fuzz: the classifier is total -------------------------------------------------

/** mulberry32: a small seeded generator, so a failing input can be made again from its seed. */
function random (seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const TYPES = ['text/plain', 'text/html', 'message/delivery-status', 'message/global-delivery-status',
  'message/feedback-report', 'message/rfc822', 'message/global-headers', 'text/rfc822-headers',
  'application/octet-stream', 'multipart/report', 'multipart/mixed', 'multipart/alternative']
const CHARSETS = ['utf-8', 'iso-2022-jp', 'shift_jis', 'windows-31j', 'euc-jp', 'utf-7', 'x-unknown', '', '"']
const ENCODINGS = ['7bit', '8bit', 'base64', 'quoted-printable', 'binary', 'x-uuencode']
const FIELDS = ['Final-Recipient: rfc822; ', 'Original-Recipient: utf-8; ', 'Action: ', 'Status: ',
  'Diagnostic-Code: smtp; ', 'Feedback-Type: ', 'X-Failed-Recipients: ', 'Subject: ', 'From: MAILER-DAEMON@',
  'Auto-Submitted: ', 'Content-Type: message/delivery-status', '{"notificationType":"Bounce","bounce":']
const WORDS = ['550', '5.1.1', '4.2.2', 'user unknown', 'mailbox full', 'failed', 'delayed', 'delivered',
  'taro..yamada.@docomo.ne.jp', '"a b"@au.com', '@@', ';', '\x1b$B', '受信拒否', '宛先不明', '=?UTF-8?B?5a6b?=', '\0']

function pick<T> (next: () => number, list: readonly T[]): T {
  return list[Math.floor(next() * list.length)] as T
}

function randomBytes (next: () => number, max: number): Buffer {
  return Buffer.from(Array.from({ length: Math.floor(next() * max) }, () => Math.floor(next() * 256)))
}

function randomText (next: () => number, lines: number): string {
  return Array.from({ length: lines }, () =>
    next() < 0.5 ? `${pick(next, FIELDS)}${pick(next, WORDS)} ${pick(next, WORDS)}` : pick(next, WORDS)).join('\r\n')
}

/** A mail of random MIME structure: nested parts, any type, charset and encoding, cut boundaries. */
function randomMime (next: () => number, depth = 0): string {
  const type = pick(next, TYPES)
  const head = [`Content-Type: ${type}; charset=${pick(next, CHARSETS)}; boundary="b${depth}"`,
    `Content-Transfer-Encoding: ${pick(next, ENCODINGS)}`]
  if (!type.startsWith('multipart/') || depth > 4) {
    return [...head, '', next() < 0.2 ? randomBytes(next, 300).toString('latin1') : randomText(next, 1 + Math.floor(next() * 12))].join('\r\n')
  }
  const parts = Array.from({ length: Math.floor(next() * 4) }, () => `--b${depth}\r\n${randomMime(next, depth + 1)}`)
  const close = next() < 0.7 ? [`--b${depth}--`] : []
  return [...head, '', ...parts, ...close].join('\r\n')
}

function realBounces (): Buffer[] {
  return ['bsd', 'dos', 'mac', 'not', 'written'].flatMap((dir) =>
    readdirSync(new URL(`${dir}/`, FIXTURES)).map((name) => readFileSync(new URL(`${dir}/${name}`, FIXTURES))))
}

t.test('the classifier never throws: seeded random input of every kind always gets a verdict', async (t) => {
  const next = random(20250610)
  const real = realBounces()
  const kinds = ['a truncated real bounce', 'a real bounce with bytes flipped', 'random bytes', 'random MIME']
  const counts: Record<string, number> = {}
  const bad: string[] = []
  for (let i = 0; i < 400; i++) {
    const kind = kinds[i % kinds.length] as string
    let raw: Buffer
    if (kind === 'random bytes') {
      raw = randomBytes(next, 4096)
    } else if (kind === 'random MIME') {
      const top = `From: ${pick(next, WORDS)}\r\nSubject: ${pick(next, WORDS)}\r\nMIME-Version: 1.0\r\n`
      raw = Buffer.from(top + randomMime(next), 'latin1')
    } else {
      const source = pick(next, real)
      raw = Buffer.from(source.subarray(0, Math.floor(next() * source.length)))
      if (kind !== 'a truncated real bounce') {
        for (let n = 0; n < 20; n++) raw[Math.floor(next() * raw.length)] = Math.floor(next() * 256)
      }
    }
    let report: BounceReport
    try {
      report = await classifyBounce(raw)
    } catch (err) {
      bad.push(`input ${i} (${kind}) threw ${String(err)}`)
      continue
    }
    const ok = ['bounce', 'feedback', 'delivered', 'vacation', 'other'].includes(report.kind) &&
      Array.isArray(report.recipients) &&
      report.recipients.every((r) => ['hard', 'soft', 'none'].includes(r.verdict) && typeof r.reason === 'string')
    if (!ok) bad.push(`input ${i} (${kind}) gave ${JSON.stringify(report).slice(0, 200)}`)
    counts[report.kind] = (counts[report.kind] ?? 0) + 1
  }
  t.same(bad, [], 'each of the 400 inputs got a verdict')
  t.comment(JSON.stringify(counts))
  t.ok((counts.bounce ?? 0) > 0 && (counts.other ?? 0) > 0, 'the inputs reached both bounce and non-bounce verdicts')
})
