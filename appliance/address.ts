// Mail addresses as Japanese carriers really issue them: parsing, one canonical spelling for
// look-up, and the quoted spelling SMTP needs for legacy local parts (`taro..yamada.@docomo`).

export interface ParsedAddress {
  /** The local part without quotes, as the mailbox owner spells it. */
  local: string
  /** The domain, lower-cased. */
  domain: string
  /** One spelling per mailbox: `local@domain`, quotes removed, domain lower-cased. */
  canonical: string
  /** The spelling for RCPT TO and headers: the local part quoted when it is not a dot-atom. */
  smtp: string
}

export type AddressProblem =
  | 'empty'
  | 'no-at'
  | 'bad-local'
  | 'bad-domain'
  | 'too-long'
  | 'non-ascii'
  | 'control-char'

export class AddressError extends Error {
  readonly code = 'MIMAMORI_BAD_ADDRESS'
  constructor (readonly problem: AddressProblem, message: string) {
    super(message)
  }
}

// RFC 5322 atext: what a local part may hold unquoted, dots aside.
const ATEXT = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$/
const DOMAIN_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
// Carriers issued local parts with runs of dots and a dot at either end before 2009; such a
// local part is legal only quoted, yet the carriers still deliver to it.
const LEGACY_LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$/

function isDotAtom (local: string): boolean {
  return local.split('.').every((part) => ATEXT.test(part))
}

function unquote (local: string): string | undefined {
  if (!(local.length >= 2 && local.startsWith('"') && local.endsWith('"'))) return undefined
  return local.slice(1, -1).replace(/\\(.)/g, '$1')
}

function checkDomain (domain: string): void {
  const labels = domain.split('.')
  if (labels.length < 2 || !labels.every((label) => DOMAIN_LABEL.test(label))) {
    throw new AddressError('bad-domain', `"${domain}" is not a valid mail domain`)
  }
}

/** Parses one address (bare or `<...>`) and throws AddressError with a plain reason. */
export function parseAddress (input: string): ParsedAddress {
  const text = input.trim().replace(/^<(.*)>$/, '$1').trim()
  if (text === '') throw new AddressError('empty', 'the address is empty')
  if (/[\r\n\0\t]/.test(text)) {
    throw new AddressError('control-char', 'the address contains a line break or control character')
  }
  if (/[^\x20-\x7e]/.test(text)) {
    throw new AddressError('non-ascii', 'the address contains characters other than ASCII')
  }
  if (text.length > 254) throw new AddressError('too-long', 'the address is longer than 254 characters')

  const at = text.lastIndexOf('@')
  if (at <= 0 || at === text.length - 1) throw new AddressError('no-at', 'the address has no "@"')
  const rawLocal = text.slice(0, at)
  const domain = text.slice(at + 1).toLowerCase()
  checkDomain(domain)

  const local = unquote(rawLocal) ?? rawLocal
  if (local.length === 0 || local.length > 64 || !LEGACY_LOCAL.test(local)) {
    throw new AddressError('bad-local', `"${rawLocal}" is not a valid local part`)
  }

  const smtpLocal = isDotAtom(local) ? local : `"${local}"`
  return { local, domain, canonical: `${local}@${domain}`, smtp: `${smtpLocal}@${domain}` }
}

/** The key a mailbox is found by: carriers treat local parts case-insensitively. */
export function lookupKey (address: ParsedAddress): string {
  return address.canonical.toLowerCase()
}

/** Masks an address for display: `ta***@docomo.ne.jp`. */
export function maskAddress (canonical: string): string {
  const at = canonical.lastIndexOf('@')
  if (at < 0) return '***'
  return `${canonical.slice(0, Math.min(2, at))}***${canonical.slice(at)}`
}
