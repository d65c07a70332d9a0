// Runs in the appliance: mail-in commands waiting for their one-time code, and what became of
// each — submitted (with the broadcast and whether its summary is still owed), cancelled,
// expired or void. Persisted in the `mailCommands` sub-db, so a restart loses neither a
// pending command nor an owed summary. Codes are stored only as keyed hashes.

import { randomInt, timingSafeEqual } from 'node:crypto'
import type { Store } from '../store/store.js'
import { nextId } from '../store/store.js'
import type { AddressVault } from '../store/address-vault.js'
import type { Priority, Targets } from '../broadcasts.js'

export type MailCommandState = 'pending' | 'submitted' | 'cancelled' | 'expired' | 'void' | 'failed'

export interface TargetCount { label: string, recipients: number }

export interface MailCommand {
  id: number
  staffId: number
  login: string
  /** blind index of the staff address the command came from: only it may confirm */
  fromIndex: string
  /** that address, sealed, for the replies and the summary */
  sealedFrom: Uint8Array
  /** the command address it was sent to (cmd+<secret>@ or cmd@): the replies' Reply-To */
  commandAddress: string
  messageId?: string
  organisationId: string
  targets: Targets
  counts: TargetCount[]
  total: number
  excluded: number
  subject: string
  body: string
  priority: Priority
  codeHash: string
  wrongCodes: number
  createdAt: string
  expiresAt: string
  state: MailCommandState
  decidedAt?: string
  broadcastId?: number
  summaryOwed?: boolean
  /** the Message-ID of the preview, for threading the later mails */
  previewOutboxId?: number
}

export type NewMailCommand = Omit<MailCommand, 'id' | 'codeHash' | 'wrongCodes' | 'createdAt' |
'expiresAt' | 'state'>

export type CodeCheck =
  | { ok: true, command: MailCommand }
  | { ok: false, reason: 'no-pending' | 'wrong-code' | 'expired' | 'used', command?: MailCommand }

export class MailCommandBook {
  constructor (
    readonly store: Store,
    readonly vault: AddressVault,
    readonly now: () => number = Date.now
  ) {}

  get (id: number): MailCommand | undefined {
    return this.store.mailCommands.get(id) as MailCommand | undefined
  }

  /** Stores a pending command with a fresh 6-digit code; returns both (the code only here). */
  create (input: NewMailCommand, confirmMinutes: number): { command: MailCommand, code: string } {
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0')
    const now = this.now()
    const command = this.store.root.transactionSync(() => {
      const id = nextId(this.store, 'mail-command')
      const record: MailCommand = {
        ...input,
        id,
        codeHash: this.codeHash(id, code),
        wrongCodes: 0,
        createdAt: new Date(now).toISOString(),
        expiresAt: new Date(now + confirmMinutes * 60_000).toISOString(),
        state: 'pending'
      }
      this.store.mailCommands.putSync(id, record)
      return record
    })
    return { command, code }
  }

  update (id: number, change: Partial<MailCommand>): MailCommand {
    const next = { ...this.get(id) as MailCommand, ...change }
    this.store.mailCommands.putSync(id, next)
    return next
  }

  /** Commands from this address, newest first (the last day's: older ones cannot be confirmed). */
  recentFrom (fromIndex: string, hours = 24): MailCommand[] {
    const since = this.now() - hours * 3_600_000
    const out: MailCommand[] = []
    for (const { value } of this.store.mailCommands.getRange({ reverse: true })) {
      const command = value as MailCommand
      if (Date.parse(command.createdAt) < since) break
      if (command.fromIndex === fromIndex) out.push(command)
    }
    return out
  }

  /**
   * Consumes a code: the newest pending command from this address whose code it is becomes
   * 'submitted'-bound (state set by the caller). A wrong code counts against the newest pending
   * command; after `attempts` wrong codes that command is void. Runs in one write transaction,
   * so a code is used once even when two replies arrive together.
   */
  useCode (fromIndex: string, code: string | undefined, attempts: number, commandId?: number): CodeCheck {
    return this.store.root.transactionSync(() => {
      const recent = this.recentFrom(fromIndex)
        .filter((c) => commandId === undefined || c.id === commandId)
      const matching = code === undefined ? undefined : recent.find((c) => this.matches(c, code))
      if (matching !== undefined) return this.take(matching)

      const pending = recent.find((c) => c.state === 'pending')
      if (pending === undefined) return { ok: false, reason: 'no-pending' }
      if (this.expired(pending)) return { ok: false, reason: 'expired', command: this.expire(pending) }
      const wrongCodes = pending.wrongCodes + 1
      const command = this.update(pending.id, {
        wrongCodes, ...(wrongCodes >= attempts ? { state: 'void', decidedAt: this.iso() } : {})
      })
      return { ok: false, reason: 'wrong-code', command }
    })
  }

  /** Cancels the pending command (the one named, else the newest) from this address. */
  cancel (fromIndex: string, commandId?: number): MailCommand | undefined {
    return this.store.root.transactionSync(() => {
      const pending = this.recentFrom(fromIndex).find((c) =>
        c.state === 'pending' && (commandId === undefined || c.id === commandId))
      if (pending === undefined) return undefined
      return this.update(pending.id, { state: 'cancelled', decidedAt: this.iso() })
    })
  }

  /** Submitted commands whose summary has not been mailed yet. */
  summariesOwed (): MailCommand[] {
    return [...this.store.mailCommands.getRange()]
      .map((e) => e.value as MailCommand)
      .filter((c) => c.summaryOwed === true)
  }

  /** Commands whose code was taken but whose broadcast was never recorded (a stop in between). */
  interrupted (): MailCommand[] {
    return [...this.store.mailCommands.getRange()]
      .map((e) => e.value as MailCommand)
      .filter((c) => c.state === 'submitted' && c.broadcastId === undefined)
  }

  /** The command that made a broadcast, if any. */
  forBroadcast (broadcastId: number): MailCommand | undefined {
    for (const { value } of this.store.mailCommands.getRange({ reverse: true })) {
      const command = value as MailCommand
      if (command.broadcastId === broadcastId) return command
    }
    return undefined
  }

  /** Clears summaryOwed once; false when another caller got there first. */
  takeSummary (id: number): boolean {
    return this.store.root.transactionSync(() => {
      if (this.get(id)?.summaryOwed !== true) return false
      this.update(id, { summaryOwed: false })
      return true
    })
  }

  private take (command: MailCommand): CodeCheck {
    if (command.state === 'expired') return { ok: false, reason: 'expired', command }
    if (command.state !== 'pending') return { ok: false, reason: 'used', command }
    if (this.expired(command)) return { ok: false, reason: 'expired', command: this.expire(command) }
    return { ok: true, command: this.update(command.id, { state: 'submitted', decidedAt: this.iso() }) }
  }

  private expired (command: MailCommand): boolean {
    return this.now() > Date.parse(command.expiresAt)
  }

  private expire (command: MailCommand): MailCommand {
    return this.update(command.id, { state: 'expired', decidedAt: this.iso() })
  }

  private matches (command: MailCommand, code: string): boolean {
    const given = Buffer.from(this.codeHash(command.id, code))
    const stored = Buffer.from(command.codeHash)
    return given.length === stored.length && timingSafeEqual(given, stored)
  }

  // A keyed hash: a copy of the data alone does not give the codes of pending commands away.
  private codeHash (id: number, code: string): string {
    return this.vault.index(`mail-command:${id}:${code}`)
  }

  private iso (): string {
    return new Date(this.now()).toISOString()
  }
}
