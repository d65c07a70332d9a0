import t, { type Test } from 'tap'
import { once } from 'node:events'
import net from 'node:net'
import readline from 'node:readline'
import nodemailer from 'nodemailer'
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js'
import { GatewaySimulator } from '../../ops/gateway-simulator.js'
import type { GatewaySimulatorOptions } from '../../ops/gateway-simulator.js'
import { startSimulatorFleet } from '../../ops/simulator-fleet.js'

const FROM = 'alert@mail.city.example.jp'

async function startSimulator (
  t: Test,
  options: GatewaySimulatorOptions = {}
): Promise<GatewaySimulator> {
  const simulator = new GatewaySimulator({ name: 'docomo', ...options })
  await simulator.start()
  t.teardown(() => simulator.stop())
  return simulator
}

function transport (t: Test, port: number): nodemailer.Transporter {
  const transporter = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true })
  t.teardown(() => transporter.close())
  return transporter
}

const TEXT = '明日は臨時休校です。'

function mail (to: string | string[], text = TEXT): nodemailer.SendMailOptions {
  return { from: FROM, to, subject: '臨時休校のお知らせ', text }
}

/** A bare SMTP connection: nodemailer's transport unquotes envelope addresses, this does not. */
async function connect (t: Test, port: number): Promise<SMTPConnection> {
  const connection = new SMTPConnection({ host: '127.0.0.1', port, ignoreTLS: true })
  t.teardown(() => connection.close())
  connection.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    connection.connect((err) => (err === undefined || err === null ? resolve() : reject(err)))
  })
  return connection
}

/** Sends on a bare connection; a connection that ends without a reply fails the send too. */
function sendRaw (
  connection: SMTPConnection,
  to: string[],
  body = 'Subject: test\r\n\r\nhello\r\n'
): Promise<SMTPConnection.SentMessageInfo> {
  return new Promise((resolve, reject) => {
    const onEnd = (): void => reject(new Error('the connection ended without a reply'))
    connection.once('end', onEnd)
    connection.send({ from: FROM, to }, body, (err, info) => {
      connection.off('end', onEnd)
      if (err) reject(err)
      else resolve(info)
    })
  })
}

/** A line-level client, for what nodemailer hides: who closes the connection, and when. */
async function openSocket (t: Test, port: number): Promise<{
  socket: net.Socket
  reply: () => Promise<string | undefined>
  command: (line: string) => Promise<string | undefined>
}> {
  const socket = net.connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  const lines = readline.createInterface({ input: socket })[Symbol.asyncIterator]()
  const reply = async (): Promise<string | undefined> => {
    for (;;) {
      const next = await lines.next()
      if (next.done === true) return undefined
      const line = String(next.value)
      if (!/^\d{3}-/.test(line)) return line
    }
  }
  const command = async (line: string): Promise<string | undefined> => {
    socket.write(`${line}\r\n`)
    return await reply()
  }
  return { socket, reply, command }
}

t.test('accepted messages are counted, bodies are not kept by default', async (t) => {
  const simulator = await startSimulator(t)
  const transporter = transport(t, simulator.port)

  await transporter.sendMail(mail('taro@docomo.ne.jp'))
  await transporter.sendMail(mail(['hanako@docomo.ne.jp', 'jiro@docomo.ne.jp']))

  const stats = simulator.stats()
  t.equal(stats.name, 'docomo')
  t.equal(stats.accepted, 2)
  t.equal(stats.acceptedRecipients, 3)
  t.equal(stats.distinctRecipients, 3)
  t.ok(stats.bytes > 0)
  t.ok(stats.firstAcceptedAt !== null && stats.lastAcceptedAt !== null)
  t.equal(simulator.acceptedCount('hanako@docomo.ne.jp'), 1)
  t.equal(simulator.acceptedCount('nobody@docomo.ne.jp'), 0)
  t.same(simulator.received, [])
})

t.test('a quoted legacy recipient is accepted and recorded with its quotes', async (t) => {
  const simulator = await startSimulator(t, { keepMessages: true })
  const connection = await connect(t, simulator.port)

  const info = await sendRaw(connection, ['"taro..yamada."@docomo.ne.jp', '"hanako."@ezweb.ne.jp'])

  t.same(info.rejected, [])
  t.same(simulator.received[0]?.rcptTo, ['"taro..yamada."@docomo.ne.jp', '"hanako."@ezweb.ne.jp'])
  t.equal(simulator.acceptedCount('"taro..yamada."@docomo.ne.jp'), 1)
})

t.test('requireQuotedLocalParts refuses a legacy local part sent unquoted', async (t) => {
  const simulator = await startSimulator(t, { requireQuotedLocalParts: true })

  // nodemailer's transport unquotes envelope addresses, so the legacy address goes out bare.
  const error = await transport(t, simulator.port).sendMail(mail('"taro..yamada."@docomo.ne.jp'))
    .then(() => undefined, (err: unknown) => err)
  t.match(error, { responseCode: 553, response: /^553 5\.1\.3/ })

  await sendRaw(await connect(t, simulator.port), ['"taro..yamada."@docomo.ne.jp'])
  t.equal(simulator.acceptedCount('"taro..yamada."@docomo.ne.jp'), 1)
  t.equal(simulator.stats().rejected, 1)
})

t.test('each default rule answers its reply code at RCPT TO', async (t) => {
  const simulator = await startSimulator(t)
  const cases: Array<[string, number, RegExp]> = [
    ['busy1@docomo.ne.jp', 421, /^421 4\.7\.0/],
    ['tempfail1@docomo.ne.jp', 451, /^451 4\.3\.0/],
    ['full1@docomo.ne.jp', 452, /^452 4\.2\.2/],
    ['unknown1@docomo.ne.jp', 550, /^550 5\.1\.1/],
    ['permfail1@docomo.ne.jp', 550, /^550 5\.1\.1/],
    ['blocked1@docomo.ne.jp', 550, /^550 5\.7\.1/]
  ]

  for (const [to, code, reply] of cases) {
    const transporter = transport(t, simulator.port)
    const error = await transporter.sendMail(mail(to)).then(() => undefined, (err: unknown) => err)
    t.match(error, { responseCode: code, response: reply }, to)
  }

  const stats = simulator.stats()
  t.equal(stats.accepted, 0)
  t.equal(stats.deferred, 3)
  t.equal(stats.rejected, 3)
})

t.test('a partly refused transaction delivers to the accepted recipients only', async (t) => {
  const simulator = await startSimulator(t)
  const transporter = transport(t, simulator.port)

  const info = await transporter.sendMail(mail(['ok@au.com', 'full2@au.com', 'unknown2@au.com']))

  t.same(info.accepted, ['ok@au.com'])
  t.same(info.rejected, ['full2@au.com', 'unknown2@au.com'])
  t.match(info.rejectedErrors, [{ responseCode: 452 }, { responseCode: 550 }])
  t.equal(simulator.acceptedCount('ok@au.com'), 1)
  t.equal(simulator.acceptedCount('full2@au.com'), 0)
  t.equal(simulator.stats().acceptedRecipients, 1)
})

t.test('a rule with times refuses the first tries and accepts the retry', async (t) => {
  const rules = [{ match: '^retry@', code: 451, times: 2 }]
  const simulator = await startSimulator(t, { rules })
  const transporter = transport(t, simulator.port)
  const attempt = (): Promise<unknown> =>
    transporter.sendMail(mail('retry@softbank.ne.jp')).then(() => 'accepted', (err: unknown) => err)

  t.match(await attempt(), { responseCode: 451, response: /^451 4\.3\.0/ })
  t.match(await attempt(), { responseCode: 451 })
  t.equal(await attempt(), 'accepted')
  t.equal(simulator.acceptedCount('retry@softbank.ne.jp'), 1)
  t.equal(simulator.stats().deferred, 2)
})

t.test('recipients per connection are counted over every transaction, refused ones too', async (t) => {
  const simulator = await startSimulator(t)
  const first = await connect(t, simulator.port)
  await sendRaw(first, ['a@docomo.ne.jp', 'b@docomo.ne.jp'])
  await sendRaw(first, ['c@docomo.ne.jp', 'unknown.d@docomo.ne.jp'])
  const second = await connect(t, simulator.port)
  await sendRaw(second, ['e@docomo.ne.jp'])

  t.equal(simulator.stats().maxRecipientsPerConnection, 4, 'four RCPT TO on the first connection')
  simulator.reset()
  t.equal(simulator.stats().maxRecipientsPerConnection, 0)
})

t.test('explicit rules replace the default ones', async (t) => {
  const simulator = await startSimulator(t, { rules: [] })
  const transporter = transport(t, simulator.port)

  await transporter.sendMail(mail('unknown3@docomo.ne.jp'))
  t.equal(simulator.acceptedCount('unknown3@docomo.ne.jp'), 1)
})

t.test('a 421 at RCPT TO is followed by the server closing the connection', async (t) => {
  const simulator = await startSimulator(t)
  const client = await openSocket(t, simulator.port)
  const closed = once(client.socket, 'close')

  t.match(await client.reply(), /^220 /)
  t.match(await client.command('EHLO sender.example.jp'), /^250 /)
  t.match(await client.command(`MAIL FROM:<${FROM}>`), /^250 /)
  t.match(await client.command('RCPT TO:<busy@docomo.ne.jp>'), /^421 4\.7\.0/)
  await closed
  t.pass('the server closed the connection')
})

t.test('connections beyond maxConnections are refused with 421 and closed', async (t) => {
  const simulator = await startSimulator(t, { maxConnections: 1 })
  const first = await openSocket(t, simulator.port)
  t.match(await first.reply(), /^220 /)

  const second = await openSocket(t, simulator.port)
  const closed = once(second.socket, 'close')
  t.match(await second.reply(), /^421 4\.7\.0 Too many connections/)
  await closed

  const stats = simulator.stats()
  t.equal(stats.refusedConnections, 1)
  t.equal(stats.currentConnections, 1)
  t.equal(stats.maxConcurrentConnections, 1)
})

t.test('dropAfterMessages hangs up at the next DATA without counting that message', async (t) => {
  const simulator = await startSimulator(t, { dropAfterMessages: 1 })
  const connection = await connect(t, simulator.port)

  await sendRaw(connection, ['first@docomo.ne.jp'])
  await t.rejects(sendRaw(connection, ['second@docomo.ne.jp']))

  const stats = simulator.stats()
  t.equal(stats.accepted, 1)
  t.equal(stats.dropped, 1)
  t.equal(simulator.acceptedCount('second@docomo.ne.jp'), 0)

  const again = await connect(t, simulator.port)
  await sendRaw(again, ['second@docomo.ne.jp'])
  t.equal(simulator.acceptedCount('second@docomo.ne.jp'), 1, 'a new connection is served')
})

t.test('a recipient accepted more than once is counted as a duplicate', async (t) => {
  const simulator = await startSimulator(t)
  const transporter = transport(t, simulator.port)

  for (let i = 0; i < 3; i++) await transporter.sendMail(mail('taro@docomo.ne.jp'))
  await transporter.sendMail(mail('hanako@docomo.ne.jp'))

  t.equal(simulator.acceptedCount('taro@docomo.ne.jp'), 3)
  t.equal(simulator.duplicates(), 2)
  t.equal(simulator.stats().duplicates, 2)

  simulator.reset()
  t.equal(simulator.duplicates(), 0)
  t.equal(simulator.stats().accepted, 0)
})

t.test('keepMessages keeps the raw message and the envelope in acceptance order', async (t) => {
  const simulator = await startSimulator(t, { keepMessages: true })
  const transporter = transport(t, simulator.port)
  const announced = once(simulator, 'message')

  await transporter.sendMail(mail('taro@docomo.ne.jp', 'first'))
  await transporter.sendMail(mail('hanako@au.com', 'second'))

  const [first] = await announced
  t.equal(first.seq, 1)
  t.equal(simulator.received.length, 2)
  const [one, two] = simulator.received
  t.equal(one?.mailFrom, FROM)
  t.same(one?.rcptTo, ['taro@docomo.ne.jp'])
  t.match(one?.raw?.toString(), /^Subject: =\?UTF-8\?/m)
  t.match(one?.raw?.toString(), /first/)
  t.equal(one?.size, one?.raw?.length)
  t.equal(two?.seq, 2)
})

t.test('a message over maxMessageBytes is refused with 552 and not counted', async (t) => {
  const simulator = await startSimulator(t, { maxMessageBytes: 1000 })
  const transporter = transport(t, simulator.port)

  const error = await transporter.sendMail(mail('taro@docomo.ne.jp', 'x'.repeat(5000)))
    .then(() => undefined, (err: unknown) => err)
  t.match(error, { responseCode: 552 })
  t.equal(simulator.stats().accepted, 0)
  t.equal(simulator.stats().oversized, 1)
})

t.test('delayMs holds back the reply to DATA', async (t) => {
  const simulator = await startSimulator(t, { delayMs: 150 })
  const connection = await connect(t, simulator.port)

  const started = Date.now()
  await sendRaw(connection, ['taro@docomo.ne.jp'])
  t.ok(Date.now() - started >= 140, 'the 250 came after the delay')
  t.equal(simulator.stats().accepted, 1)
})

t.test('random refusals repeat for the same seed', async (t) => {
  const recipients = Array.from({ length: 40 }, (_, i) => `user${i}@docomo.ne.jp`)
  const refusedWith = async (seed: number): Promise<string[]> => {
    const simulator = await startSimulator(t, { deferRate: 0.3, rejectRate: 0.2, seed })
    const info = await transport(t, simulator.port).sendMail(mail(recipients))
    return info.rejected.map(String)
  }

  const first = await refusedWith(7)
  t.ok(first.length > 0 && first.length < recipients.length)
  t.same(await refusedWith(7), first)
})

t.test('the fleet runs simulators in a child process, reports stats and stops', async (t) => {
  const fleet = await startSimulatorFleet([
    { route: 'docomo', options: { name: 'docomo' } },
    { route: 'au' }
  ])
  t.teardown(() => fleet.stop())

  const docomo = fleet.ports.docomo
  t.ok(typeof docomo === 'number' && docomo > 0)
  t.ok((fleet.ports.au ?? 0) > 0)
  const transporter = transport(t, docomo ?? 0)
  await transporter.sendMail(mail('taro@docomo.ne.jp'))
  await transporter.sendMail(mail('taro@docomo.ne.jp'))

  const report = await fleet.stats()
  t.equal(report.stats.docomo?.accepted, 2)
  t.equal(report.stats.au?.accepted, 0)
  t.equal(report.duplicates, 1)

  await fleet.stop()
  t.throws(() => process.kill(fleet.pid, 0), { code: 'ESRCH' }, 'the child is gone')
})

t.test('a fleet whose simulator cannot start rejects with the reason', async (t) => {
  await t.rejects(startSimulatorFleet([{ route: 'docomo', options: { deferRate: 2 } }]),
    { message: /deferRate must be between 0 and 1/ })
})
