// Test helper: a bare SMTP client on a raw socket, for what a library client hides or refuses to
// send — bare LF line ends, a quoted legacy MAIL FROM, a null sender, exact reply texts.

import type { Test } from 'tap'
import net from 'node:net'

export interface SmtpSession {
  socket: net.Socket
  /** the next whole reply (a multi-line one joined by \n), or undefined once the server closed */
  reply: () => Promise<string | undefined>
  /** sends one command line (CRLF added) and resolves its reply */
  command: (line: string) => Promise<string | undefined>
  /** writes bytes exactly as given */
  write: (data: string | Buffer) => void
  quit: () => Promise<void>
}

/** Connects and reads the greeting; the socket is destroyed in teardown. */
export async function openSmtp (t: Test, port: number): Promise<SmtpSession> {
  const socket = net.connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  let buffered = ''
  let closed = false
  let wake: (() => void) | undefined
  socket.on('data', (chunk: Buffer) => { buffered += chunk.toString('latin1'); wake?.() })
  socket.on('close', () => { closed = true; wake?.() })
  socket.on('error', () => {})

  const reply = async (): Promise<string | undefined> => {
    for (;;) {
      // A reply ends with a line whose code is followed by a space (RFC 5321 4.2.1).
      const end = /^\d{3}(?: [^\r\n]*)?\r\n/m.exec(buffered)
      if (end !== null) {
        const stop = end.index + end[0].length
        const text = buffered.slice(0, stop).replace(/\r\n$/, '').replace(/\r\n/g, '\n')
        buffered = buffered.slice(stop)
        return text
      }
      if (closed) return undefined
      await new Promise<void>((resolve) => { wake = resolve })
      wake = undefined
    }
  }
  const write = (data: string | Buffer): void => { socket.write(data) }
  const command = async (line: string): Promise<string | undefined> => {
    write(`${line}\r\n`)
    return await reply()
  }
  const quit = async (): Promise<void> => {
    if (!closed) await command('QUIT')
    socket.destroy()
  }

  const greeting = await reply()
  if (greeting?.startsWith('220') !== true) throw new Error(`no greeting: ${String(greeting)}`)
  return { socket, reply, command, write, quit }
}

export interface Transaction {
  from: string
  to: string[]
  /** the message; CRLF line ends expected, dot-stuffing is done here */
  data: string | Buffer
}

/** One whole transaction on a fresh connection; resolves every reply, the DATA answer last. */
export async function sendMessage (t: Test, port: number, tx: Transaction): Promise<{
  mailFrom?: string, rcptTo: Array<string | undefined>, data?: string
}> {
  const smtp = await openSmtp(t, port)
  await smtp.command('EHLO client.example.jp')
  const mailFrom = await smtp.command(`MAIL FROM:<${tx.from}>`)
  const rcptTo: Array<string | undefined> = []
  for (const to of tx.to) rcptTo.push(await smtp.command(`RCPT TO:<${to}>`))
  if (!rcptTo.some((r) => r?.startsWith('250') === true)) {
    await smtp.quit()
    return { mailFrom, rcptTo }
  }
  const go = await smtp.command('DATA')
  if (go?.startsWith('354') !== true) throw new Error(`DATA refused: ${String(go)}`)
  const body = Buffer.isBuffer(tx.data) ? tx.data : Buffer.from(tx.data, 'utf8')
  smtp.write(dotStuff(body))
  const data = await smtp.command('.')
  await smtp.quit()
  return { mailFrom, rcptTo, data }
}

/** RFC 5321 4.5.2: a line starting with "." gets another; the message ends with CRLF. */
export function dotStuff (body: Buffer): Buffer {
  let text = body.toString('latin1').replace(/(^|\r\n)\./g, '$1..')
  if (!text.endsWith('\r\n')) text += '\r\n'
  return Buffer.from(text, 'latin1')
}

/** A plain mail in CRLF form, with the headers given first. */
export function plainMail (headers: Record<string, string>, text: string): string {
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}`)
  return [...lines, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=UTF-8',
    'Content-Transfer-Encoding: 8bit', '', ...text.split('\n')].join('\r\n') + '\r\n'
}
