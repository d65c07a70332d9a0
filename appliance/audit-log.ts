// Runs in the appliance and the CLI: the audit log — who did what to which record, and when.
// Events are only ever added. No address is written in clear: anything in an event that looks
// like a mail address is masked before it is stored, so a careless caller cannot leak one.

import type { Store } from './store/store.js'
import { nextId } from './store/store.js'
import { maskAddress } from './address.js'

export interface AuditInput {
  /** who acted: `staff:<login>`, `cli`, `token:<name>`, `mail:<masked address>`, `system` */
  actor: string
  /** what happened, dotted: `staff.create`, `command.preview`, `command.refused`… */
  action: string
  /** the record acted on: `staff:12`, `broadcast:40`, `command:7` */
  target?: string
  detail?: Record<string, unknown>
}

export interface AuditEvent extends AuditInput {
  at: string
  seq: number
}

// Anything shaped like local@domain.tld, quoted legacy local parts included.
const ADDRESS = /"[^"\s]*"@[A-Za-z0-9.-]+|[^\s"'<>(),;:@]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/g

/** Masks every address-like substring: `taro@docomo.ne.jp` → `ta***@docomo.ne.jp`. */
export function maskAddresses (text: string): string {
  return text.replace(ADDRESS, (found) => maskAddress(found))
}

function scrub (value: unknown): unknown {
  if (typeof value === 'string') return maskAddresses(value)
  if (Array.isArray(value)) return value.map(scrub)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v)]))
  }
  return value
}

/**
 * Adds one event to store.audit. The key is [epoch ms, seq]; seq is taken in the same write
 * transaction, so the CLI and the running appliance never overwrite each other's events.
 */
export function audit (store: Store, input: AuditInput): AuditEvent {
  return store.root.transactionSync(() => {
    const now = Date.now()
    const event: AuditEvent = {
      at: new Date(now).toISOString(),
      seq: nextId(store, 'audit'),
      actor: maskAddresses(input.actor),
      action: input.action
    }
    if (input.target !== undefined) event.target = maskAddresses(input.target)
    if (input.detail !== undefined) event.detail = scrub(input.detail) as Record<string, unknown>
    store.audit.putSync([now, event.seq], event)
    return event
  })
}

/** Events, newest first; `action` keeps those whose action starts with it. */
export function auditEvents (
  store: Store, options: { limit?: number, action?: string, since?: Date } = {}
): AuditEvent[] {
  const out: AuditEvent[] = []
  const end = options.since === undefined ? undefined : [options.since.getTime()]
  for (const { value } of store.audit.getRange({ reverse: true, ...(end === undefined ? {} : { end }) })) {
    const event = value as AuditEvent
    if (options.action === undefined || event.action.startsWith(options.action)) out.push(event)
    if (out.length >= (options.limit ?? 100)) break
  }
  return out
}
