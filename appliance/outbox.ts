// Runs in the appliance's main thread: the outbox of transactional single mails — sign-up links,
// welcome mails, opt-out confirmations, command previews and refusals. Each mail is a row in the
// `outbox` sub-db (its address sealed) until a gateway takes it or refuses it for good, so a mail
// enqueued before a crash or a stop goes out after the next open. The delivery workers render,
// sign and send it over the same routes and pooled connections as the broadcasts.

import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { Piscina } from 'piscina'
import type { Store } from './store/store.js'
import { nextId } from './store/store.js'
import type { AddressVault } from './store/address-vault.js'
import type { RouteTable } from './route-table.js'
import { type Config, senderAddress } from './config.js'
import { parseAddress, maskAddress, AddressError } from './address.js'
import { MimamoriError, assertHeaderSafe } from './errors.js'
import type { Outcome } from '../workers/smtp-outcome.js'
import type { SingleSendTask } from '../workers/send-worker.js'
import type { SingleMessage } from '../workers/message-template.js'

export interface OutboxMail {
  to: string
  subject: string
  text: string
  replyTo?: string
  /** the Message-ID of the mail this one answers; invalid ids are left out, not refused */
  inReplyTo?: string
  references?: string[]
  /** what the mail is for, in the logs: 'signup-link', 'opt-out-confirmation', … */
  purpose: string
  /** the From display name; the appliance's sender name when absent */
  fromName?: string
}

interface OutboxRow {
  id: number
  /** AddressVault-sealed SMTP spelling of the recipient */
  sealed: Uint8Array
  domain: string
  message: Omit<SingleMessage, 'to'>
  purpose: string
  attempts: number
  /** when the next attempt may start (ms since epoch) */
  nextAt: number
  createdAt: string
}

export interface OutboxOptions {
  store: Store
  vault: AddressVault
  routes: RouteTable
  pool: Piscina
  config: Config
  log: Logger
  /** the From display name of the appliance's own mails */
  senderName: () => string
}

// A handful of mails at a time: transactional mail is rare, and the broadcasts share the routes.
const CONCURRENCY = 4
const MESSAGE_ID = /^<[\x21-\x3b\x3d\x3f-\x7e]{1,250}>$/
const MAX_SUBJECT = 1000
const MAX_TEXT = 100_000

export class Outbox {
  readonly #o: OutboxOptions
  readonly #inFlight = new Set<number>()
  readonly #tasks = new Set<Promise<void>>()
  #waiters: Array<() => void> = []
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  constructor (options: OutboxOptions) {
    this.#o = options
  }

  /** Takes up the rows left by an earlier run. */
  start (): void {
    const left = this.#o.store.outbox.getKeysCount()
    if (left > 0) this.#o.log.info({ waiting: left }, 'outbox resumed')
    this.pump()
  }

  /**
   * Checks and stores one mail; it goes out as soon as a connection is free. Returns its id.
   * Inside a transaction the row commits with it, so an action and its mail happen together.
   */
  enqueue (mail: OutboxMail): number {
    const message = this.message(mail)
    const address = checkedAddress(mail.to)
    const id = nextId(this.#o.store, 'outbox')
    const row: OutboxRow = {
      id,
      sealed: this.#o.vault.seal(address.smtp),
      domain: address.domain,
      message: { ...message, messageId: `<o${id}.${randomBytes(6).toString('hex')}@${this.#o.config.mailDomain}>` },
      purpose: mail.purpose,
      attempts: 0,
      nextAt: 0,
      createdAt: new Date().toISOString()
    }
    this.#o.store.outbox.putSync(id, row)
    // After the caller's transaction, if any, has committed.
    setImmediate(() => this.pump())
    return id
  }

  /** Resolves when no mail waits in the outbox (sent, or dropped for good). */
  async idle (): Promise<void> {
    if (this.#isIdle()) return
    await new Promise<void>((resolve) => this.#waiters.push(resolve))
  }

  /** Starts nothing new and lets the sends in flight finish. */
  async stop (): Promise<void> {
    this.#stopped = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    await Promise.allSettled([...this.#tasks])
  }

  private message (mail: OutboxMail): Omit<SingleMessage, 'to' | 'messageId'> {
    for (const field of ['subject', 'purpose'] as const) assertHeaderSafe(field, mail[field])
    if (mail.subject.length > MAX_SUBJECT || mail.text.length > MAX_TEXT) {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'the subject or text of a mail is too long')
    }
    const fromName = mail.fromName ?? this.#o.senderName()
    assertHeaderSafe('fromName', fromName)
    const message: Omit<SingleMessage, 'to' | 'messageId'> = {
      fromName, fromAddress: senderAddress(this.#o.config), subject: mail.subject, text: mail.text
    }
    if (mail.replyTo !== undefined) message.replyTo = checkedAddress(mail.replyTo).smtp
    // Ids come from inbound mail, which anyone writes: a bad one is dropped, not trusted.
    const inReplyTo = mail.inReplyTo === undefined ? undefined : messageId(mail.inReplyTo)
    if (inReplyTo !== undefined) message.inReplyTo = inReplyTo
    const references = (mail.references ?? []).map(messageId).filter((r) => r !== undefined)
    if (references.length > 0) message.references = references.slice(-10)
    return message
  }

  #isIdle (): boolean {
    return this.#inFlight.size === 0 && this.#o.store.outbox.getKeysCount() === 0
  }

  private pump (): void {
    if (this.#stopped) return
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    const now = Date.now()
    let next = Infinity

    for (const { value } of this.#o.store.outbox.getRange()) {
      const row = value as OutboxRow
      if (this.#inFlight.has(row.id)) continue
      if (row.nextAt > now) {
        next = Math.min(next, row.nextAt)
        continue
      }
      if (this.#inFlight.size >= CONCURRENCY) break
      this.track(this.deliver(row))
    }

    if (next !== Infinity) this.#timer = setTimeout(() => this.pump(), Math.max(1, next - now))
    this.settle()
  }

  private track (task: Promise<void>): void {
    this.#tasks.add(task)
    void task.finally(() => {
      this.#tasks.delete(task)
      this.pump()
    })
  }

  private async deliver (row: OutboxRow): Promise<void> {
    this.#inFlight.add(row.id)
    let outcome: Outcome
    try {
      const to = this.#o.vault.open(row.sealed)
      const task: SingleSendTask = {
        route: this.#o.routes.forDomain(row.domain),
        envelopeFrom: `postmaster@${this.#o.config.mailDomain}`,
        message: { ...row.message, to }
      }
      outcome = await this.#o.pool.run(task, { name: 'sendSingle' }) as Outcome
    } catch (err) {
      this.#o.log.error({ err, outbox: row.id, purpose: row.purpose }, 'outbox delivery task failed')
      outcome = { seq: 0, kind: 'deferred', category: 'connection' }
    }
    try {
      await this.record(row, outcome)
    } finally {
      this.#inFlight.delete(row.id)
    }
  }

  private async record (row: OutboxRow, outcome: Outcome): Promise<void> {
    const { delivery } = this.#o.config
    const attempts = row.attempts + 1
    const base = { outbox: row.id, purpose: row.purpose, attempts, code: outcome.code }

    if (outcome.kind === 'accepted') {
      this.#o.log.debug(base, 'outbox mail accepted')
      await this.#o.store.outbox.remove(row.id)
      return
    }
    // The gateway's text may repeat the address, so only the code and category are logged.
    const recipient = maskAddress(this.#o.vault.open(row.sealed).replace(/"/g, ''))
    if (outcome.kind === 'rejected' || attempts >= delivery.maxAttempts) {
      this.#o.log.warn({ ...base, category: outcome.category, recipient }, 'outbox mail dropped')
      await this.#o.store.outbox.remove(row.id)
      return
    }
    const delay = Math.min(delivery.retryMaxSeconds, delivery.retryBaseSeconds * 2 ** (attempts - 1)) * 1000
    const nextAt = Date.now() + Math.round(delay * (0.9 + Math.random() * 0.2))
    this.#o.log.debug({ ...base, category: outcome.category }, 'outbox mail deferred')
    await this.#o.store.outbox.put(row.id, { ...row, attempts, nextAt })
  }

  private settle (): void {
    if (!this.#isIdle()) return
    const waiters = this.#waiters
    this.#waiters = []
    for (const resolve of waiters) resolve()
  }
}

/** An id in its angle brackets, or undefined when it is not a plain message id. */
function messageId (id: string): string | undefined {
  const trimmed = id.trim()
  const bracketed = trimmed.startsWith('<') ? trimmed : `<${trimmed}>`
  return MESSAGE_ID.test(bracketed) ? bracketed : undefined
}

function checkedAddress (input: string): ReturnType<typeof parseAddress> {
  try {
    return parseAddress(input)
  } catch (err) {
    const reason = err instanceof AddressError ? err.message : 'the address is not valid'
    throw new MimamoriError('MIMAMORI_BAD_ADDRESS', reason, { cause: err })
  }
}
