// Runs in the appliance: our own alerts as CAP 1.2, so that other systems (a prefecture's hub, a
// broadcaster, signage) can relay them — one document per emergency or alert-rule broadcast, and
// an Atom feed of the latest. They are public like an archive of what went out: they carry the
// broadcast's subject and body and the organisation's name, never a recipient.

import { XMLBuilder } from 'fast-xml-parser'
import type { Appliance } from '../appliance.js'
import type { Broadcast } from '../broadcasts.js'
import { senderAddress } from '../config.js'
import { MimamoriError } from '../errors.js'
import type { AlertDraft } from './hazard-desk.js'
import type { HazardKind } from './hazard-event.js'

export type CapSource = Pick<Appliance, 'config' | 'store' | 'directory' | 'book' | 'hazards'>

export const CAP_NAMESPACE_1_2 = 'urn:oasis:names:tc:emergency:cap:1.2'
/** How many broadcasts the Atom feed lists. */
export const FEED_ENTRIES = 50
// Years of newsletters may lie between two alerts: the feed looks at this many broadcasts at most.
const SCAN_LIMIT = 5000

const CATEGORY: Record<HazardKind, string> = {
  'weather-warning': 'Met', landslide: 'Geo', earthquake: 'Geo', eew: 'Geo', tsunami: 'Geo',
  other: 'Safety'
}
const KIND_EVENT: Record<HazardKind, string> = {
  'weather-warning': '気象警報', landslide: '土砂災害警戒情報', earthquake: '地震', eew: '緊急地震速報',
  tsunami: '津波', other: '警報'
}

// the builder escapes <, >, &, ' and " in every text and attribute
const builder = new XMLBuilder({
  ignoreAttributes: false, attributeNamePrefix: '@_', format: true, indentBy: '  ',
  suppressEmptyNode: true
})
const PROLOG = { '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' } }

/**
 * Whether a broadcast is published as CAP: emergency priority or made by an alert rule. One sent
 * to hand-picked subscribers is a message to those people, not a public alert, and is not.
 */
export function isCapBroadcast (broadcast: Broadcast): boolean {
  if ((broadcast.targets.subscribers?.length ?? 0) > 0) return false
  return broadcast.priority === 'emergency' || draftIdOf(broadcast) !== undefined
}

/** The broadcast published as /cap/alerts/<id>.xml; MIMAMORI_NOT_FOUND for any other. */
export function capBroadcast (source: CapSource, id: number): Broadcast {
  const broadcast = source.store.broadcasts.get(id) as Broadcast | undefined
  if (broadcast === undefined || !isCapBroadcast(broadcast)) {
    throw new MimamoriError('MIMAMORI_NOT_FOUND', `no CAP alert ${id}`)
  }
  return broadcast
}

/** The latest broadcasts published as CAP, newest first. */
export function capBroadcasts (source: CapSource, limit = FEED_ENTRIES): Broadcast[] {
  const out: Broadcast[] = []
  for (const { value } of source.store.broadcasts.getRange({ reverse: true, limit: SCAN_LIMIT })) {
    const broadcast = value as Broadcast
    if (isCapBroadcast(broadcast)) out.push(broadcast)
    if (out.length >= limit) break
  }
  return out
}

/** The URL of a broadcast's CAP document under the public base URL. */
export function capAlertUrl (source: CapSource, id: number): string {
  return publicUrl(source, `/cap/alerts/${id}.xml`)
}

/** One broadcast as a CAP 1.2 alert document (UTF-8). */
export function capAlertDocument (source: CapSource, broadcast: Broadcast): string {
  const { config } = source
  const draft = draftOf(source, broadcast)
  const organisation = organisationName(source, broadcast.organisationId)
  return builder.build({
    ...PROLOG,
    alert: {
      '@_xmlns': CAP_NAMESPACE_1_2,
      identifier: `${config.mailDomain}-${broadcast.id}`,
      sender: senderAddress(config),
      sent: withOffset(broadcast.submittedAt, config.timeZone),
      status: draft?.drill === true ? 'Exercise' : 'Actual',
      // Known limitation: a notice cancelling or correcting a sent alert is published as an
      // Alert of its own; the proper fix is Cancel/Update with <references> to the original.
      msgType: 'Alert',
      scope: 'Public',
      info: infoOf(source, broadcast, draft, organisation)
    }
  }) as string
}

function infoOf (
  source: CapSource, broadcast: Broadcast, draft: AlertDraft | undefined, organisation: string
): Record<string, unknown> {
  return {
    language: 'ja-JP',
    category: draft === undefined ? 'Safety' : CATEGORY[draft.kind],
    event: eventOf(draft),
    urgency: 'Immediate',
    severity: 'Severe',
    // a feed's alert reports what was observed; a person's emergency mail may not say
    certainty: draft === undefined ? 'Unknown' : 'Observed',
    senderName: oneLine(organisation),
    headline: oneLine(broadcast.subject),
    description: clean(broadcast.body).replace(/\r\n?/g, '\n'),
    web: source.config.publicBaseUrl,
    area: areasOf(organisation, draft)
  }
}

function eventOf (draft: AlertDraft | undefined): string {
  if (draft === undefined) return '緊急連絡'
  const top = [...draft.areas].sort((a, b) => b.level - a.level)[0]
  return oneLine(top?.label ?? '') || KIND_EVENT[draft.kind]
}

// The organisation's own area, then the areas the rule matched, each with its code and table.
function areasOf (organisation: string, draft?: AlertDraft): Array<Record<string, unknown>> {
  const named = new Map<string, Array<{ valueName: string, value: string }>>()
  for (const area of draft?.areas ?? []) {
    const name = oneLine(area.name)
    const geocode = { valueName: area.table, value: oneLine(area.code) }
    named.set(name, [...(named.get(name) ?? []), geocode])
  }
  return [
    { areaDesc: oneLine(organisation) },
    ...[...named].map(([areaDesc, geocode]) => ({ areaDesc, geocode }))
  ]
}

/** The Atom feed of the latest CAP broadcasts, newest first, each linking its CAP document. */
export function capAtomFeed (source: CapSource): string {
  const broadcasts = capBroadcasts(source)
  const { timeZone } = source.config
  const self = publicUrl(source, '/cap/alerts.atom')
  return builder.build({
    ...PROLOG,
    feed: {
      '@_xmlns': 'http://www.w3.org/2005/Atom',
      id: self,
      title: `${oneLine(feedName(source))} 緊急情報（CAP）`,
      // the newest alert's time, so that the feed changes only when an alert is added
      updated: withOffset(broadcasts[0]?.submittedAt ?? new Date(0).toISOString(), timeZone),
      link: [
        { '@_rel': 'self', '@_type': 'application/atom+xml', '@_href': self },
        { '@_rel': 'alternate', '@_href': source.config.publicBaseUrl }
      ],
      author: { name: oneLine(feedName(source)) },
      entry: broadcasts.map((b) => feedEntry(source, b))
    }
  }) as string
}

function feedEntry (source: CapSource, broadcast: Broadcast): Record<string, unknown> {
  const url = capAlertUrl(source, broadcast.id)
  const sent = withOffset(broadcast.submittedAt, source.config.timeZone)
  return {
    id: url,
    title: oneLine(broadcast.subject),
    updated: sent,
    published: sent,
    author: { name: oneLine(organisationName(source, broadcast.organisationId)) },
    link: { '@_rel': 'alternate', '@_type': 'application/cap+xml', '@_href': url }
  }
}

// ---- helpers -------------------------------------------------------------------------------

function draftIdOf (broadcast: Broadcast): number | undefined {
  const match = /^alert-draft:(\d+)$/.exec(broadcast.createdBy)
  return match === null ? undefined : Number(match[1])
}

function draftOf (source: CapSource, broadcast: Broadcast): AlertDraft | undefined {
  const id = draftIdOf(broadcast)
  if (id === undefined) return undefined
  try {
    return source.hazards.draft(id)
  } catch {
    return undefined
  }
}

function organisationName (source: CapSource, id: string): string {
  try {
    return source.directory.organisation(id).name
  } catch {
    return id
  }
}

// The sender's name in mail: the configured one, or the city when one organisation tops the tree.
function feedName (source: CapSource): string {
  if (source.config.sender.name !== undefined) return source.config.sender.name
  const roots = source.directory.organisations().filter((o) => o.parentId === undefined)
  return roots.length === 1 && roots[0] !== undefined ? roots[0].name : 'Mimamori'
}

function publicUrl (source: CapSource, path: string): string {
  return `${source.config.publicBaseUrl.replace(/\/+$/, '')}${path}`
}

// XML 1.0 cannot carry most control characters, even escaped.
// eslint-disable-next-line no-control-regex
const NOT_IN_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g

function clean (text: string): string {
  return text.replace(NOT_IN_XML, '')
}

function oneLine (text: string): string {
  return clean(text).replace(/\s*[\r\n]+\s*/g, ' ').trim()
}

/** An ISO time as CAP wants it: local time with its offset, and -00:00 rather than Z for UTC. */
export function withOffset (iso: string, timeZone: string): string {
  const date = new Date(iso)
  const parts: Record<string, string> = {}
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit'
  })
  for (const part of format.formatToParts(date)) parts[part.type] = part.value
  const { year, month, day, hour, minute, second } = parts
  const local = Date.UTC(Number(year), Number(month) - 1, Number(day),
    Number(hour), Number(minute), Number(second))
  const minutes = Math.round((local - Math.floor(date.getTime() / 1000) * 1000) / 60_000)
  const sign = minutes > 0 ? '+' : '-'
  const pad = (n: number): string => String(Math.floor(n)).padStart(2, '0')
  const offset = `${sign}${pad(Math.abs(minutes) / 60)}:${pad(Math.abs(minutes) % 60)}`
  return `${year}-${month}-${day}T${hour}:${minute}:${second}${offset}`
}
