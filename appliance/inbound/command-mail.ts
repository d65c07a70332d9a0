// Runs in the appliance's main thread: the handler of mail to the command address (kind
// 'command'). No mail is acted on by its From alone: a command, a code and a cancel must each
// come from a registered staff address AND carry that person's secret (cmd+<secret>@, or a PIN
// line written to plain cmd@; see command-sender.ts). A command gets a preview with a one-time
// code, and only a reply with that code, from the same address and in time, submits the
// broadcast. Mail that fails authentication never counts against the real sender's allowance.
// Every step is in the audit log.

import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { Store } from '../store/store.js'
import type { AddressVault } from '../store/address-vault.js'
import type { Directory } from '../directory.js'
import type { Broadcast, BroadcastBook, BroadcastInput } from '../broadcasts.js'
import type { BroadcastReport } from '../appliance.js'
import type { OutboxMail } from '../outbox.js'
import type { InboundMail } from './inbox.js'
import { type ParsedAddress, parseAddress, lookupKey, maskAddress } from '../address.js'
import { MimamoriError } from '../errors.js'
import { audit } from '../audit-log.js'
import { StaffBook, type Staff, sendRefusal } from '../staff.js'
import {
  parseCommand, isCommand, freshText, readConfirmation, type GrammarProblem
} from './command-grammar.js'
import { resolveCommand } from './command-targets.js'
import { CommandLimits, REFUSAL_LIMITS, type RefusalCap, type RefusalLimits } from './command-limits.js'
import { authenticate, type AuthFailure } from './command-sender.js'
import { MailCommandBook, type MailCommand } from './mail-commands.js'
import {
  previewReply, acceptedReply, cancelledReply, summaryReply, refusalReply, grammarDetail,
  NOT_ACCEPTED, DETAIL, type RefusalReason, type ReplyText
} from './command-replies.js'

/** What the handler needs of the appliance; Appliance has all of it. */
export interface CommandMailHost {
  config: Config
  log: Logger
  store: Store
  vault: AddressVault
  directory: Directory
  book: BroadcastBook
  dispatcher: {
    on: (event: 'finished', listener: (b: Broadcast) => void) => unknown
    off: (event: 'finished', listener: (b: Broadcast) => void) => unknown
  }
  outbox: { enqueue: (mail: OutboxMail) => number }
  submit: (input: BroadcastInput) => Broadcast
  report: (id: number) => BroadcastReport
}

interface Context {
  inbound: InboundMail
  from: ParsedAddress
  /** blind index of the From, the key of its counters */
  key: string
  staff?: Staff
  /** the mail carries the secret of the registered sender: only then may it act */
  authenticated: boolean
}

export interface CommandMailOptions {
  now?: () => number
  refusals?: Partial<RefusalLimits>
}

const IGNORED_LOCALS = /^(?:mailer-daemon|postmaster|no-?reply|noreply|bounce[s]?)$/i

export class CommandMail {
  readonly staff: StaffBook
  readonly commands: MailCommandBook
  readonly limits: CommandLimits
  readonly refusals: RefusalLimits
  readonly #log: Logger
  readonly #onFinished = (b: Broadcast): void => { void this.sendSummary(b.id) }

  constructor (readonly host: CommandMailHost, options: CommandMailOptions = {}) {
    const now = options.now ?? Date.now
    this.staff = new StaffBook(host.directory)
    this.commands = new MailCommandBook(host.store, host.vault, now)
    this.limits = new CommandLimits(host.store, now)
    this.refusals = { ...REFUSAL_LIMITS, ...options.refusals }
    this.#log = host.log.child({ component: 'commands' })
  }

  /** Follows finished broadcasts and mails the summaries a restart left owed. */
  start (): void {
    this.host.dispatcher.on('finished', this.#onFinished)
    for (const command of this.commands.interrupted()) this.recover(command)
    for (const command of this.commands.summariesOwed()) {
      const broadcast = this.host.store.broadcasts.get(command.broadcastId as number) as Broadcast | undefined
      const status = broadcast?.status
      if (status === 'done' || status === 'cancelled') void this.sendSummary(command.broadcastId as number, command)
    }
  }

  // A stop between taking the code and recording the broadcast: the broadcast is found by its
  // sender, subject and time if it was submitted; otherwise the person is told to send again.
  private recover (command: MailCommand): void {
    const decided = command.decidedAt ?? command.createdAt
    const broadcast = this.host.book.list(new Set([command.organisationId]), 1000).find((b) =>
      b.createdBy === command.login && b.subject === command.subject && b.submittedAt >= decided &&
      this.commands.forBroadcast(b.id) === undefined)
    if (broadcast !== undefined) {
      this.commands.update(command.id, { broadcastId: broadcast.id, summaryOwed: true })
      return
    }
    this.commands.update(command.id, { state: 'failed' })
    const text = refusalReply('submit-failed', DETAIL.interrupted(), command.subject)
    this.host.outbox.enqueue({
      to: this.host.vault.open(command.sealedFrom), ...text, replyTo: command.commandAddress, purpose: 'command-refusal'
    })
    audit(this.host.store, {
      actor: 'system', action: 'command.refused', target: `command:${command.id}`, detail: { reason: 'interrupted' }
    })
  }

  stop (): void {
    this.host.dispatcher.off('finished', this.#onFinished)
  }

  /** The inbound handler. Idempotent: a mail handled once is not handled again after a crash. */
  readonly handle = async (inbound: InboundMail): Promise<void> => {
    const seen = `seen:${inbound.id}`
    if (this.host.store.commandLimits.get(seen) !== undefined) return
    await this.process(inbound)
    this.host.store.commandLimits.putSync(seen, Date.now())
  }

  private async process (inbound: InboundMail): Promise<void> {
    const from = this.senderOf(inbound)
    if (from === undefined) return
    const key = this.host.vault.index(`command-sender:${lookupKey(from)}`)
    const staff = this.staff.byAddress(from)
    const ctx: Context = {
      inbound, from, key, authenticated: false, ...(staff === undefined ? {} : { staff })
    }

    const claim = { staff, tag: inbound.tag, text: inbound.mail.text, key }
    const failure = await authenticate(this.staff, this.limits, this.refusals, claim)
    if (failure !== undefined) return this.refuseAuth(ctx, failure)
    ctx.authenticated = true

    const perHour = this.host.config.commands.perHour
    if (this.limits.exhausted(key, perHour)) {
      return this.refuseThrottled(ctx, 'rate-limited', DETAIL.rateLimited(perHour), 'rate-limited', 'rate')
    }
    if (isCommand(inbound.mail.text)) return this.command(ctx, ctx.staff as Staff)
    return this.confirmation(ctx, ctx.staff as Staff)
  }

  // Null senders, auto-replies, our own domain and mailer daemons get no answer at all: that is
  // what keeps two automatic systems from mailing each other for ever.
  private senderOf (inbound: InboundMail): ParsedAddress | undefined {
    const envelope = inbound.envelopeFrom.trim()
    const skip = (reason: string): undefined => {
      this.#log.debug({ inbound: inbound.id, reason }, 'command mail ignored')
      return undefined
    }
    if (envelope === '' || envelope === '<>') return skip('null sender')
    if (inbound.mail.autoSubmitted) return skip('auto-submitted')
    if (inbound.mail.from === undefined) return skip('no From')
    let from: ParsedAddress
    try {
      from = parseAddress(inbound.mail.from)
    } catch {
      return skip('unreadable From')
    }
    if (from.domain === this.host.config.mailDomain.toLowerCase()) return skip('own domain')
    if (IGNORED_LOCALS.test(from.local)) return skip('mailer daemon')
    return from
  }

  // Counted apart from the sender's allowance: a forged From must not lock the real sender out.
  // Past a cap a mail is dropped unanswered, and only the first drop of the hour is audited.
  private refuseAuth (ctx: Context, reason: AuthFailure): void {
    const cap = this.limits.refusal(ctx.key, this.refusals)
    if (cap !== undefined) return this.drop(ctx, reason, cap)
    if (reason === 'missing-secret') {
      return this.refuseThrottled(ctx, reason, DETAIL.missingSecret(ctx.staff?.pinHash !== undefined))
    }
    this.refuseThrottled(ctx, 'not-accepted', NOT_ACCEPTED, reason)
  }

  private drop (ctx: Context, reason: AuthFailure, cap: RefusalCap): void {
    const first = this.limits.mayReply(CommandLimits.capKey(ctx.key, cap), `flood-${cap}`)
    if (!first) {
      this.#log.debug({ inbound: ctx.inbound.id, reason, cap }, 'mail command dropped')
      return
    }
    const limit = cap === 'sender' ? this.refusals.perSender : this.refusals.overall
    this.record(ctx, 'command.refused', undefined, { reason, dropped: true, cap, limit })
    this.#log.warn({ inbound: ctx.inbound.id, reason, cap, limit },
      'mail command flood: further refusals this hour dropped')
  }

  // -- a new command --------------------------------------------------------------------

  private command (ctx: Context, staff: Staff): void {
    const { mail } = ctx.inbound
    this.limits.hit(ctx.key)
    let text
    try {
      text = parseCommand({ subject: commandSubject(mail.subject), text: freshText(mail.text) })
    } catch (err) {
      if (!(err instanceof MimamoriError) || err.code !== 'MIMAMORI_COMMAND_INVALID') throw err
      const problems = (err.details as { problems: GrammarProblem[] }).problems
      return this.refuse(ctx, 'grammar', grammarDetail(problems), { problems: problems.map((p) => p.line) })
    }

    const resolution = resolveCommand(this.host.directory, this.host.book, staff, text)
    if (!resolution.ok) return this.refuse(ctx, resolution.reason, resolution)
    const resolved = resolution.command
    if (resolved.total === 0) {
      return this.refuse(ctx, 'no-recipients', DETAIL.noRecipients(resolved.excluded))
    }

    const minutes = this.host.config.commands.confirmMinutes
    const { command, code } = this.commands.create({
      staffId: staff.id,
      login: staff.login,
      fromIndex: this.staff.addressIndex(ctx.from),
      sealedFrom: this.host.vault.seal(ctx.from.smtp),
      commandAddress: ctx.inbound.recipient,
      ...(mail.messageId === undefined ? {} : { messageId: mail.messageId }),
      ...resolved,
      subject: text.subject,
      body: text.body,
      priority: text.priority
    }, minutes)
    const org = this.host.directory.organisation(command.organisationId)
    const preview = previewReply(command, code, org.name, minutes, this.host.config.timeZone, {
      pinLine: ctx.inbound.tag === undefined
    })
    this.reply(ctx, preview, 'command-preview')
    this.record(ctx, 'command.preview', `command:${command.id}`, {
      organisation: command.organisationId, targets: command.counts.map((c) => c.label),
      total: command.total, priority: command.priority, subject: command.subject
    })
    this.#log.info({ command: command.id, staff: staff.id, total: command.total }, 'mail command previewed')
  }

  // -- a reply to a preview -------------------------------------------------------------

  private confirmation (ctx: Context, staff: Staff): void {
    const { mail } = ctx.inbound
    const fromIndex = this.staff.addressIndex(ctx.from)
    const answer = readConfirmation(mail.text)
    const named = /#(\d+)\]/.exec(mail.subject)?.[1]
    const commandId = named === undefined ? undefined : Number(named)

    if (answer.cancel) {
      const cancelled = this.commands.cancel(fromIndex, commandId)
      if (cancelled === undefined) return this.refuse(ctx, 'no-pending', DETAIL.noPending())
      this.reply(ctx, cancelledReply(cancelled), 'command-cancelled')
      this.record(ctx, 'command.cancel', `command:${cancelled.id}`)
      return
    }
    if (answer.code === undefined) {
      this.limits.hit(ctx.key)
      return this.refuse(ctx, 'no-code', DETAIL.noCode())
    }

    const attempts = this.host.config.commands.codeAttempts
    const check = this.commands.useCode(fromIndex, answer.code, attempts, commandId)
    if (check.ok) return this.submit(ctx, staff, check.command)
    if (check.reason === 'wrong-code') this.limits.hit(ctx.key)
    this.refuseCode(ctx, check.reason, check.command, attempts)
  }

  private refuseCode (ctx: Context, reason: 'no-pending' | 'wrong-code' | 'expired' | 'used',
    command: MailCommand | undefined, attempts: number): void {
    const target = command === undefined ? undefined : `command:${command.id}`
    if (reason === 'no-pending') return this.refuse(ctx, reason, DETAIL.noPending())
    if (reason === 'expired') return this.refuse(ctx, reason, DETAIL.expired(command?.id), undefined, target)
    if (reason === 'used') return this.refuse(ctx, reason, DETAIL.used(command), undefined, target)
    if (command?.state === 'void') {
      return this.refuse(ctx, 'too-many-wrong-codes', DETAIL.void(command.id, attempts), undefined, target)
    }
    const left = attempts - (command?.wrongCodes ?? 0)
    this.refuse(ctx, 'wrong-code', DETAIL.wrongCode(left), undefined, target)
  }

  private submit (ctx: Context, staff: Staff, command: MailCommand): void {
    // The role is checked again: it may have changed since the preview.
    const groups = command.targets.groups ?? []
    const refusal = sendRefusal(staff, this.host.directory, { organisationId: command.organisationId, groups })
    let broadcast: Broadcast
    try {
      if (refusal !== undefined) throw new MimamoriError('MIMAMORI_FORBIDDEN', refusal)
      broadcast = this.host.submit({
        organisationId: command.organisationId,
        subject: command.subject,
        body: command.body,
        priority: command.priority,
        targets: command.targets,
        createdBy: staff.login
      })
    } catch (err) {
      if (!(err instanceof MimamoriError)) throw err
      this.commands.update(command.id, { state: 'failed' })
      return this.refuse(ctx, 'submit-failed', { ja: err.message, en: err.message }, { code: err.code }, `command:${command.id}`)
    }
    // Set in the same tick as the submit: the broadcast cannot finish before it is owed a summary.
    this.commands.update(command.id, { broadcastId: broadcast.id, summaryOwed: true })
    this.reply(ctx, acceptedReply(command, broadcast.id, broadcast.total), 'command-accepted')
    this.record(ctx, 'command.confirm', `command:${command.id}`, { broadcast: broadcast.id, total: broadcast.total })
    this.#log.info({ command: command.id, broadcast: broadcast.id, staff: staff.id }, 'mail command confirmed')
  }

  // -- the summary ----------------------------------------------------------------------

  private async sendSummary (broadcastId: number, owed?: MailCommand): Promise<void> {
    const command = owed ?? this.commands.forBroadcast(broadcastId)
    if (command === undefined || command.summaryOwed !== true) return
    await this.host.store.root.committed
    const report = this.host.report(broadcastId)
    if (report.status !== 'done' && report.status !== 'cancelled') return
    if (!this.commands.takeSummary(command.id)) return

    const to = this.host.vault.open(command.sealedFrom)
    const text = summaryReply(command, report, this.host.config.timeZone)
    this.host.outbox.enqueue({
      to, ...text, replyTo: command.commandAddress, purpose: 'command-summary',
      ...(command.messageId === undefined ? {} : { inReplyTo: command.messageId, references: [command.messageId] })
    })
    audit(this.host.store, {
      actor: 'system', action: 'command.summary', target: `command:${command.id}`,
      detail: { broadcast: broadcastId, status: report.status, ...report.counts }
    })
  }

  // -- replies and records --------------------------------------------------------------

  private refuse (
    ctx: Context, reason: RefusalReason, detail: { ja: string, en: string },
    extra?: Record<string, unknown>, target?: string
  ): void {
    this.reply(ctx, refusalReply(reason, detail, ctx.inbound.mail.subject), 'command-refusal')
    this.record(ctx, 'command.refused', target, { reason, ...extra })
    this.#log.info({ inbound: ctx.inbound.id, staff: ctx.staff?.id, reason }, 'mail command refused')
  }

  /**
   * A refusal that goes to an address at most once an hour: `notice` for mail that failed
   * authentication, `rate` for an authenticated sender over the allowance, so that forged mail
   * cannot use up the notice the real sender is owed.
   */
  private refuseThrottled (
    ctx: Context, reason: RefusalReason, detail: { ja: string, en: string }, why: string = reason,
    kind: 'notice' | 'rate' = 'notice'
  ): void {
    const send = this.limits.mayReply(ctx.key, kind)
    if (send) this.reply(ctx, refusalReply(reason, detail, ctx.inbound.mail.subject), 'command-refusal')
    this.record(ctx, 'command.refused', undefined, { reason: why, replied: send })
    this.#log.info({ inbound: ctx.inbound.id, staff: ctx.staff?.id, reason: why, replied: send }, 'mail command refused')
  }

  private reply (ctx: Context, text: ReplyText, purpose: string): void {
    const { mail, recipient } = ctx.inbound
    const references = [...mail.references, ...(mail.messageId === undefined ? [] : [mail.messageId])]
    this.host.outbox.enqueue({
      to: ctx.from.smtp,
      subject: text.subject,
      text: text.text,
      replyTo: recipient,
      purpose,
      ...(mail.messageId === undefined ? {} : { inReplyTo: mail.messageId }),
      references
    })
  }

  private record (ctx: Context, action: string, target?: string, detail?: Record<string, unknown>): void {
    // A mail that failed authentication is not the staff member's act, whatever its From says.
    const staff = ctx.authenticated ? ctx.staff : undefined
    const actor = staff === undefined ? `mail:${maskAddress(ctx.from.canonical)}` : `staff:${staff.login}`
    const claimed = !ctx.authenticated && ctx.staff !== undefined ? { claimed: ctx.staff.login } : {}
    audit(this.host.store, {
      actor, action, ...(target === undefined ? {} : { target }),
      detail: { inbound: ctx.inbound.id, ...claimed, ...detail }
    })
  }
}

/** The mail subject as a broadcast subject: without Re:/Fwd:, and never one of our own tags. */
export function commandSubject (subject: string): string {
  let s = subject.trim()
  for (;;) {
    const next = s.replace(/^(?:re|fwd?|転送|返信)\s*[:：]\s*/i, '')
    if (next === s) break
    s = next
  }
  return /^\[配信/.test(s) ? '' : s
}

/** Registers the handler on the appliance's inbox and starts following its broadcasts. */
export function registerCommandMail (
  appliance: CommandMailHost & { inbound: { on: (kind: 'command', handler: (mail: InboundMail) => Promise<void>) => void } },
  options: CommandMailOptions = {}
): CommandMail {
  const commands = new CommandMail(appliance, options)
  appliance.inbound.on('command', commands.handle)
  commands.start()
  return commands
}
