// Runs in the appliance: empty-mail sign-up (空メール登録). Any mail to entry@ or entry+<code>@
// gets back a one-time sign-up link; the web form asks for the same link by address. A link is
// stored only as a hash of its token, with the address sealed; it is single use and expires.

import { createHash, randomBytes } from 'node:crypto'
import type { Appliance } from './appliance.js'
import { type ParsedAddress, parseAddress, maskAddress, lookupKey } from './address.js'
import { senderAddress } from './config.js'
import { MimamoriError } from './errors.js'
import { inboundAddress } from './inbound/local-parts.js'
import { linkMail } from './signup-texts.js'
import type { SealedContact } from './directory.js'

export type SignupChannel = 'mail' | 'web'

export interface SignupLink {
  /** AddressVault-sealed JSON { a: SMTP spelling } */
  sealed: Uint8Array
  /** blind index of the address, to find the subscriber it becomes */
  index: string
  domain: string
  /** an organisation id or group id the sign-up mail named, to preselect */
  code?: string
  channel: SignupChannel
  createdAt: string
  expiresAt: string
  usedAt?: string
  subscriberId?: number
  wrongPasswords?: number
}

export type LinkState = 'used' | 'expired' | 'locked' | 'unknown'

export interface OpenedLink {
  key: string[]
  link: SignupLink
  address: ParsedAddress
}

/** Wrong group passwords a link survives; then it is closed, and guessing needs a new link. */
export const MAX_WRONG_PASSWORDS = 5
const HOUR = 3_600_000
// Kept after expiry so that a late tap says "used" or "expired" rather than "unknown".
const KEEP_EXPIRED_MS = 7 * 24 * HOUR

/** The key of a token: only its hash is stored, so a copy of the data opens no link. */
function linkKey (token: string): string[] {
  return ['link', createHash('sha256').update(token).digest('base64url')]
}

/** The address's blind index, the same the subscriber it becomes is found by. */
function indexOf (appliance: Appliance, address: ParsedAddress): string {
  return appliance.vault.index(lookupKey(address))
}

/**
 * Takes one of the address's sends for the hour, or refuses when they are used up: a person
 * needs one link, and the limit keeps the appliance from being used to mail-bomb an address.
 */
function takeSend (appliance: Appliance, index: string, now: number): boolean {
  const key = ['rate', index]
  const recent = ((appliance.store.signups.get(key) as number[] | undefined) ?? [])
    .filter((at) => at > now - HOUR)
  if (recent.length >= appliance.config.signup.linksPerHour) return false
  appliance.store.signups.putSync(key, [...recent, now])
  return true
}

/**
 * Makes a link for the address and mails it. Returns 'limited' (and sends nothing) when the
 * address had its links for this hour.
 */
export function issueSignupLink (appliance: Appliance, address: ParsedAddress, options: {
  channel: SignupChannel, code?: string, inReplyTo?: string, references?: string[]
}): 'sent' | 'limited' {
  const now = Date.now()
  const token = randomBytes(24).toString('base64url')
  const index = indexOf(appliance, address)
  const contact: SealedContact = { a: address.smtp }
  const link: SignupLink = {
    sealed: appliance.vault.seal(JSON.stringify(contact)),
    index,
    domain: address.domain,
    channel: options.channel,
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + appliance.config.signup.linkMinutes * 60_000).toISOString()
  }
  if (options.code !== undefined) link.code = options.code

  const stored = appliance.store.root.transactionSync(() => {
    if (!takeSend(appliance, index, now)) return false
    appliance.store.signups.putSync(linkKey(token), link)
    return true
  })
  if (!stored) return 'limited'

  const base = appliance.config.publicBaseUrl.replace(/\/+$/, '')
  const entry = inboundAddress('signup', appliance.config.mailDomain)
  const mail = linkMail(`${base}/signup/${token}`, appliance.config.signup.linkMinutes, entry)
  const out: Parameters<Appliance['outbox']['enqueue']>[0] = {
    to: address.smtp, subject: mail.subject, text: mail.text, purpose: 'signup-link'
  }
  if (options.inReplyTo !== undefined) out.inReplyTo = options.inReplyTo
  if (options.references !== undefined) out.references = options.references
  appliance.outbox.enqueue(out)
  sweepOldLinks(appliance, now)
  return 'sent'
}

/** The link a token opens, or MIMAMORI_SIGNUP_LINK_INVALID saying why not. */
export function openSignupLink (appliance: Appliance, token: string): OpenedLink {
  const refuse = (state: LinkState): never => {
    const details = { state }
    throw new MimamoriError('MIMAMORI_SIGNUP_LINK_INVALID', `the sign-up link is ${state}`, { details })
  }
  if (!/^[A-Za-z0-9_-]{32}$/.test(token)) refuse('unknown')
  const key = linkKey(token)
  const link = appliance.store.signups.get(key) as SignupLink | undefined
  if (link === undefined) return refuse('unknown')
  if (link.usedAt !== undefined) refuse('used')
  if ((link.wrongPasswords ?? 0) >= MAX_WRONG_PASSWORDS) refuse('locked')
  if (Date.parse(link.expiresAt) <= Date.now()) refuse('expired')
  const contact = JSON.parse(appliance.vault.open(link.sealed)) as SealedContact
  return { key, link, address: parseAddress(contact.a) }
}

/** Counts a wrong group password against the link; enough of them close it. */
export function countWrongPassword (appliance: Appliance, opened: OpenedLink): void {
  const wrongPasswords = (opened.link.wrongPasswords ?? 0) + 1
  appliance.store.signups.putSync(opened.key, { ...opened.link, wrongPasswords })
}

/** Marks the link used, inside the transaction that stores the sign-up. */
export function markLinkUsed (appliance: Appliance, opened: OpenedLink, subscriberId: number): void {
  const usedAt = new Date().toISOString()
  appliance.store.signups.putSync(opened.key, { ...opened.link, usedAt, subscriberId })
}

const lastSweep = new WeakMap<object, number>()

// Links pile up at a few per person; once an hour, those long expired go, and so do rate
// entries with nothing left in the hour.
function sweepOldLinks (appliance: Appliance, now: number): void {
  if (now - (lastSweep.get(appliance.store) ?? 0) < HOUR) return
  lastSweep.set(appliance.store, now)
  const { signups } = appliance.store
  for (const { key, value } of signups.getRange({ start: ['link'], end: ['link', '\uffff'] })) {
    if (Date.parse((value as SignupLink).expiresAt) < now - KEEP_EXPIRED_MS) void signups.remove(key)
  }
  for (const { key, value } of signups.getRange({ start: ['rate'], end: ['rate', '\uffff'] })) {
    if ((value as number[]).every((at) => at <= now - HOUR)) void signups.remove(key)
  }
}

/**
 * The web form's request for a link (double opt-in: nothing about the person is stored until
 * the link is used). Says nothing back: the page must read the same for any address.
 */
export function requestSignupLink (appliance: Appliance, address: ParsedAddress, code?: string): void {
  const log = appliance.log.child({ component: 'signup' })
  const from = maskAddress(address.canonical)
  if (isOwnDomain(appliance, address.domain)) {
    log.debug({ from, reason: 'own-address', channel: 'web' }, 'sign-up mail ignored')
    return
  }
  const options: Parameters<typeof issueSignupLink>[2] = { channel: 'web' }
  if (code !== undefined) options.code = code
  if (issueSignupLink(appliance, address, options) === 'limited') {
    log.debug({ from, reason: 'limited', channel: 'web' }, 'sign-up mail ignored')
    return
  }
  log.info({ from, code, channel: 'web' }, 'sign-up link sent')
}

/** The domain people must allow on their phones: the one our mail comes From. */
export function allowedDomain (appliance: Appliance): string {
  return senderAddress(appliance.config).split('@').pop() ?? appliance.config.mailDomain
}

// ---- codes ------------------------------------------------------------------------------

/** The code printed for a group: `higashi-es_4` for group `higashi-es/4` (tags take no `/`). */
export function groupCode (groupId: string): string {
  return groupId.replace('/', '_')
}

/** The organisation or group a code names, as its id; undefined when it names none. */
export function resolveCode (appliance: Appliance, code: string): string | undefined {
  const wanted = code.normalize('NFKC').trim().toLowerCase()
  if (appliance.store.organisations.get(wanted) !== undefined) return wanted
  const group = /^([a-z0-9-]+)_(\d+)$/.exec(wanted)
  if (group === null) return undefined
  const id = `${group[1] as string}/${group[2] as string}`
  return appliance.store.groups.get(id) !== undefined ? id : undefined
}

/** The first word of a subject that is a code: a phone's keyboard may give full-width letters. */
export function codeInSubject (appliance: Appliance, subject: string): string | undefined {
  const words = subject.normalize('NFKC').toLowerCase().match(/[a-z0-9][a-z0-9_-]*/g) ?? []
  for (const word of words.slice(0, 20)) {
    const id = resolveCode(appliance, word)
    if (id !== undefined) return id
  }
  return undefined
}

// ---- the inbound handler --------------------------------------------------------------

/** What the handler reads of an inbound mail (appliance/inbound/inbound-server.ts InboundMail). */
export interface SignupMail {
  id: number
  tag?: string
  envelopeFrom: string
  mail: {
    from?: string
    subject: string
    autoSubmitted: boolean
    messageId?: string
    references: string[]
  }
}

export type IgnoreReason =
  'null-sender' | 'auto-submitted' | 'no-from' | 'bad-from' | 'own-address' | 'limited'

// Mail systems' own mailboxes: answering them starts loops or bounces.
const SYSTEM_LOCAL = /^(mailer-daemon|postmaster|no-?reply|abuse)$/i

/** Why a sign-up mail gets no reply, or its sender's address when it gets one. */
export function signupSender (appliance: Appliance, mail: SignupMail): ParsedAddress | IgnoreReason {
  const envelope = mail.envelopeFrom.trim().replace(/^<(.*)>$/, '$1')
  if (envelope === '') return 'null-sender'
  if (mail.mail.autoSubmitted) return 'auto-submitted'
  if (mail.mail.from === undefined || mail.mail.from === '') return 'no-from'

  let from: ParsedAddress
  try {
    from = parseAddress(mail.mail.from)
  } catch {
    return 'bad-from'
  }
  const envelopeDomain = envelope.split('@').pop()?.toLowerCase() ?? ''
  const own = isOwnDomain(appliance, from.domain) || isOwnDomain(appliance, envelopeDomain)
  if (own || SYSTEM_LOCAL.test(from.local)) return 'own-address'
  return from
}

/** Our mail domain, our sender's domain, or below them: never sent a sign-up link. */
export function isOwnDomain (appliance: Appliance, domain: string): boolean {
  const own = [appliance.config.mailDomain, senderAddress(appliance.config).split('@').pop() ?? '']
  return own.some((d) => domain === d || domain.endsWith(`.${d}`))
}

/** The handler for kind 'signup': answers with a link, or ignores the mail and logs why. */
export function signupHandler (appliance: Appliance): (mail: SignupMail) => Promise<void> {
  const log = appliance.log.child({ component: 'signup' })
  return async (mail) => {
    const sender = signupSender(appliance, mail)
    if (typeof sender === 'string') {
      log.debug({ inbound: mail.id, reason: sender }, 'sign-up mail ignored')
      return
    }

    const code = (mail.tag !== undefined ? resolveCode(appliance, mail.tag) : undefined) ??
      codeInSubject(appliance, mail.mail.subject)
    const options: Parameters<typeof issueSignupLink>[2] = { channel: 'mail' }
    if (code !== undefined) options.code = code
    if (mail.mail.messageId !== undefined) {
      options.inReplyTo = mail.mail.messageId
      options.references = [...mail.mail.references, mail.mail.messageId]
    }
    const from = maskAddress(sender.canonical)
    if (issueSignupLink(appliance, sender, options) === 'limited') {
      log.debug({ inbound: mail.id, from, reason: 'limited' }, 'sign-up mail ignored')
      return
    }
    log.info({ from, code, channel: 'mail' }, 'sign-up link sent')
  }
}
