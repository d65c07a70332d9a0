// Runs in the appliance: reads one JMA 防災情報XML telegram into a HazardEvent. The head says
// what the telegram is (status, kind of report, event); the body is read only for the telegram
// types the alert rules act on — the areas and levels come from jma-weather-areas.ts and
// jma-seismic-areas.ts.

import { MimamoriError } from '../errors.js'
import type { HazardArea, HazardEvent, HazardKind } from './hazard-event.js'
import { readXml, first, textAt, type XmlElement } from './xml-document.js'
import { landslideAreas, weatherWarningAreas } from './jma-weather-areas.js'
import { eewAreas, intensityAreas, tsunamiAreas } from './jma-seismic-areas.js'

/**
 * Telegram types by their Control/Title, which is also the title of their Atom feed entry. The
 * type code itself is never inside a telegram: the data file name carries it, the old feed
 * format (urn:uuid links) only the title.
 */
export const JMA_TYPES: Readonly<Record<string, string>> = {
  '気象特別警報・警報・注意報': 'VPWW53',
  '気象警報・注意報（Ｈ２７）': 'VPWW54',
  土砂災害警戒情報: 'VXWW50',
  震度速報: 'VXSE51',
  震源に関する情報: 'VXSE52',
  '震源・震度に関する情報': 'VXSE53',
  '緊急地震速報（警報）': 'VXSE43',
  '津波警報・注意報・予報a': 'VTSE41',
  津波情報a: 'VTSE51',
  沖合の津波観測に関する情報: 'VTSE52',
  気象特別警報報知: 'VPNO50',
  記録的短時間大雨情報: 'VPOA50',
  竜巻注意情報: 'VPHW50',
  '竜巻注意情報（目撃情報付き）': 'VPHW51',
  // JMA numbers these per river office (VXKO51…VXKO75); the title does not say which
  指定河川洪水予報: 'VXKOii'
}

type AreaReader = (body: XmlElement | undefined) => HazardArea[]

/** The telegram types whose areas we read, with the kind they are and how their areas read. */
export const READ_TYPES: Readonly<Record<string, { kind: HazardKind, areas: AreaReader }>> = {
  VPWW53: { kind: 'weather-warning', areas: weatherWarningAreas },
  VPWW54: { kind: 'weather-warning', areas: weatherWarningAreas },
  VXWW50: { kind: 'landslide', areas: landslideAreas },
  VXSE51: { kind: 'earthquake', areas: intensityAreas },
  // 震源に関する情報 has no intensities: it reaches the rules with its headline only
  VXSE52: { kind: 'earthquake', areas: () => [] },
  VXSE53: { kind: 'earthquake', areas: intensityAreas },
  VXSE43: { kind: 'eew', areas: eewAreas },
  VTSE41: { kind: 'tsunami', areas: tsunamiAreas },
  VTSE51: { kind: 'tsunami', areas: tsunamiAreas }
}

const STATUS: Record<string, HazardEvent['status']> = { 通常: 'actual', 訓練: 'drill', 試験: 'test' }

// 遅延 is a telegram sent late, not a revision: it is read like 発表
const INFO_TYPE: Record<string, HazardEvent['infoType']> = {
  発表: 'issue', 遅延: 'issue', 訂正: 'correction', 取消: 'cancel'
}

// Earthquake and tsunami telegrams name one incident by EventID across all their reports
// (VXSE51/52/53, VTSE41/51 and the serials of VXSE43 of one earthquake share it). A weather
// telegram is its own incident: its areas say what is new, and the next warning for the same
// prefecture must be able to alert again.
const INCIDENT_BY_EVENT_ID = new Set<HazardKind>(['earthquake', 'eew', 'tsunami'])

/**
 * Reads a telegram. Throws MIMAMORI_XML_REFUSED for a document that is unsafe, not well-formed
 * or not a JMA Report: another root, or a Control/Status, Head/InfoType, InfoKind or
 * ReportDateTime missing or unknown.
 */
export function readJmaTelegram (bytes: Buffer | string): HazardEvent {
  const report = readXml(bytes)
  if (report.name !== 'Report') refuse(`the root element is ${report.name}, not a JMA Report`)
  const head = first(report, 'Head')
  const status = STATUS[textAt(report, 'Control', 'Status')]
  const infoType = INFO_TYPE[textAt(head, 'InfoType')]
  if (status === undefined) refuse('Control/Status is none of 通常, 訓練, 試験')
  if (infoType === undefined) refuse('Head/InfoType is none of 発表, 訂正, 取消, 遅延')

  const type = telegramType(textAt(report, 'Control', 'Title'))
  const reader = READ_TYPES[type]
  const kind = reader?.kind ?? familyKind(type)
  // a cancellation withdraws: whatever its body says is not in force
  const read = infoType !== 'cancel' && reader !== undefined
  const areas = read ? reader.areas(first(report, 'Body')) : []
  return { ...identity(report, type, kind), kind, status, infoType, areas }
}

/** The type code of a Control/Title (the title itself when the type is not known here). */
export function telegramType (title: string): string {
  return JMA_TYPES[title.trim()] ?? title.trim()
}

type Identity = Omit<HazardEvent, 'kind' | 'status' | 'infoType' | 'areas'>

function identity (report: XmlElement, type: string, kind: HazardKind): Identity {
  const head = first(report, 'Head')
  const eventId = textAt(head, 'EventID')
  const infoKind = textAt(head, 'InfoKind')
  const reportedAt = textAt(head, 'ReportDateTime')
  if (infoKind === '' || reportedAt === '') refuse('Head has no InfoKind or ReportDateTime')
  const title = textAt(head, 'Title')
  // weather telegrams carry no EventID: each prefecture's telegram replaces the one before
  // it, so the head title (愛媛県気象警報・注意報) names the event
  const event = eventId === '' ? title : eventId
  const incidentKey = INCIDENT_BY_EVENT_ID.has(kind) && eventId !== ''
    ? `jma:${eventId}`
    : `jma:${infoKind}:${event}@${reportedAt}`
  return {
    source: 'jma',
    id: ['jma', type, event, textAt(head, 'Serial'), textAt(head, 'InfoType'), reportedAt,
      textAt(report, 'Control', 'DateTime')].join(':'),
    eventKey: `jma:${infoKind}:${event}`,
    incidentKey,
    type,
    title,
    headline: textAt(head, 'Headline', 'Text'),
    issuedBy: textAt(report, 'Control', 'PublishingOffice'),
    reportedAt
  }
}

/**
 * The kind of a telegram whose areas are not read (VPOA50, VPHW51, VXKOii, VPNO50, VTSE52 …):
 * 'other' is the kind of CAP alerts, whose levels are CAP severities, so a JMA telegram takes
 * its family's kind instead. It carries no areas, so no rule ever matches it; it is handed on
 * only so that it is recorded and shown.
 */
function familyKind (type: string): HazardKind {
  if (type.startsWith('VTSE')) return 'tsunami'
  if (type.startsWith('VXSE4')) return 'eew'
  // JMA's 地震火山 family: earthquake, Nankai Trough and volcano telegrams
  if (/^(VXSE|VY|VZ|VF)/.test(type)) return 'earthquake'
  if (type.startsWith('VXWW')) return 'landslide'
  return 'weather-warning'
}

function refuse (reason: string): never {
  throw new MimamoriError('MIMAMORI_XML_REFUSED', `not a JMA telegram we can read: ${reason}`)
}
