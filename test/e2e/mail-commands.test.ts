// Mail-in commands end to end: a teacher's phone mails the appliance's inbound SMTP service, the
// preview and every refusal come back through the carrier gateway simulators, and a confirmed
// command reaches the parents there.

import t, { type Test } from 'tap'
import iconv from 'iconv-lite'
import { simpleParser, type ParsedMail } from 'mailparser'
import { Appliance } from '../../appliance/appliance.js'
import { startAppliance, startSimulators, testConfig, waitFor, type Harness } from '../helpers.js'
import { sendMessage } from '../smtp-session.js'
import { parseAddress } from '../../appliance/address.js'
import { StaffBook } from '../../appliance/staff.js'
import { auditEvents } from '../../appliance/audit-log.js'
import { createSampleCity } from '../../ops/sample-city.js'
import type { GatewaySimulator } from '../../ops/gateway-simulator.js'
import pino from 'pino'

const DOMAIN = 'mimamori.example.jp'
const TEACHER = 'yamada-sensei@docomo.ne.jp'
const PARENTS = ['oya1@docomo.ne.jp', 'oya2@au.com', 'oya3@softbank.ne.jp', 'oya4@gmail.com']
const OTHER_CLASS_PARENT = 'oya9@docomo.ne.jp'

interface Scene extends Harness {
  port: number
  secret: string
  commandAddress: string
}

/** The sample city with four parents in 東小 1年2組, one in 2年1組, and a sender for 1年2組. */
async function scene (t: Test, config: Record<string, unknown> = {}, pin?: string): Promise<Scene> {
  const harness = await startAppliance(t, { inbound: true, config })
  const { appliance, city } = harness
  const groups = city.groups['higashi-es'] as Record<string, string>
  const add = (address: string, group: string): void => {
    const { subscriber } = appliance.directory.upsertSubscriber({ address: parseAddress(address) })
    appliance.directory.addMembership(subscriber.id, 'higashi-es', group)
  }
  for (const parent of PARENTS) add(parent, groups['1年/2組'] as string)
  add(OTHER_CLASS_PARENT, groups['2年/1組'] as string)

  const made = await new StaffBook(appliance.directory).create({
    login: 'yamada', name: '山田 先生', role: 'sender', organisationId: 'higashi-es',
    groups: [groups['1年/2組'] as string], addresses: [TEACHER], ...(pin === undefined ? {} : { pin })
  })
  return {
    ...harness,
    port: appliance.inboundPort as number,
    secret: made.commandSecret,
    commandAddress: `cmd+${made.commandSecret}@${DOMAIN}`
  }
}

/** A phone's mail: Shift_JIS body, subject as a Shift_JIS encoded word. */
function phoneMail (headers: { from: string, to: string, subject: string, extra?: string[] }, text: string): Buffer {
  const subject = `=?Shift_JIS?B?${iconv.encode(headers.subject, 'Shift_JIS').toString('base64')}?=`
  const head = [
    `From: ${headers.from}`, `To: ${headers.to}`, `Subject: ${subject}`,
    `Message-ID: <${Math.random().toString(36).slice(2)}@phone.docomo.ne.jp>`,
    'MIME-Version: 1.0', 'Content-Type: text/plain; charset=Shift_JIS', 'Content-Transfer-Encoding: 8bit',
    ...(headers.extra ?? [])
  ].join('\r\n')
  return Buffer.concat([Buffer.from(`${head}\r\n\r\n`), iconv.encode(text.replace(/\n/g, '\r\n') + '\r\n', 'Shift_JIS')])
}

async function mail (
  t: Test, s: Scene, to: string, subject: string, text: string, options: { from?: string, envelopeFrom?: string, extra?: string[] } = {}
): Promise<void> {
  const from = options.from ?? TEACHER
  const result = await sendMessage(t, s.port, {
    from: options.envelopeFrom ?? from, to: [to], data: phoneMail({ from, to, subject, extra: options.extra ?? [] }, text)
  })
  t.match(result.data, /^250/, 'the inbound service took the mail')
  await s.appliance.inbound.idle()
  await s.appliance.outbox.idle()
}

/** The mails the simulators have accepted for one address, parsed, oldest first. */
async function inbox (sims: Record<string, GatewaySimulator>, address: string): Promise<ParsedMail[]> {
  const raw = Object.values(sims).flatMap((s) => s.received)
    .filter((m) => m.rcptTo.some((r) => r.toLowerCase() === address.toLowerCase()))
    .sort((a, b) => a.at - b.at || a.seq - b.seq)
  return await Promise.all(raw.map(async (m) => await simpleParser(m.raw as Buffer)))
}

async function nextMail (s: Scene, address: string, count: number): Promise<ParsedMail> {
  await waitFor(() => Object.values(s.simulators).flatMap((x) => x.received)
    .filter((m) => m.rcptTo.includes(address)).length >= count)
  return (await inbox(s.simulators, address))[count - 1] as ParsedMail
}

function codeOf (preview: ParsedMail): string {
  const code = /確認コード (\d{6})/.exec(preview.text ?? '')?.[1]
  if (code === undefined) throw new Error(`no code in ${preview.text ?? ''}`)
  return code
}

async function parentsReached (s: Scene): Promise<number> {
  let n = 0
  for (const parent of [...PARENTS, OTHER_CLASS_PARENT]) n += (await inbox(s.simulators, parent)).length
  return n
}

/** Nothing reached a parent and no broadcast exists. */
async function nothingSent (t: Test, s: Scene): Promise<void> {
  t.equal(s.appliance.book.list().length, 0, 'no broadcast was submitted')
  t.equal(await parentsReached(s), 0, 'no parent received anything')
}

const COMMAND = '宛先: 1年2組\n優先度: 緊急\n\n本日15時ごろ、学校付近で不審者が目撃されました。\n集団下校します。'

t.test('a command from a teacher\'s phone: preview with counts, the code, the broadcast, the summary', async (t) => {
  const s = await scene(t)
  await mail(t, s, s.commandAddress, '不審者情報', COMMAND)

  const preview = await nextMail(s, TEACHER, 1)
  t.match(preview.subject, /^\[配信確認 #1\] 不審者情報$/)
  t.match(preview.text, /1年\/2組 — 4名/, 'the target with its recipient count')
  t.match(preview.text, /合計 4名/)
  t.match(preview.text, /優先度: 緊急/)
  t.match(preview.text, /集団下校します。/, 'the body as it will go out')
  t.equal(preview.replyTo?.value[0]?.address, s.commandAddress, 'replies go to the personal command address')
  t.equal(await parentsReached(s), 0, 'nothing is sent before the code comes back')

  const code = codeOf(preview)
  await mail(t, s, s.commandAddress, 'Re: [配信確認 #1] 不審者情報', `${code}\n\n> ${preview.text?.split('\n').join('\n> ') ?? ''}`)
  const accepted = await nextMail(s, TEACHER, 2)
  t.match(accepted.subject, /^\[配信開始 #1\]/)

  await waitFor(() => s.appliance.book.list()[0]?.status === 'done')
  for (const parent of PARENTS) {
    const got = await inbox(s.simulators, parent)
    t.equal(got.length, 1, `${parent} received the alert once`)
    t.equal(got[0]?.subject, '不審者情報')
    t.match(got[0]?.text, /集団下校します。/)
  }
  t.equal((await inbox(s.simulators, OTHER_CLASS_PARENT)).length, 0, 'another class was not sent to')
  const broadcast = s.appliance.book.list()[0]
  t.match(broadcast, { createdBy: 'yamada', priority: 'emergency', organisationId: 'higashi-es', total: 4 })

  const summary = await nextMail(s, TEACHER, 3)
  t.match(summary.subject, /^\[配信結果 #1\] 不審者情報$/)
  t.match(summary.text, /配信完了: 4名/)
  t.match(summary.text, /失敗: 0名/)

  const actions = auditEvents(s.appliance.store, { action: 'command.' }).map((e) => e.action).reverse()
  t.same(actions, ['command.preview', 'command.confirm', 'command.summary'], 'each step is audited')
  t.notMatch(JSON.stringify(auditEvents(s.appliance.store)), /yamada-sensei|oya\d@/, 'no address in the audit log')
  t.equal(s.appliance.inbound.failed().length, 0, 'no handler failed')
})

t.test('a spoofed From without the secret: a plain reply to the real teacher, nothing sent', async (t) => {
  const s = await scene(t)
  await mail(t, s, `cmd@${DOMAIN}`, '不審者情報', COMMAND)
  const reply = await nextMail(s, TEACHER, 1)
  t.match(reply.subject, /^\[配信命令エラー\] 配信命令用アドレスか暗証番号が必要です/)
  t.match(reply.text, /何も配信していません/)
  await nothingSent(t, s)
  t.match(auditEvents(s.appliance.store)[0], { action: 'command.refused', detail: { reason: 'missing-secret' } })
})

t.test('the right From with a wrong secret, and an unregistered From, get the same words, once an hour', async (t) => {
  const s = await scene(t)
  const wrong = `cmd+${s.secret.slice(0, -1)}${s.secret.endsWith('a') ? 'b' : 'a'}@${DOMAIN}`
  await mail(t, s, wrong, '不審者情報', COMMAND)
  const stranger = 'stranger@au.com'
  await mail(t, s, s.commandAddress, '不審者情報', COMMAND, { from: stranger })

  const toTeacher = await nextMail(s, TEACHER, 1)
  const toStranger = await nextMail(s, stranger, 1)
  t.match(toTeacher.subject, /受け付けできません/)
  t.equal(toTeacher.text, toStranger.text, 'the reply does not tell which was wrong')
  t.equal(toTeacher.subject, toStranger.subject)

  await mail(t, s, wrong, '不審者情報', COMMAND)
  await mail(t, s, s.commandAddress, '不審者情報', COMMAND, { from: stranger })
  t.equal((await inbox(s.simulators, TEACHER)).length, 1, 'no second reply within the hour')
  t.equal((await inbox(s.simulators, stranger)).length, 1)
  await nothingSent(t, s)
  const reasons = auditEvents(s.appliance.store, { action: 'command.refused' }).map((e) => e.detail?.reason)
  t.same(reasons.sort(), ['not-registered', 'not-registered', 'wrong-secret', 'wrong-secret'], 'the audit log knows which')
})

t.test('a wrong code is refused and sends nothing', async (t) => {
  const s = await scene(t)
  await mail(t, s, s.commandAddress, '不審者情報', COMMAND)
  const code = codeOf(await nextMail(s, TEACHER, 1))
  const wrong = code === '000000' ? '111111' : '000000'
  await mail(t, s, s.commandAddress, 'Re: [配信確認 #1] 不審者情報', wrong)
  const reply = await nextMail(s, TEACHER, 2)
  t.match(reply.subject, /確認コードが違います/)
  t.match(reply.text, /あと4回/)
  await nothingSent(t, s)
})

t.test('an expired code is refused and sends nothing', async (t) => {
  const s = await scene(t, { commands: { confirmMinutes: 0.005 } })
  await mail(t, s, s.commandAddress, '不審者情報', COMMAND)
  const preview = await nextMail(s, TEACHER, 1)
  t.match(preview.text, /（\d+秒）/, 'the preview states the short limit')
  const expires = Date.parse(s.appliance.store.mailCommands.get(1).expiresAt as string)
  await waitFor(() => Date.now() > expires + 20)
  await mail(t, s, s.commandAddress, 'Re: [配信確認 #1] 不審者情報', codeOf(preview))
  const reply = await nextMail(s, TEACHER, 2)
  t.match(reply.subject, /期限が切れました/)
  await nothingSent(t, s)
})

t.test('中止 cancels; the code afterwards is refused as used', async (t) => {
  const s = await scene(t)
  await mail(t, s, s.commandAddress, '不審者情報', COMMAND)
  const code = codeOf(await nextMail(s, TEACHER, 1))
  await mail(t, s, s.commandAddress, 'Re: [配信確認 #1] 不審者情報', '中止')
  t.match((await nextMail(s, TEACHER, 2)).subject, /^\[配信中止 #1\]/)
  await mail(t, s, s.commandAddress, 'Re: [配信確認 #1] 不審者情報', code)
  t.match((await nextMail(s, TEACHER, 3)).text, /中止されています/)
  await nothingSent(t, s)
})

t.test('by default the code must come back within 15 minutes', async (t) => {
  const s = await scene(t)
  t.equal(s.config.commands.confirmMinutes, 15, 'the default configuration says 15 minutes')
  await mail(t, s, s.commandAddress, '不審者情報', COMMAND)
  const preview = await nextMail(s, TEACHER, 1)
  t.match(preview.text, /（15分）/)
  t.match(preview.text, /within 15 min/)
  const command = s.appliance.store.mailCommands.get(1) as { createdAt: string, expiresAt: string }
  t.equal(Date.parse(command.expiresAt) - Date.parse(command.createdAt), 15 * 60_000, 'the stored limit')
})

// What anyone who knows a teacher's address can send: her From, a plausible subject, no secret.
const FORGED_REPLY = 'Re: [配信確認 #1] 不審者情報'

t.test('a forged 中止 or forged codes without the secret change nothing; the real code then sends', async (t) => {
  const s = await scene(t)
  await mail(t, s, s.commandAddress, '不審者情報', COMMAND)
  const code = codeOf(await nextMail(s, TEACHER, 1))
  const wrong = code === '000000' ? '111111' : '000000'
  const plain = `cmd@${DOMAIN}`

  await mail(t, s, plain, FORGED_REPLY, '中止')
  await mail(t, s, plain, FORGED_REPLY, 'cancel')
  for (let i = 0; i < 6; i++) await mail(t, s, plain, FORGED_REPLY, wrong)
  await mail(t, s, `cmd+abcdefghjkmnpqrs@${DOMAIN}`, FORGED_REPLY, '中止')
  t.match(s.appliance.store.mailCommands.get(1), { state: 'pending', wrongCodes: 0 },
    'the command still waits, and no forged code counted against it')
  t.equal((await inbox(s.simulators, TEACHER)).length, 2, 'the preview and one refusal notice, no more')

  t.equal(auditEvents(s.appliance.store, { action: 'command.cancel' }).length, 0, 'nothing was cancelled')
  const refused = auditEvents(s.appliance.store, { action: 'command.refused' })
  t.ok(refused.every((e) => e.actor === 'mail:ya***@docomo.ne.jp'), 'a forged mail is not the teacher\'s act')
  t.same(refused.map((e) => e.detail?.reason).sort(),
    [...Array(8).fill('missing-secret'), 'wrong-secret'].sort(), 'each forgery audited with its reason')

  await mail(t, s, s.commandAddress, FORGED_REPLY, code)
  t.match((await nextMail(s, TEACHER, 3)).subject, /^\[配信開始 #1\]/, 'the real confirmation sends')
  await waitFor(() => s.appliance.book.list()[0]?.status === 'done')
  for (const parent of PARENTS) t.equal((await inbox(s.simulators, parent)).length, 1, `${parent} got the alert`)
})

t.test('a flood of forged commands from a teacher\'s From does not stop her real command', async (t) => {
  const s = await scene(t)
  const perHour = s.config.commands.perHour
  const flood = 25
  t.ok(flood > perHour && flood > 20, 'more forgeries than the allowance and the refusal cap')
  for (let i = 0; i < flood; i++) await mail(t, s, `cmd@${DOMAIN}`, `偽の配信${i}`, COMMAND)

  await mail(t, s, s.commandAddress, '不審者情報', COMMAND)
  const [notice, preview, ...more] = await inbox(s.simulators, TEACHER)
  t.match(notice?.subject, /配信命令用アドレスか暗証番号が必要です/, 'one notice for the whole flood')
  t.match(preview?.subject, /^\[配信確認 #1\] 不審者情報$/, 'the real command is previewed')
  t.equal(more.length, 0)

  await mail(t, s, s.commandAddress, 'Re: [配信確認 #1] 不審者情報', codeOf(preview as ParsedMail))
  t.match((await nextMail(s, TEACHER, 3)).subject, /^\[配信開始 #1\]/)
  await waitFor(() => s.appliance.book.list()[0]?.status === 'done')
  t.equal(await parentsReached(s), PARENTS.length, 'the alert reached the class')

  const refused = auditEvents(s.appliance.store, { action: 'command.refused' })
  const dropped = refused.filter((e) => e.detail?.dropped === true)
  t.equal(refused.length - dropped.length, 20, 'refusals audited one by one up to the cap')
  t.match(dropped, [{ detail: { reason: 'missing-secret', cap: 'sender', limit: 20 } }],
    'then the flood is recorded once, and the rest dropped unanswered')
})

t.test('a group outside the sender\'s role is refused before any preview', async (t) => {
  const s = await scene(t)
  await mail(t, s, s.commandAddress, '連絡', '宛先: 2年1組\n\n明日は遠足です。')
  const reply = await nextMail(s, TEACHER, 1)
  t.match(reply.subject, /この宛先には配信できません/)
  t.match(reply.text, /2年\/1組/)
  await mail(t, s, s.commandAddress, '連絡', '宛先: 全校\n\n明日は遠足です。')
  t.match((await nextMail(s, TEACHER, 2)).text, /whole organisation/)
  await nothingSent(t, s)
})

t.test('a grammar error and an unknown group are named with their line', async (t) => {
  const s = await scene(t)
  await mail(t, s, s.commandAddress, '連絡', '宛先: 1年2組\nあしたは雨\n\n本文')
  t.match((await nextMail(s, TEACHER, 1)).text, /2行目: 「あしたは雨」は読めません/)
  await mail(t, s, s.commandAddress, '連絡', '優先度: 通常\n宛先: 1年2組 ９年９組\n\n本文')
  t.match((await nextMail(s, TEACHER, 2)).text, /2行目: 「9年9組」という宛先は松山市立東小学校にありません/)
  await nothingSent(t, s)
})

t.test('a PIN line lets a teacher write to plain cmd@, and confirm there with the PIN again', async (t) => {
  const s = await scene(t, {}, '481516')
  const plain = `cmd@${DOMAIN}`
  await mail(t, s, plain, '連絡', `暗証番号: 000000\n${COMMAND}`)
  t.match((await nextMail(s, TEACHER, 1)).subject, /受け付けできません/)
  await mail(t, s, plain, '連絡', `暗証番号: ４８１５１６\n${COMMAND}`)
  const preview = await nextMail(s, TEACHER, 2)
  t.match(preview.subject, /^\[配信確認 #1\]/)
  t.equal(preview.replyTo?.value[0]?.address, plain)
  t.match(preview.text, /返信にも「暗証番号: 1234」の行/, 'the preview asks for the PIN in the reply')

  const code = codeOf(preview)
  await mail(t, s, plain, 'Re: [配信確認 #1] 連絡', code)
  t.equal(s.appliance.store.mailCommands.get(1).state, 'pending', 'a code without the PIN is not taken')
  await mail(t, s, plain, 'Re: [配信確認 #1] 連絡', `暗証番号: 481516\n${code}`)
  t.match((await nextMail(s, TEACHER, 3)).subject, /^\[配信開始 #1\]/)
  await waitFor(() => s.appliance.book.list()[0]?.status === 'done')
  t.equal(await parentsReached(s), PARENTS.length)
})

t.test('auto-replies and null senders get no answer at all', async (t) => {
  const s = await scene(t)
  await mail(t, s, s.commandAddress, '不在通知', COMMAND, { extra: ['Auto-Submitted: auto-replied'] })
  await mail(t, s, s.commandAddress, '不審者情報', COMMAND, { envelopeFrom: '' })
  await mail(t, s, s.commandAddress, '不審者情報', COMMAND, { from: `alert@${DOMAIN}` })
  t.equal((await inbox(s.simulators, TEACHER)).length, 0)
  t.equal(s.appliance.store.mailCommands.getKeysCount(), 0)
  await nothingSent(t, s)
})

t.test('commands are rate-limited per sender, with one notice', async (t) => {
  const s = await scene(t, { commands: { perHour: 2 } })
  for (let i = 0; i < 4; i++) await mail(t, s, s.commandAddress, `連絡${i}`, COMMAND)
  const got = await inbox(s.simulators, TEACHER)
  t.equal(got.length, 3, 'two previews and one notice')
  t.match(got[2]?.subject, /配信命令が多すぎます/)
  t.equal(s.appliance.store.mailCommands.getKeysCount(), 2)
})

t.test('after a restart: an owed summary is mailed, an interrupted confirmation is found or reported', async (t) => {
  const simulators = await startSimulators(t)
  const config = testConfig(t.testdir(), simulators, { smtp: { port: 0 } })
  const first = Appliance.open(config, { log: pino({ level: 'silent' }) })
  createSampleCity(first.directory)
  const { subscriber } = first.directory.upsertSubscriber({ address: parseAddress(PARENTS[0] as string) })
  first.directory.addMembership(subscriber.id, 'higashi-es')
  const decidedAt = new Date(Date.now() - 1000).toISOString()
  const broadcast = first.submit({
    organisationId: 'higashi-es', subject: '連絡', body: '本文', priority: 'normal', targets: {}, createdBy: 'yamada'
  })
  const other = first.submit({
    organisationId: 'higashi-es', subject: 'お知らせ', body: '本文', priority: 'bulk', targets: {}, createdBy: 'yamada'
  })
  await first.finished(broadcast.id)
  await first.finished(other.id)
  const record = (id: number, subject: string, extra: Record<string, unknown>): void => {
    first.store.mailCommands.putSync(id, {
      id, staffId: 1, login: 'yamada', fromIndex: 'x', sealedFrom: first.vault.seal(TEACHER),
      commandAddress: `cmd@${DOMAIN}`, organisationId: 'higashi-es', targets: {}, counts: [], total: 1,
      excluded: 0, subject, body: '本文', priority: 'normal', codeHash: 'x', wrongCodes: 0, createdAt: decidedAt,
      expiresAt: decidedAt, state: 'submitted', decidedAt, ...extra
    })
  }
  // As if the process stopped after the broadcast ended, before its summary went out (#7), and
  // between taking a code and recording the broadcast, once after the submit (#8), once before (#9).
  record(7, '連絡', { broadcastId: broadcast.id, summaryOwed: true })
  record(8, 'お知らせ', {})
  record(9, '別件', {})
  await first.close()

  const second = Appliance.open(config, { log: pino({ level: 'silent' }) })
  t.teardown(async () => { await second.close() })
  await waitFor(() => (simulators.docomo?.received.filter((m) => m.rcptTo.includes(TEACHER)).length ?? 0) >= 3)
  await second.outbox.idle()
  const subjects = (await inbox(simulators, TEACHER)).map((m) => m.subject).sort()
  t.same(subjects, ['[配信命令エラー] 配信を開始できませんでした — 別件', '[配信結果 #7] 連絡', '[配信結果 #8] お知らせ'],
    'a summary for each broadcast and a notice for the command that never started')
  t.equal(second.store.mailCommands.get(7).summaryOwed, false, 'the summary is no longer owed')
  t.equal(second.store.mailCommands.get(8).broadcastId, other.id, 'the submitted broadcast was found')
  t.equal(second.store.mailCommands.get(9).state, 'failed')
})
