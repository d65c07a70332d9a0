import t, { type Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import nodemailer from 'nodemailer'
import { startAppliance, waitFor } from '../../helpers.js'
import { openSmtp, plainMail, sendMessage } from '../../smtp-session.js'
import { makeToken } from '../../../appliance/recipient-token.js'
import type { Appliance } from '../../../appliance/appliance.js'
import type { InboundMail } from '../../../appliance/inbound/inbox.js'

const DOMAIN = 'mimamori.example.jp'

/** An appliance with SMTP on port 0 whose reply and bounce mail is only collected. */
async function collecting (t: Test, smtp: Record<string, unknown> = {}): Promise<{
  appliance: Appliance, port: number, mails: InboundMail[], token: string, bounceToken: string
}> {
  const { appliance } = await startAppliance(t, { inbound: true, config: { smtp: { port: 0, ...smtp } } })
  const mails: InboundMail[] = []
  const collect = async (mail: InboundMail): Promise<void> => { mails.push(mail) }
  appliance.inbound.on('reply', collect)
  appliance.inbound.on('bounce', collect)
  appliance.inbound.on('signup', collect)
  // Signed by this appliance's key: a well-formed token, whatever row it names.
  const token = makeToken(appliance.vault, { broadcastId: 1, seq: 0 })
  const bounceToken = makeToken(appliance.vault, { broadcastId: 1, seq: 0 }, 'bounce')
  return { appliance, port: appliance.inboundPort as number, mails, token, bounceToken }
}

const note = (subject: string, text = '本文です。'): string =>
  plainMail({ From: 'hanako@docomo.ne.jp', To: `entry@${DOMAIN}`, Subject: subject }, text)

t.test('a recipient at another domain is refused as relaying, and nothing is stored', async (t) => {
  const { appliance, port } = await collecting(t)
  const smtp = await openSmtp(t, port)
  await smtp.command('EHLO client.example.jp')
  t.match(await smtp.command('MAIL FROM:<hanako@docomo.ne.jp>'), /^250/)
  for (const to of ['someone@gmail.com', `someone@sub.${DOMAIN}`, `reply+x@${DOMAIN}.evil.jp`]) {
    t.equal(await smtp.command(`RCPT TO:<${to}>`), '550 5.7.1 Relaying denied', to)
  }
  t.match(await smtp.command('DATA'), /^503/, 'no recipient, no DATA')
  await smtp.quit()
  t.equal(appliance.store.inbox.getKeysCount(), 0)
})

t.test('an unknown local part, a missing tag and a forged token are refused at RCPT', async (t) => {
  const { port, token, bounceToken } = await collecting(t)
  const smtp = await openSmtp(t, port)
  await smtp.command('EHLO client.example.jp')
  await smtp.command('MAIL FROM:<hanako@docomo.ne.jp>')
  const forged = `${token.slice(0, -3)}${token.endsWith('AAA') ? 'BBB' : 'AAA'}`
  // each token opens only its own local part: a reader of a message cannot forge a bounce
  for (const local of ['nobody', 'alert', 'reply', 'bounce', `reply+${forged}`, `bounce+${forged}`,
    'reply+not-a-token', 'entry+bad/tag', 'postmaster+x', `bounce+${token}`, `reply+${bounceToken}`]) {
    t.equal(await smtp.command(`RCPT TO:<${local}@${DOMAIN}>`), '550 5.1.1 No such user here', local)
  }
  for (const local of ['entry', 'entry+higashi-es', 'cmd', `reply+${token}`, `bounce+${bounceToken}`,
    'postmaster', 'abuse', 'ENTRY']) {
    t.match(await smtp.command(`RCPT TO:<${local}@${DOMAIN}>`), /^250/, local)
  }
  t.match(await smtp.command('RCPT TO:<postmaster>'), /^250/, 'the bare postmaster of RFC 5321')
  await smtp.quit()
})

t.test('the service offers no AUTH and no STARTTLS, and advertises its size limit', async (t) => {
  const { port } = await collecting(t, { maxMessageBytes: 65536 })
  const smtp = await openSmtp(t, port)
  const ehlo = await smtp.command('EHLO client.example.jp') ?? ''
  t.match(ehlo, /^250-/)
  t.match(ehlo, /\n250[- ]SIZE 65536(\n|$)/)
  t.notMatch(ehlo, /AUTH|STARTTLS/)
  t.match(await smtp.command('AUTH PLAIN AGhhbmFrbwBwYXNz'), /^5\d\d /)
  t.match(await smtp.command('STARTTLS'), /^5\d\d /)
  await smtp.quit()
})

t.test('a message over the size limit is refused with 552 and nothing of it is kept', async (t) => {
  const { appliance, port, mails, token } = await collecting(t, { maxMessageBytes: 65536 })
  const big = note('大きすぎるメール', 'あ'.repeat(40_000))
  const sent = await sendMessage(t, port, { from: 'hanako@docomo.ne.jp', to: [`reply+${token}@${DOMAIN}`], data: big })
  t.match(sent.data, /^552 /)

  const declared = await openSmtp(t, port)
  await declared.command('EHLO client.example.jp')
  t.match(await declared.command('MAIL FROM:<hanako@docomo.ne.jp> SIZE=200000'), /^552 /,
    'a declared size over the limit is refused at MAIL FROM')
  await declared.quit()

  const small = await sendMessage(t, port, {
    from: 'hanako@docomo.ne.jp', to: [`reply+${token}@${DOMAIN}`], data: note('小さいメール')
  })
  t.match(small.data, /^250 /, 'the next message on a new connection goes through')
  await appliance.inbound.idle()
  t.equal(mails.length, 1, 'only the small message reached a handler')
  t.equal(mails[0]?.mail.subject, '小さいメール')
  t.equal(appliance.store.inbox.getKeysCount(), 0)
})

t.test('a bare LF "." line does not end DATA: a smuggled second message stays inside the first', async (t) => {
  const { appliance, port, mails, token } = await collecting(t)
  const to = `reply+${token}@${DOMAIN}`
  const smuggled = `MAIL FROM:<evil@example.net>\r\nRCPT TO:<${to}>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond\r\n`
  const attempts = ['\n.\n', '\n.\r\n', '\r\n.\n', '\r.\r\n', '\r\n.\r\r\n']

  for (const ending of attempts) {
    const smtp = await openSmtp(t, port)
    smtp.socket.setNoDelay(true)
    await smtp.command('EHLO client.example.jp')
    await smtp.command('MAIL FROM:<hanako@docomo.ne.jp>')
    await smtp.command(`RCPT TO:<${to}>`)
    t.match(await smtp.command('DATA'), /^354/)
    // The suspect ending goes in its own segment, as an attacker controlling TCP would send it.
    smtp.write(`From: hanako@docomo.ne.jp\r\nSubject: first ${JSON.stringify(ending)}\r\n\r\nfirst`)
    await new Promise((resolve) => setTimeout(resolve, 20))
    smtp.write(ending)
    await new Promise((resolve) => setTimeout(resolve, 20))
    smtp.write(`${smuggled}.\r\n`)
    t.match(await smtp.reply(), /^250 /, `${JSON.stringify(ending)}: one answer for the whole message`)
    t.equal(await smtp.command('NOOP'), '250 OK', 'the next reply is the NOOP\'s: no smuggled command ran')
    await smtp.quit()
  }

  await waitFor(() => mails.length >= attempts.length)
  await appliance.inbound.idle()
  t.equal(mails.length, attempts.length, 'one mail per connection, none smuggled')
  for (const mail of mails) {
    t.equal(mail.envelopeFrom, 'hanako@docomo.ne.jp')
    t.ok(mail.raw.includes('MAIL FROM:<evil@example.net>'), 'the smuggled commands are message text')
  }
})

t.test('a null sender (a bounce) and a quoted legacy carrier sender are accepted', async (t) => {
  const { appliance, port, mails, bounceToken } = await collecting(t)
  const bounce = await sendMessage(t, port, { from: '', to: [`bounce+${bounceToken}@${DOMAIN}`], data: note('Undelivered Mail') })
  t.match(bounce.mailFrom, /^250/)
  t.match(bounce.data, /^250 /)
  const legacy = await sendMessage(t, port, {
    from: '"taro..yamada."@docomo.ne.jp', to: [`entry@${DOMAIN}`], data: note('登録')
  })
  t.match(legacy.mailFrom, /^250/)
  t.match(legacy.data, /^250 /)

  await appliance.inbound.idle()
  t.same(mails.map((m) => [m.kind, m.envelopeFrom]), [
    ['bounce', ''], ['signup', '"taro..yamada."@docomo.ne.jp']
  ])
  t.equal(mails[0]?.tag, bounceToken)
})

t.test('nodemailer delivers a Japanese mail through the service to the right handler', async (t) => {
  const { appliance, port, mails, token } = await collecting(t)
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true })
  t.teardown(() => transport.close())
  const info = await transport.sendMail({
    from: 'hanako@docomo.ne.jp', to: `reply+${token}@${DOMAIN}`, subject: '明日の遠足について', text: '了解しました。'
  })
  t.match(info.response, /^250 /)
  await appliance.inbound.idle()
  t.equal(mails.length, 1)
  t.equal(mails[0]?.kind, 'reply')
  t.equal(mails[0]?.recipient, `reply+${token}@${DOMAIN}`)
  t.equal(mails[0]?.mail.subject, '明日の遠足について')
  t.match(mails[0]?.mail.text, /了解しました。/)
})

t.test('hostile headers are read without harm and a header section over 1 MiB is refused', async (t) => {
  const { appliance, port, mails, token } = await collecting(t, { maxMessageBytes: 4 * 1024 * 1024 })
  const to = [`reply+${token}@${DOMAIN}`]
  const junk = Array.from({ length: 5000 }, (_, i) => `X-Junk-${i}: ${'x'.repeat(50)}`).join('\r\n')
  const hostile = [
    'From: =?UTF-8?B?////?= <hanako@docomo.ne.jp>',
    `Subject: ${'=?ISO-2022-JP?B?GyRCJCIbKEI=?= '.repeat(2000)}`,
    `X-Long: ${'y'.repeat(200_000)}`,
    'Content-Type: multipart/mixed; boundary=',
    junk,
    '',
    'body\u0000with NUL'
  ].join('\r\n')
  const accepted = await sendMessage(t, port, { from: 'hanako@docomo.ne.jp', to, data: hostile })
  t.match(accepted.data, /^250 /, 'odd but within the limits: accepted')

  const headerBomb = `Subject: bomb\r\nX-Bomb: ${'z'.repeat(1024 * 1024 + 10)}\r\n\r\nbody\r\n`
  const refused = await sendMessage(t, port, { from: 'hanako@docomo.ne.jp', to, data: headerBomb })
  t.match(refused.data, /^552 /, 'a header section over 1 MiB is refused')

  const long = await openSmtp(t, port)
  await long.command('EHLO client.example.jp')
  t.match(await long.command(`MAIL FROM:<${'a'.repeat(20_000)}@docomo.ne.jp>`), /^421 .*too long/i,
    'an over-long command line ends the connection')
  t.equal(await long.reply(), undefined, 'and the server hung up')

  await appliance.inbound.idle()
  t.equal(mails.length, 1, 'only the hostile-but-valid message reached the handler')
  t.type(mails[0]?.mail.subject, 'string', 'it decoded to something')
  const after = await sendMessage(t, port, { from: 'hanako@docomo.ne.jp', to, data: note('その後') })
  t.match(after.data, /^250 /, 'the service still works')
})

t.test('inbound.receive takes a mail without SMTP and ignores recipients not ours', async (t) => {
  const { appliance, mails, token } = await collecting(t)
  const raw = Buffer.from(note('直接'))
  await appliance.inbound.receive(raw, { from: 'hanako@docomo.ne.jp', to: ['x@gmail.com', `reply+${token}@${DOMAIN}`] })
  await appliance.inbound.idle()
  t.equal(mails.length, 1)
  t.equal(mails[0]?.kind, 'reply')
})

t.test('one client holding many connections cannot shut the others out', async (t) => {
  const { port } = await collecting(t)
  const held = await Promise.all(Array.from({ length: 40 }, async () => await openSmtp(t, port)))
  const greetingOf = async (): Promise<string> => {
    const socket = net.connect(port, '127.0.0.1')
    t.teardown(() => socket.destroy())
    const [chunk] = await once(socket, 'data') as [Buffer]
    return chunk.toString('latin1')
  }
  t.match(await greetingOf(), /^421 4\.7\.0 Too many connections from your address/, 'the 41st from one address is refused')
  await held[0]?.quit()
  await new Promise((resolve) => setTimeout(resolve, 50))
  const again = await openSmtp(t, port)
  t.match(await again.command('EHLO client.example.jp'), /^250/, 'a freed place is taken again')
  for (const session of held) await session.quit()
})
