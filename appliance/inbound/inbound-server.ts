// Runs in the appliance's main thread: the inbound SMTP service (smtp-server) for the appliance's
// own addresses — sign-ups, commands, replies and bounces at the mail domain. It relays nothing
// and needs no AUTH: a recipient at another domain is refused at RCPT (550 5.7.1), an unknown
// local part or a forged recipient token too (550 5.1.1). A message over the size limit is
// refused (552) and nothing of it is kept. An accepted message is in the inbox, on disk, before
// the 250 reply. Only CRLF.CRLF ends DATA (smtp-server's SMTPStream), which the tests check.

import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { SMTPServer } from 'smtp-server'
import type {
  SMTPServerAddress, SMTPServerDataStream, SMTPServerSession
} from 'smtp-server'
import type { AddressVault } from '../store/address-vault.js'
import { readToken } from '../recipient-token.js'
import { maskAddress } from '../address.js'
import type { Inbox } from './inbox.js'
import { targetOf } from './inbox.js'

export interface InboundServerOptions {
  host: string
  port: number
  maxMessageBytes: number
  mailDomain: string
  inbox: Inbox
  vault: AddressVault
  log: Logger
}

// One mail from a phone or a bounce names one of our addresses; a long list is a spammer's.
const MAX_RECIPIENTS = 20
const MAX_CLIENTS = 400
// One address may hold a tenth of the connections: a client holding hundreds open must not shut
// out the carriers' replies and bounces. A carrier refused here retries, as for any 421.
const MAX_PER_CLIENT = 40
// A header section this long is no real mail: refusing it spares the decoder.
const MAX_HEADER_BYTES = 1024 * 1024

type DataCallback = (err?: Error | null, message?: string) => void

/** An error smtp-server answers with `code message`. */
function smtpReply (code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code })
}

export class InboundServer {
  readonly #o: InboundServerOptions
  readonly #server: SMTPServer
  readonly #perClient = new Map<string, number>()
  #port = 0

  constructor (options: InboundServerOptions) {
    this.#o = options
    this.#server = new SMTPServer({
      name: options.mailDomain,
      banner: 'Mimamori',
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      hideENHANCEDSTATUSCODES: true,
      logger: false,
      disableReverseLookup: true,
      // Carriers issued local parts like `taro..yamada.` before 2009, and their owners still
      // write from them: the strict parser refuses those even quoted. The lenient one keeps the
      // address as written; the checks that matter to us are made in onRcptTo.
      lenientAddressParsing: true,
      size: options.maxMessageBytes,
      rejectOversized: true,
      maxRecipients: MAX_RECIPIENTS,
      maxClients: MAX_CLIENTS,
      closeTimeout: 3000,
      onConnect: (session, callback) => { callback(this.admit(session)) },
      onClose: (session) => { this.release(session) },
      onRcptTo: (address, _session, callback) => { callback(this.checkRecipient(address)) },
      onData: (stream, session, callback) => { this.receive(stream, session, callback) }
    })
    // A client that resets its socket mid-transaction surfaces here; it concerns that client only.
    this.#server.on('error', (err) => { options.log.debug({ err }, 'inbound connection error') })
  }

  get port (): number {
    return this.#port
  }

  async listen (): Promise<number> {
    const server = this.#server
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject)
      server.listen(this.#o.port, this.#o.host, () => {
        server.server.off('error', reject)
        resolve()
      })
    })
    this.#port = (server.server.address() as AddressInfo).port
    this.#o.log.info({ host: this.#o.host, port: this.#port }, 'inbound mail listening')
    return this.#port
  }

  async close (): Promise<void> {
    if (!this.#server.server.listening) return
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  private admit (session: SMTPServerSession): Error | null {
    const client = session.remoteAddress
    const open = this.#perClient.get(client) ?? 0
    if (open >= MAX_PER_CLIENT) {
      this.#o.log.warn({ client }, 'inbound connection refused: too many from one address')
      return smtpReply(421, '4.7.0 Too many connections from your address, try again later')
    }
    this.#perClient.set(client, open + 1)
    ;(session as SMTPServerSession & { admitted?: boolean }).admitted = true
    return null
  }

  private release (session: SMTPServerSession): void {
    if ((session as SMTPServerSession & { admitted?: boolean }).admitted !== true) return
    const left = (this.#perClient.get(session.remoteAddress) ?? 1) - 1
    if (left <= 0) this.#perClient.delete(session.remoteAddress)
    else this.#perClient.set(session.remoteAddress, left)
  }

  /** null to accept the recipient, else the refusal. */
  private checkRecipient (address: SMTPServerAddress): Error | null {
    const recipient = address.address
    const at = recipient.lastIndexOf('@')
    const domain = at === -1 ? '' : recipient.slice(at + 1).toLowerCase()
    const bare = recipient.toLowerCase() === 'postmaster'
    if (!bare && domain !== this.#o.mailDomain.toLowerCase()) {
      return smtpReply(550, '5.7.1 Relaying denied')
    }

    const target = targetOf(recipient, this.#o.mailDomain)
    if (target === undefined) return smtpReply(550, '5.1.1 No such user here')
    // A reply or bounce address carries a signed recipient token: a forged one is nobody's.
    const purpose = target.kind === 'bounce' ? 'bounce' : 'recipient'
    const tokened = target.kind === 'reply' || target.kind === 'bounce'
    if (tokened && readToken(this.#o.vault, target.tag ?? '', purpose) === undefined) {
      return smtpReply(550, '5.1.1 No such user here')
    }
    return null
  }

  private receive (stream: SMTPServerDataStream, session: SMTPServerSession, callback: DataCallback): void {
    const chunks: Buffer[] = []
    let size = 0
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length
      // Past the limit the rest is only counted: the message will be refused whole.
      if (size <= this.#o.maxMessageBytes) chunks.push(chunk)
    })
    stream.once('end', () => {
      if (stream.sizeExceeded || size > this.#o.maxMessageBytes) {
        callback(smtpReply(552, `5.3.4 Message too big; the limit is ${this.#o.maxMessageBytes} bytes`))
        return
      }
      const raw = Buffer.concat(chunks)
      if (headerTooLong(raw)) {
        callback(smtpReply(552, '5.3.4 Header section too long'))
        return
      }
      this.store(raw, session, callback)
    })
  }

  private store (raw: Buffer, session: SMTPServerSession, callback: DataCallback): void {
    const envelope = session.envelope
    const from = envelope.mailFrom === false ? '' : envelope.mailFrom.address
    const to = envelope.rcptTo.map((r) => r.address)
    this.#o.inbox.receive(raw, { from, to }).then(
      (ids) => { callback(null, `2.0.0 Ok: queued as ${ids.join(',')}`) },
      (err: unknown) => {
        const masked = from === '' ? '<>' : maskAddress(from)
        this.#o.log.error({ err, from: masked, bytes: raw.length }, 'inbound mail not stored')
        callback(smtpReply(451, '4.3.0 Temporary failure, try again later'))
      })
  }
}

function headerTooLong (raw: Buffer): boolean {
  if (raw.length <= MAX_HEADER_BYTES) return false
  const crlf = raw.indexOf('\r\n\r\n')
  const lf = raw.indexOf('\n\n')
  const ends = [crlf, lf].filter((i) => i !== -1)
  return ends.length === 0 || Math.min(...ends) > MAX_HEADER_BYTES
}
