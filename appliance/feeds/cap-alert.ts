// Runs in the appliance: reads a CAP alert (Common Alerting Protocol 1.2, and 1.1 and 1.0, which
// differ only in elements we do not read) into a HazardEvent, and an Atom feed of CAP alerts into
// its entries. Parsing goes through readXml, so a DTD or entity is refused before anything else.
//
// A CAP alert becomes a hazard event of kind `other`: rules of that kind match it by the area
// codes in feeds.areas.cap (each <geocode> value, or the <areaDesc> itself when an area has no
// geocode) and by its <severity> as the level (Minor 1 … Extreme 4, see LEVELS.other).

import { MimamoriError } from '../errors.js'
import { LEVELS, type HazardArea, type HazardEvent } from './hazard-event.js'
import { all, first, readXml, textAt, type XmlElement } from './xml-document.js'

const CAP_NAMESPACE = 'urn:oasis:names:tc:emergency:cap:1\\.[0-2]'

// Maps, not object literals: a <status> of "constructor" must find nothing
const STATUS = new Map<string, HazardEvent['status']>(Object.entries({
  Actual: 'actual', Exercise: 'drill', Test: 'test', System: 'test', Draft: 'test'
}))
const MSG_TYPE = new Map<string, HazardEvent['infoType']>(Object.entries({
  Alert: 'issue', Update: 'correction', Cancel: 'cancel', Error: 'cancel'
}))
const SEVERITY = new Map(Object.entries(LEVELS.other))
const SCOPE = new Set(['Public', 'Restricted', 'Private'])
const ALERT_REQUIRED = ['identifier', 'sender', 'sent', 'status', 'msgType', 'scope']
const INFO_REQUIRED = ['category', 'event', 'urgency', 'severity', 'certainty']

/**
 * Reads one CAP alert. Throws MIMAMORI_XML_REFUSED for an unsafe or broken document, and
 * MIMAMORI_CAP_INVALID (details.problems: one sentence per problem) for one that is no valid CAP.
 */
export function readCapAlert (input: Buffer | string, maxBytes?: number): HazardEvent {
  const root = readXml(input, maxBytes)
  if (root.name !== 'alert') refuse([`the root element is <${root.name}>, not a CAP <alert>`])
  if (!rootInCapNamespace(asciiOf(input))) {
    refuse(['the <alert> is not in a CAP namespace (urn:oasis:names:tc:emergency:cap:1.2)'])
  }
  return capEvent(root)
}

/** Maps an <alert> element already known to be in a CAP namespace; validates it first. */
export function capEvent (alert: XmlElement): HazardEvent {
  const problems = alertProblems(alert)
  if (problems.length > 0) refuse(problems)

  const sender = textAt(alert, 'sender')
  const own = `${sender},${textAt(alert, 'identifier')}`
  const infoType = MSG_TYPE.get(textAt(alert, 'msgType')) as HazardEvent['infoType']
  // an Update or Cancel belongs to the alert it revises: the first (oldest) of its references
  const eventKey = infoType === 'issue' ? own : originalOf(textAt(alert, 'references')) ?? own
  const info = chosenInfo(alert)
  return {
    source: 'cap',
    id: own,
    eventKey,
    incidentKey: eventKey,
    kind: 'other',
    status: STATUS.get(textAt(alert, 'status')) as HazardEvent['status'],
    infoType,
    type: textAt(info, 'event'),
    title: textAt(info, 'headline') || textAt(info, 'event'),
    // what happened and what to do: the alert's body takes both
    headline: [textAt(info, 'description'), textAt(info, 'instruction')].filter(Boolean).join('\n'),
    issuedBy: textAt(info, 'senderName') || sender,
    reportedAt: textAt(alert, 'sent'),
    areas: info === undefined ? [] : areasOf(info, infoType)
  }
}

// ---- validation: every problem at once, so that the sender can fix them in one go ----------

function alertProblems (alert: XmlElement): string[] {
  const problems = missing(alert, ALERT_REQUIRED, '')
  const status = textAt(alert, 'status')
  const msgType = textAt(alert, 'msgType')
  const scope = textAt(alert, 'scope')
  const sent = textAt(alert, 'sent')
  if (status !== '' && !STATUS.has(status)) {
    problems.push(`<status> ${status} is not a CAP status`)
  }
  if (msgType === 'Ack') {
    problems.push('<msgType> Ack acknowledges another message and carries no alert')
  } else if (msgType !== '' && !MSG_TYPE.has(msgType)) {
    problems.push(`<msgType> ${msgType} is not a CAP message type`)
  }
  if (scope !== '' && !SCOPE.has(scope)) problems.push(`<scope> ${scope} is not a CAP scope`)
  if (sent !== '' && Number.isNaN(Date.parse(sent))) {
    problems.push(`<sent> ${sent.slice(0, 40)} is not a date and time`)
  }
  for (const name of ['identifier', 'sender']) {
    // the comma separates them in <references>, and in our event keys
    if (/[\s,]/.test(textAt(alert, name))) problems.push(`<${name}> holds a space or a comma`)
  }
  problems.push(...referenceProblems(alert, msgType))
  all(alert, 'info').forEach((info, i) => { problems.push(...infoProblems(info, i + 1)) })
  return problems
}

function missing (element: XmlElement, names: string[], where: string): string[] {
  return names.filter((n) => textAt(element, n) === '').map((n) => `${where}<${n}> is missing`)
}

function referenceProblems (alert: XmlElement, msgType: string): string[] {
  const references = textAt(alert, 'references')
  if (references === '') {
    return msgType === 'Cancel' || msgType === 'Error'
      ? [`<msgType> ${msgType} needs <references> naming the alert it withdraws`]
      : []
  }
  const bad = references.split(/\s+/).find((r) => r.split(',').length !== 3)
  if (bad === undefined) return []
  return [`<references> entry ${bad.slice(0, 80)} is not sender,identifier,sent`]
}

function infoProblems (info: XmlElement, n: number): string[] {
  const problems = missing(info, INFO_REQUIRED, `info ${n}: `)
  all(info, 'area').forEach((area, i) => {
    problems.push(...missing(area, ['areaDesc'], `info ${n}, area ${i + 1}: `))
  })
  return problems
}

function refuse (problems: string[]): never {
  const message = `the CAP alert is not valid: ${problems.join('; ')}`
  throw new MimamoriError('MIMAMORI_CAP_INVALID', message.slice(0, 500), { details: { problems } })
}

// ---- mapping -----------------------------------------------------------------------------

// Known limitation: only the first reference counts, so a Cancel that names only a later Update
// (not the original alert) withdraws nothing. The proper fix is for the hazard desk to match
// any of the references against the event keys it holds.
function originalOf (references: string): string | undefined {
  const [sender, identifier] = (references.split(/\s+/)[0] ?? '').split(',')
  if (sender === undefined || sender === '' || identifier === undefined) return undefined
  return `${sender},${identifier}`
}

// The city's people read Japanese: a bilingual alert is read in its Japanese <info>.
function chosenInfo (alert: XmlElement): XmlElement | undefined {
  const infos = all(alert, 'info')
  return infos.find((i) => /^ja(-|$)/i.test(textAt(i, 'language'))) ?? infos[0]
}

function areasOf (info: XmlElement, infoType: HazardEvent['infoType']): HazardArea[] {
  const cancel = infoType === 'cancel'
  const label = textAt(info, 'event')
  const level = cancel ? 0 : SEVERITY.get(textAt(info, 'severity')) ?? 0
  const change = cancel ? 'lifted' : 'new'
  const areas = new Map<string, HazardArea>()
  for (const area of all(info, 'area')) {
    const name = textAt(area, 'areaDesc')
    const codes = all(area, 'geocode').map((g) => textAt(g, 'value')).filter((v) => v !== '')
    // an area named only in words can still be watched: by its name in feeds.areas.cap
    for (const code of codes.length > 0 ? codes : [name]) {
      areas.set(`${code}\n${name}`, { table: 'cap', code, name, label, level, change })
    }
  }
  return [...areas.values()]
}

// ---- the namespace, which readXml drops with the prefixes ------------------------------------

// Namespace URIs are ASCII; read as Latin-1 without NULs they survive UTF-8, Latin-1 and UTF-16.
function asciiOf (input: Buffer | string): string {
  if (typeof input === 'string') return input
  return input.subarray(0, 64 * 1024).toString('latin1').replace(/\0/g, '')
}

/** Whether the document's root element is declared in a CAP namespace, by prefix or default. */
function rootInCapNamespace (text: string): boolean {
  const body = text.replace(/<!--[\s\S]*?-->/g, '').replace(/<\?[\s\S]*?\?>/g, '')
  const tag = /<(?:([A-Za-z_][\w.-]*):)?[A-Za-z_][\w.-]*([^>]*)>/.exec(body)
  if (tag === null) return false
  const name = tag[1] === undefined ? 'xmlns' : `xmlns:${tag[1]}`
  return new RegExp(`\\s${name}\\s*=\\s*["']${CAP_NAMESPACE}["']`).test(tag[2] ?? '')
}

/** Whether a feed declares a CAP namespace anywhere (on itself or on an embedded alert). */
export function declaresCapNamespace (input: Buffer | string): boolean {
  return new RegExp(`xmlns(?::[\\w.-]+)?\\s*=\\s*["']${CAP_NAMESPACE}["']`).test(asciiOf(input))
}

// ---- an Atom feed of CAP alerts ----------------------------------------------------------

export interface CapFeedEntry {
  id: string
  updated: string
  /** the alert's own document (the link typed application/cap+xml, else the entry's link) */
  link?: string
  /** the alert, when the entry embeds it; else it must be fetched from `link` */
  alert?: HazardEvent
  /** why an embedded alert was not read (MIMAMORI_CAP_INVALID or MIMAMORI_XML_REFUSED) */
  refused?: string
}

/**
 * Reads an Atom feed of CAP alerts, each embedded in its entry's <content> (as XML or as
 * escaped text) or only linked. Throws MIMAMORI_XML_REFUSED when the feed itself is unsafe,
 * broken or no Atom feed; one bad embedded alert is reported in its entry, not thrown.
 */
export function readCapFeed (input: Buffer | string, maxBytes?: number): CapFeedEntry[] {
  const feed = readXml(input, maxBytes)
  if (feed.name !== 'feed') {
    throw new MimamoriError('MIMAMORI_XML_REFUSED',
      `the root element is ${feed.name}, not an Atom feed`)
  }
  const capDeclared = declaresCapNamespace(input)
  return all(feed, 'entry').map((entry) => feedEntry(entry, capDeclared))
}

function feedEntry (entry: XmlElement, capDeclared: boolean): CapFeedEntry {
  const out: CapFeedEntry = { id: textAt(entry, 'id'), updated: textAt(entry, 'updated') }
  const link = linkOf(entry)
  if (link !== undefined) out.link = link
  try {
    const alert = embeddedAlert(first(entry, 'content'), capDeclared)
    if (alert !== undefined) out.alert = alert
  } catch (err) {
    if (!(err instanceof MimamoriError)) throw err
    out.refused = `${err.code}: ${err.message}`
  }
  return out
}

function embeddedAlert (
  content: XmlElement | undefined, capDeclared: boolean
): HazardEvent | undefined {
  const element = first(content, 'alert')
  if (element !== undefined) {
    if (!capDeclared) refuse(['the embedded <alert> is not in a CAP namespace'])
    return capEvent(element)
  }
  // type="text" or "html": the alert arrives escaped, and is read like a posted one
  const text = content?.text.trim() ?? ''
  return /^<(\?xml|([\w.-]+:)?alert[\s>])/.test(text) ? readCapAlert(text) : undefined
}

function linkOf (entry: XmlElement): string | undefined {
  const links = all(entry, 'link').filter((l) => (l.attributes.href ?? '') !== '')
  const cap = links.find((l) => /cap\+xml/i.test(l.attributes.type ?? ''))
  const alternate = links.find((l) => (l.attributes.rel ?? 'alternate') === 'alternate')
  return (cap ?? alternate ?? links[0])?.attributes.href
}
