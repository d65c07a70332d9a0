// The carrier gateway simulator: a real SMTP server on 127.0.0.1 that answers like a Japanese
// carrier's mail gateway (docomo, au, SoftBank...) for the tests, `mimamori demo` and the bench.
//
// Without `rules`, recipients are answered by their local part (KumoMTA's "sink answering by
// recipient name"), so a test picks an outcome by picking an address:
//
//   busy...               421 4.7.0, then the connection is closed (RFC 5321 4.2.2)
//   tempfail...           451 4.3.0
//   full...               452 4.2.2 mailbox full
//   unknown..., permfail... 550 5.1.1 user unknown
//   blocked...            550 5.7.1 refused by the carrier's domain filter
//   anything else         accepted
//
// Rules come first, in order; a recipient no rule refuses may then be refused at random
// (deferRate, rejectRate). A quoted legacy recipient ("taro..yamada."@docomo.ne.jp) is accepted
// and recorded with its quotes; requireQuotedLocalParts refuses the same address sent unquoted.
// The hot path only moves counters: a message body is drained, never kept, unless keepMessages.

import { EventEmitter } from 'node:events'
import type { AddressInfo, Socket } from 'node:net'
import { SMTPServer } from 'smtp-server'
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server'
import { RecipientRules } from './simulator-rules.js'
import type { SimulatorRule } from './simulator-rules.js'

export { DEFAULT_RULES } from './simulator-rules.js'
export type { SimulatorRule } from './simulator-rules.js'

export interface GatewaySimulatorOptions {
  name?: string
  host?: string
  port?: number
  /** replace DEFAULT_RULES; [] answers every recipient by the random rates alone */
  rules?: readonly SimulatorRule[]
  /** 0..1: fraction of recipients answered 451 4.3.0 at random (seeded) */
  deferRate?: number
  /** 0..1: fraction of recipients answered 550 5.1.1 at random (seeded) */
  rejectRate?: number
  seed?: number
  /** wait this long before answering each DATA (a slow gateway) */
  delayMs?: number
  /** refuse further concurrent connections with 421 4.7.0 */
  maxConnections?: number
  /** destroy the socket without a reply at the DATA after this many messages on a connection */
  dropAfterMessages?: number
  /** keep each message's raw bytes in `received` (tests only) */
  keepMessages?: boolean
  maxMessageBytes?: number
  /** answer 553 5.1.3 to a local part like `taro..yamada.` sent unquoted, as a strict gateway */
  requireQuotedLocalParts?: boolean
}

export interface ReceivedMessage {
  /** envelope sender as received, quotes included */
  mailFrom: string
  /** recipients exactly as the client spelled them inside <>, quotes included */
  rcptTo: string[]
  raw?: Buffer
  size: number
  /** Date.now() at acceptance */
  at: number
  /** acceptance order across the simulator, from 1 */
  seq: number
}

/** Plain numbers only, so they cross IPC cheaply; per-recipient counts are perRecipient(). */
export interface SimulatorStats {
  name: string
  port: number
  /** connections greeted with 220 */
  connections: number
  /** connections refused with 421 for maxConnections */
  refusedConnections: number
  currentConnections: number
  maxConcurrentConnections: number
  /** the most RCPT TO commands, answered either way, on any one connection */
  maxRecipientsPerConnection: number
  /** messages answered 250 after DATA */
  accepted: number
  /** recipients of the accepted messages: one delivery per recipient */
  acceptedRecipients: number
  /** recipients refused with 4xx at RCPT TO */
  deferred: number
  /** recipients refused with 5xx at RCPT TO */
  rejected: number
  /** messages refused with 552 for maxMessageBytes */
  oversized: number
  /** messages whose connection was dropped instead of answered */
  dropped: number
  /** bytes of the accepted messages */
  bytes: number
  distinctRecipients: number
  /** accepted deliveries beyond the first per recipient */
  duplicates: number
  firstAcceptedAt: number | null
  lastAcceptedAt: number | null
}

const DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024

interface ConnectionState {
  socket: Socket | undefined
  accepted: number
  recipients: number
}

type Counters = Omit<SimulatorStats, 'name' | 'port' | 'currentConnections' |
'distinctRecipients' | 'duplicates'>

function zeroCounters (): Counters {
  return {
    connections: 0,
    refusedConnections: 0,
    maxConcurrentConnections: 0,
    maxRecipientsPerConnection: 0,
    accepted: 0,
    acceptedRecipients: 0,
    deferred: 0,
    rejected: 0,
    oversized: 0,
    dropped: 0,
    bytes: 0,
    firstAcceptedAt: null,
    lastAcceptedAt: null
  }
}

/** An error smtp-server turns into the reply `code message`. */
function smtpReply (code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code })
}

export class GatewaySimulator extends EventEmitter<{ message: [ReceivedMessage] }> {
  readonly name: string
  readonly received: ReceivedMessage[] = []

  private readonly options: GatewaySimulatorOptions
  private readonly rules: RecipientRules
  private server: SMTPServer | undefined
  private listeningPort = 0
  private counters = zeroCounters()
  private perRecipientCounts = new Map<string, number>()
  private duplicateCount = 0
  private seq = 0
  // Keyed by the client's port: smtp-server hands its handlers a session, never the socket,
  // and dropAfterMessages and stop() need the socket itself.
  private readonly sockets = new Map<number, Socket>()
  private readonly open = new Map<string, ConnectionState>()

  constructor (options: GatewaySimulatorOptions = {}) {
    super()
    this.options = options
    this.name = options.name ?? 'gateway'
    this.rules = new RecipientRules({ ...options, requireQuoting: options.requireQuotedLocalParts })
  }

  /** The listening port; after stop(), the port it listened on. */
  get port (): number {
    return this.listeningPort
  }

  async start (): Promise<number> {
    if (this.server !== undefined) return this.port
    const server = this.createServer()
    this.server = server

    // A client resetting its socket in a transaction surfaces here; a gateway shrugs it off.
    server.on('error', () => {})
    server.server.on('connection', (socket: Socket) => this.trackSocket(socket))

    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject)
      server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => {
        server.server.off('error', reject)
        resolve()
      })
    })
    this.listeningPort = (server.server.address() as AddressInfo).port
    return this.listeningPort
  }

  async stop (): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined

    // smtp-server would wait up to 30 s for clients to leave; a simulator just hangs up.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const socket of this.sockets.values()) socket.destroy()
    await closed
  }

  stats (): SimulatorStats {
    return {
      name: this.name,
      port: this.port,
      ...this.counters,
      currentConnections: this.open.size,
      distinctRecipients: this.perRecipientCounts.size,
      duplicates: this.duplicateCount
    }
  }

  /** How many accepted messages went to this recipient, spelled as in RCPT TO. */
  acceptedCount (recipient: string): number {
    return this.perRecipientCounts.get(recipient) ?? 0
  }

  perRecipient (): ReadonlyMap<string, number> {
    return this.perRecipientCounts
  }

  duplicates (): number {
    return this.duplicateCount
  }

  /** Forgets what was received and the rules' `times`; open connections stay open. */
  reset (): void {
    this.counters = zeroCounters()
    this.counters.maxConcurrentConnections = this.open.size
    for (const connection of this.open.values()) connection.recipients = 0
    this.perRecipientCounts = new Map()
    this.duplicateCount = 0
    this.rules.reset()
    this.seq = 0
    this.received.length = 0
  }

  private createServer (): SMTPServer {
    return new SMTPServer({
      name: `${this.name}.gateway.invalid`,
      banner: `${this.name} gateway simulator`,
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      disableReverseLookup: true,
      // The strict parser answers 501 to a local part with `..` or a trailing dot even when it
      // is quoted, yet carriers issued such addresses before 2009 and still take them quoted.
      // The lenient parser keeps the address as written between < and >, quotes included, but
      // for two rewrites no carrier address needs: a source route is dropped and an xn-- domain
      // is decoded to Unicode. It also skips the domain and length checks; a simulator can.
      lenientAddressParsing: true,
      size: this.options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      onConnect: (session, callback) => callback(this.admit(session)),
      onRcptTo: (address, session, callback) => callback(this.answerRecipient(address, session)),
      onData: (stream, session, callback) => this.receive(stream, session, callback),
      onClose: (session) => { this.open.delete(session.id) }
    })
  }

  private trackSocket (socket: Socket): void {
    const port = socket.remotePort
    if (port === undefined) return
    this.sockets.set(port, socket)
    socket.once('close', () => this.sockets.delete(port))
  }

  private admit (session: SMTPServerSession): Error | null {
    const max = this.options.maxConnections
    if (max !== undefined && this.open.size >= max) {
      this.counters.refusedConnections++
      // smtp-server closes the connection itself after any 421 it sends.
      return smtpReply(421, '4.7.0 Too many connections, try again later')
    }

    this.open.set(session.id, { socket: this.sockets.get(session.remotePort), accepted: 0, recipients: 0 })
    this.counters.connections++
    this.counters.maxConcurrentConnections =
      Math.max(this.counters.maxConcurrentConnections, this.open.size)
    return null
  }

  /** The refusal for this recipient, or null to accept it. */
  private answerRecipient (address: SMTPServerAddress, session: SMTPServerSession): Error | null {
    this.countRecipient(session)
    const refusal = this.rules.answer(address.address)
    if (refusal === undefined) return null

    if (refusal.code < 500) this.counters.deferred++
    else this.counters.rejected++
    // A 421 needs nothing more here: smtp-server ends the connection after sending any 421.
    return smtpReply(refusal.code, refusal.message)
  }

  // A route's recipientsPerSession is checked against this: every RCPT TO on one connection.
  private countRecipient (session: SMTPServerSession): void {
    const connection = this.open.get(session.id)
    if (connection === undefined) return
    connection.recipients++
    this.counters.maxRecipientsPerConnection =
      Math.max(this.counters.maxRecipientsPerConnection, connection.recipients)
  }

  private receive (
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    callback: (err?: Error | null, message?: string) => void
  ): void {
    const chunks: Buffer[] | undefined = this.options.keepMessages === true ? [] : undefined
    if (chunks === undefined) stream.resume()
    else stream.on('data', (chunk: Buffer) => chunks.push(chunk))

    stream.once('end', () => {
      const raw = chunks === undefined ? undefined : Buffer.concat(chunks)
      const answer = (): void => this.answerData(stream, session, raw, callback)
      if ((this.options.delayMs ?? 0) > 0) setTimeout(answer, this.options.delayMs)
      else answer()
    })
  }

  private answerData (
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    raw: Buffer | undefined,
    callback: (err?: Error | null, message?: string) => void
  ): void {
    const connection = this.open.get(session.id)
    if (stream.sizeExceeded) {
      this.counters.oversized++
      callback(smtpReply(552, '5.3.4 Message too big for the gateway'))
      return
    }

    // The callback is never called for a dropped message: no reply may reach the client.
    // A client that left during delayMs never saw a 250 either, so that counts as dropped.
    if (connection?.socket?.destroyed === true || this.shouldDrop(connection)) {
      this.counters.dropped++
      connection?.socket?.destroy()
      return
    }

    // The record is taken before the reply: answering resets the session's envelope.
    const at = this.accept(session.envelope.rcptTo, stream.byteLength, connection)
    const message = this.record(session, stream.byteLength, raw, at)
    callback(null, 'Ok: queued')
    if (message === undefined) return
    if (this.options.keepMessages === true) this.received.push(message)
    this.emit('message', message)
  }

  private shouldDrop (connection: ConnectionState | undefined): boolean {
    const after = this.options.dropAfterMessages
    return after !== undefined && connection !== undefined && connection.accepted >= after
  }

  private accept (
    recipients: SMTPServerAddress[],
    size: number,
    connection: ConnectionState | undefined
  ): number {
    const now = Date.now()
    const counters = this.counters
    counters.accepted++
    counters.acceptedRecipients += recipients.length
    counters.bytes += size
    counters.firstAcceptedAt ??= now
    counters.lastAcceptedAt = now
    this.seq++
    if (connection !== undefined) connection.accepted++

    for (const recipient of recipients) {
      const before = this.perRecipientCounts.get(recipient.address) ?? 0
      if (before > 0) this.duplicateCount++
      this.perRecipientCounts.set(recipient.address, before + 1)
    }
    return now
  }

  /** Builds the record only when someone keeps or listens, so the bench pays nothing for it. */
  private record (
    session: SMTPServerSession,
    size: number,
    raw: Buffer | undefined,
    at: number
  ): ReceivedMessage | undefined {
    if (this.options.keepMessages !== true && this.listenerCount('message') === 0) return undefined

    const envelope = session.envelope
    const message: ReceivedMessage = {
      mailFrom: envelope.mailFrom === false ? '' : envelope.mailFrom.address,
      rcptTo: envelope.rcptTo.map((recipient) => recipient.address),
      size,
      at,
      seq: this.seq
    }
    if (raw !== undefined) message.raw = raw
    return message
  }
}
