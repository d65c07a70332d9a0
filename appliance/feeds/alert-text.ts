// Runs in the appliance: the words of an alert a rule makes from a hazard event — a subject a
// parent understands on a phone's lock screen, and a body that says what, where, who said so and
// what to do. Drills are marked 【訓練】 in the subject and in the first line.

import type { HazardArea, HazardEvent, HazardKind } from './hazard-event.js'
import type { AlertRule } from './alert-rules.js'

const KIND_WORDS: Record<HazardKind, string> = {
  'weather-warning': '気象警報',
  landslide: '土砂災害',
  earthquake: '地震',
  eew: '緊急地震速報',
  tsunami: '津波',
  other: '警報'
}

const ADVICE: Record<HazardKind, string> = {
  'weather-warning': '最新の気象情報と市の避難情報を確認し、危険な場所に近づかないでください。',
  landslide: '崖や斜面の近くにいる方は、直ちに安全な場所へ避難してください。',
  earthquake: '身の安全を確保し、落ち着いて行動してください。学校からの続報をお待ちください。',
  eew: '強い揺れに備えてください。頭を守り、倒れてくるものから離れてください。',
  tsunami: '海岸や川沿いから離れ、直ちに高い場所へ避難してください。',
  other: '最新の情報を確認し、安全を確保してください。'
}

const MAX_AREAS_NAMED = 5

export interface AlertText { subject: string, body: string }

/** The alert for an event's matched areas, as a rule sends it. */
export function alertText (
  rule: AlertRule, event: HazardEvent, areas: HazardArea[], drill: boolean, timeZone: string
): AlertText {
  const top = strongest(areas)
  const subject = [
    drill ? '【訓練】' : '',
    `【${KIND_WORDS[event.kind]}】`,
    top?.label ?? event.title,
    `（${areaNames(areas)}）`
  ].join('')

  const lines = [
    ...(drill ? ['【訓練】これは訓練です。実際の災害ではありません。', ''] : []),
    oneLine(event.headline) || event.title,
    '',
    ...areas.slice(0, 20).map((a) => `・${a.name}：${a.label}`),
    '',
    ADVICE[event.kind],
    ...(rule.action === 'safety-check'
      ? ['', 'ご家族の安否を、このメールの確認リンクからお知らせください。']
      : []),
    '',
    `発表：${event.issuedBy}（${localTime(event.reportedAt, timeZone)}）`,
    `この連絡は「${rule.name}」により自動で作成されました。`
  ]
  return { subject: oneLine(subject).slice(0, 200), body: lines.join('\n') }
}

/** A notice that an alert already sent was cancelled or corrected by its source. */
export function noticeText (
  original: AlertText, event: HazardEvent, drill: boolean, timeZone: string
): AlertText {
  const cancel = event.infoType === 'cancel'
  const mark = cancel ? '【取消】' : '【訂正】'
  const first = cancel
    ? `先ほどお送りした「${original.subject}」は、発表元により取り消されました。`
    : `先ほどお送りした「${original.subject}」は、発表元により訂正されました。`
  const lines = [
    ...(drill ? ['【訓練】これは訓練です。', ''] : []),
    first,
    '',
    oneLine(event.headline),
    '',
    `発表：${event.issuedBy}（${localTime(event.reportedAt, timeZone)}）`
  ]
  const subject = `${drill ? '【訓練】' : ''}${mark}${original.subject.replace(/^【訓練】/, '')}`
  return { subject: subject.slice(0, 200), body: lines.join('\n') }
}

function strongest (areas: HazardArea[]): HazardArea | undefined {
  return areas.reduce<HazardArea | undefined>((top, a) => (top === undefined || a.level > top.level ? a : top), undefined)
}

function areaNames (areas: HazardArea[]): string {
  const names = [...new Set(areas.map((a) => a.name))]
  const shown = names.slice(0, MAX_AREAS_NAMED).join('・')
  return names.length > MAX_AREAS_NAMED ? `${shown}ほか` : shown
}

// Headlines carry line breaks and full-width spaces; a subject must hold neither CR nor LF.
function oneLine (text: string): string {
  return text.replace(/[\r\n]+/g, ' ').replace(/\s{2,}/g, ' ').trim()
}

function localTime (iso: string, timeZone: string): string {
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return iso
  return date.toLocaleString('ja-JP', { timeZone, dateStyle: 'medium', timeStyle: 'short' })
}
