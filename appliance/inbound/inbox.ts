// Runs in the appliance's main thread: the inbox. Every mail the SMTP service accepts is written
// here, one row per recipient of ours, and flushed to disk before the 250 reply; then the handler
// registered for its kind (reply, bounce, sign-up, command…) takes it, one mail at a time. A row
// is removed only after its handler completed, so a crash in between hands the mail to the
// handler again at the next open: handlers must be idempotent. A handler that throws leaves its
// row kept, marked failed, for inspection; it is not tried again.

import type { Logger } from 'pino'
import type { Store } from '../store/store.js'
import { nextId } from '../store/store.js'
import { maskAddress } from '../address.js'
import { inboundTarget, type InboundKind } from './local-parts.js'
import type { DecodedMail } from './mail-decoding.js'

export interface InboundMail {
  id: number
  kind: InboundKind
  tag?: string
  /** MAIL FROM as received; '' for a bounce (the null sender) */
  envelopeFrom: string
  /** the RCPT TO of ours this row is for */
  recipient: string
  raw: Buffer
  mail: DecodedMail
  receivedAt: string
}

export type InboundHandler = (mail: InboundMail) => Promise<void>

export type InboxState = 'new' | 'failed' | 'unhandled'

export interface InboxRow {
  id: number
  kind: InboundKind
  tag?: string
  envelopeFrom: string
  recipient: string
  raw: Uint8Array
  receivedAt: string
  state: InboxState
  /** why the handler failed, for the operator */
  error?: string
}

export interface Envelope { from: string, to: string[] }

export interface InboxOptions {
  store: Store
  mailDomain: string
  log: Logger
  /** how long a handler may take before its mail is marked failed */
  handlerTimeoutMs?: number
}

const DEFAULT_TIMEOUT_MS = 60_000

export class Inbox {
  readonly #o: InboxOptions
  readonly #handlers = new Map<InboundKind, InboundHandler>()
  readonly #queue: number[] = []
  #running: Promise<void> | undefined
  #waiters: Array<() => void> = []
  #stopped = false

  constructor (options: InboxOptions) {
    this.#o = options
  }

  /** Registers the handler of one kind of mail; a later registration replaces it. */
  on (kind: InboundKind, handler: InboundHandler): void {
    this.#handlers.set(kind, handler)
  }

  /** Queues the rows a crash or a stop left unhandled; call once the handlers are registered. */
  start (): void {
    let pending = 0
    for (const { key, value } of this.#o.store.inbox.getRange()) {
      if ((value as InboxRow).state === 'failed') continue
      this.#queue.push(key as number)
      pending++
    }
    if (pending > 0) this.#o.log.info({ pending }, 'inbox resumed')
    this.kick()
  }

  /**
   * Stores a mail durably, one row per recipient of ours (others are ignored), then queues it.
   * Resolves once the rows are on disk: only then may the SMTP service answer 250.
   */
  async receive (raw: Buffer, envelope: Envelope): Promise<number[]> {
    const receivedAt = new Date().toISOString()
    const rows: InboxRow[] = []
    this.#o.store.root.transactionSync(() => {
      for (const recipient of envelope.to) {
        const target = targetOf(recipient, this.#o.mailDomain)
        if (target === undefined) continue
        const row: InboxRow = {
          id: nextId(this.#o.store, 'inbox'),
          kind: target.kind,
          envelopeFrom: envelope.from,
          recipient,
          raw,
          receivedAt,
          state: 'new'
        }
        if (target.tag !== undefined) row.tag = target.tag
        this.#o.store.inbox.putSync(row.id, row)
        rows.push(row)
      }
    })
    await this.#o.store.root.flushed
    for (const row of rows) this.#queue.push(row.id)
    this.kick()
    return rows.map((r) => r.id)
  }

  /** Resolves when every queued mail has been handled (for tests). */
  async idle (): Promise<void> {
    if (this.#queue.length === 0 && this.#running === undefined) return
    await new Promise<void>((resolve) => this.#waiters.push(resolve))
  }

  /** The rows kept after a failed handler, for inspection. */
  failed (): InboxRow[] {
    return [...this.#o.store.inbox.getRange()].map((e) => e.value as InboxRow)
      .filter((r) => r.state !== 'new')
  }

  /** Takes no new mail from the queue; waits for the one being handled (within graceMs). */
  async stop (graceMs = 5000): Promise<void> {
    this.#stopped = true
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs) })
    await Promise.race([this.#running, grace])
    clearTimeout(timer)
  }

  private kick (): void {
    if (this.#running !== undefined || this.#stopped) return
    const drained = this.drain().catch((err: unknown) => {
      // Only a store closed under a handler still at work gets here; its row stays 'new'.
      this.#o.log.error({ err }, 'inbox stopped with a mail in hand')
    })
    this.#running = drained.finally(() => {
      this.#running = undefined
      if (this.#queue.length > 0 && !this.#stopped) this.kick()
      else this.settle()
    })
  }

  private async drain (): Promise<void> {
    while (!this.#stopped) {
      const id = this.#queue.shift()
      if (id === undefined) return
      const row = this.#o.store.inbox.get(id) as InboxRow | undefined
      if (row === undefined || row.state === 'failed') continue
      await this.handle(row)
    }
  }

  private async handle (row: InboxRow): Promise<void> {
    const log = this.#o.log
    const handler = this.#handlers.get(row.kind)
    if (handler === undefined) {
      // Kept: a later version, or the next open with its handler registered, takes it up.
      log.warn({ inbound: row.id, kind: row.kind }, 'inbound mail has no handler')
      await this.#o.store.inbox.put(row.id, { ...row, state: 'unhandled' })
      return
    }

    const raw = Buffer.from(row.raw.buffer, row.raw.byteOffset, row.raw.byteLength)
    const mail: InboundMail = {
      id: row.id,
      kind: row.kind,
      envelopeFrom: row.envelopeFrom,
      recipient: row.recipient,
      raw,
      mail: await (await mailDecoding()).decodeMail(raw),
      receivedAt: row.receivedAt
    }
    if (row.tag !== undefined) mail.tag = row.tag

    try {
      await withTimeout(handler(mail), this.#o.handlerTimeoutMs ?? DEFAULT_TIMEOUT_MS)
      await this.#o.store.inbox.remove(row.id)
    } catch (err) {
      const from = row.envelopeFrom === '' ? '<>' : maskAddress(row.envelopeFrom)
      log.error({ err, inbound: row.id, kind: row.kind, from }, 'inbound handler failed')
      const error = String((err as Error)?.message ?? err).slice(0, 500)
      await this.#o.store.inbox.put(row.id, { ...row, state: 'failed', error })
    }
  }

  private settle (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const resolve of waiters) resolve()
  }
}

/** The kind of one of our recipients; the bare `postmaster` of RFC 5321 4.1.1.3 included. */
export function targetOf (recipient: string, mailDomain: string): ReturnType<typeof inboundTarget> {
  if (recipient.toLowerCase() === 'postmaster') return { kind: 'postmaster' }
  return inboundTarget(unquoteLocal(recipient), mailDomain)
}

// `"reply+abc"@domain` is the same mailbox as reply+abc@domain.
function unquoteLocal (address: string): string {
  const at = address.lastIndexOf('@')
  const local = address.slice(0, at)
  if (at < 2 || !local.startsWith('"') || !local.endsWith('"')) return address
  return `${local.slice(1, -1).replace(/\\(.)/g, '$1')}${address.slice(at)}`
}

async function withTimeout (work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`the handler took longer than ${ms} ms`)), ms)
    // A hung handler must not keep a stopping process alive.
    timer.unref()
  })
  try {
    await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

// mailparser, the MIME splitter and the Japanese charset tables take some 25 MB: they are
// loaded with the first mail, not at start, so an appliance that only sends does not carry them.
let decoding: Promise<typeof import('./mail-decoding.js')> | undefined
async function mailDecoding (): Promise<typeof import('./mail-decoding.js')> {
  decoding ??= import('./mail-decoding.js')
  return await decoding
}
