// The appliance's own mail addresses, all at the configured mail domain. Which one a mail was
// sent to decides what it is: a sign-up, a staff command, a recipient's reply or a bounce.
// Anything else at our domain is refused at RCPT, and nothing is relayed.

export type InboundKind = 'signup' | 'command' | 'reply' | 'bounce' | 'postmaster'

export interface InboundTarget {
  kind: InboundKind
  /** what follows the `+`: an organisation or group code, a staff secret or a recipient token */
  tag?: string
}

/** Local part (before any `+`) → kind. `entry` and `cmd` may stand alone; the others need a tag. */
const KINDS: Record<string, { kind: InboundKind, tag: 'optional' | 'required' | 'none' }> = {
  entry: { kind: 'signup', tag: 'optional' },
  cmd: { kind: 'command', tag: 'optional' },
  reply: { kind: 'reply', tag: 'required' },
  bounce: { kind: 'bounce', tag: 'required' },
  postmaster: { kind: 'postmaster', tag: 'none' },
  abuse: { kind: 'postmaster', tag: 'none' }
}

// Tags are our own tokens and codes: letters, digits, `-` and `_`, never anything a mail
// system would rewrite or a shell would read.
const TAG = /^[A-Za-z0-9_-]{1,128}$/

/**
 * What an envelope recipient is to the appliance, or undefined when it is not one of its
 * addresses (another domain, an unknown local part, a malformed tag).
 */
export function inboundTarget (recipient: string, mailDomain: string): InboundTarget | undefined {
  const at = recipient.lastIndexOf('@')
  if (at <= 0) return undefined
  if (recipient.slice(at + 1).toLowerCase() !== mailDomain.toLowerCase()) return undefined

  const local = recipient.slice(0, at)
  const plus = local.indexOf('+')
  const base = (plus === -1 ? local : local.slice(0, plus)).toLowerCase()
  const tag = plus === -1 ? undefined : local.slice(plus + 1)
  const entry = KINDS[base]
  if (entry === undefined) return undefined

  if (tag === undefined) return entry.tag === 'required' ? undefined : { kind: entry.kind }
  if (entry.tag === 'none' || !TAG.test(tag)) return undefined
  return { kind: entry.kind, tag }
}

/** The address of a kind at the domain, with its tag: `reply+<token>@city.example.jp`. */
export function inboundAddress (kind: Exclude<InboundKind, 'postmaster'>, mailDomain: string, tag?: string): string {
  const base = { signup: 'entry', command: 'cmd', reply: 'reply', bounce: 'bounce' }[kind]
  return tag === undefined ? `${base}@${mailDomain}` : `${base}+${tag}@${mailDomain}`
}
