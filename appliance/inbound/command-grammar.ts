// Runs in the appliance: the grammar of a mail-in command (メール配信命令), read from a decoded
// mail's subject and text, and of the reply that confirms or cancels one. docs/mail-in.md is
// its reference. Keywords and targets are read after NFKC (full-width digits, letters, colons
// and spaces become plain); the subject and body are kept as written, since NFKC would turn
// ① into 1 and ㈱ into (株) in a parent's message.

import { MimamoriError } from '../errors.js'
import type { Priority } from '../broadcasts.js'

export type TargetSpec =
  | { kind: 'all', text: string, line: number }
  | { kind: 'group', path: string[], text: string, line: number }

export interface CommandText {
  targets: TargetSpec[]
  priority: Priority
  subject: string
  body: string
  /** an organisation code or name, when the command names one */
  organisation?: string
  pin?: string
}

export interface GrammarProblem {
  /** 1-based line of the mail's text; 0 is the mail's subject */
  line: number
  ja: string
  en: string
}

type Field = 'targets' | 'priority' | 'subject' | 'body' | 'organisation' | 'pin'

const KEYWORDS: Record<Field, { ja: string[], en: string[] }> = {
  targets: { ja: ['宛先', '宛て先', 'あて先', '配信先', '送信先', '送り先', '対象'], en: ['to', 'target', 'targets'] },
  priority: { ja: ['優先度', '優先', '重要度', '種別'], en: ['priority'] },
  subject: { ja: ['件名', '題名', 'タイトル', '表題'], en: ['subject', 'title'] },
  body: { ja: ['本文', '内容'], en: ['body', 'text', 'message'] },
  organisation: { ja: ['組織', '学校', '学校名', '園', '団体'], en: ['org', 'organisation', 'organization', 'school'] },
  pin: { ja: ['暗証番号', '暗証'], en: ['pin'] }
}

const PRIORITY_WORDS: Record<Priority, string[]> = {
  emergency: ['緊急', '至急', '大至急', '緊急配信', 'emergency', 'urgent', 'high'],
  normal: ['通常', '普通', '一般', 'normal', 'standard'],
  bulk: ['お知らせ', 'おしらせ', '案内', '低', 'bulk', 'low', 'info', 'newsletter']
}

const ALL_WORDS = ['全校', '全員', '全体', '全園', '全学年', '全校生徒', '全保護者', '全家庭', 'すべて', '全て', '全部',
  'all', 'everyone', 'everybody']

const KANJI_DIGITS: Record<string, string> = {
  一: '1', 二: '2', 三: '3', 四: '4', 五: '5', 六: '6', 七: '7', 八: '8', 九: '9', 十: '10'
}

/** Marks the top of every preview mail; a reply is read only above it (it quotes the preview). */
export const PREVIEW_MARKER = '=== Mimamori 配信確認 / command preview ==='

const MAX_HEADER_LINE = 1000
const SIGNATURE = /^-- ?$/

// A Japanese keyword may be followed by a colon or a space; an English one needs the colon,
// so that a first line such as "To all parents" is not read as a target list.
function keywordPattern (): RegExp {
  const escape = (w: string): string => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const ja = Object.values(KEYWORDS).flatMap((k) => k.ja).sort((a, b) => b.length - a.length).map(escape)
  const en = Object.values(KEYWORDS).flatMap((k) => k.en).sort((a, b) => b.length - a.length).map(escape)
  return new RegExp(`^\\s*(?:[【\\[]\\s*)?(?:(${ja.join('|')})\\s*[】\\]]?\\s*(?::|\\s)|(${en.join('|')})\\s*:)\\s*(.*)$`, 'i')
}
const KEYWORD_LINE = keywordPattern()

function fieldOf (keyword: string): Field {
  const lower = keyword.toLowerCase()
  for (const [field, words] of Object.entries(KEYWORDS) as Array<[Field, { ja: string[], en: string[] }]>) {
    if (words.ja.includes(keyword) || words.en.includes(lower)) return field
  }
  throw new Error(`unmapped keyword ${keyword}`)
}

interface KeywordLine { field: Field, value: string, original: string }

/** The keyword line's field and value (NFKC), or undefined for any other line. */
function readKeywordLine (line: string): KeywordLine | undefined {
  const norm = line.normalize('NFKC')
  const match = KEYWORD_LINE.exec(norm)
  if (match === null) return undefined
  const keyword = (match[1] ?? match[2]) as string
  const value = (match[3] ?? '').trim()
  return { field: fieldOf(keyword), value, original: originalValue(line, value) }
}

// The same value as written, before NFKC: the subject keeps its ① and half-width kana.
function originalValue (line: string, normalisedValue: string): string {
  if (normalisedValue === '') return ''
  for (let i = 0; i < line.length; i++) {
    const tail = line.slice(i).trim()
    if (tail.normalize('NFKC').trim() === normalisedValue) return tail
  }
  return normalisedValue
}

function stripBrackets (text: string): string {
  return text.replace(/^[【\[「(]\s*/, '').replace(/\s*[】\]」)]$/, '').trim()
}

export function readPriority (text: string): Priority | undefined {
  const wanted = stripBrackets(text.normalize('NFKC')).toLowerCase()
  for (const [priority, words] of Object.entries(PRIORITY_WORDS) as Array<[Priority, string[]]>) {
    if (words.includes(wanted)) return priority
  }
  return undefined
}

function number (text: string): string {
  return KANJI_DIGITS[text] ?? String(Number(text))
}

/** One target as written (NFKC) → what it names. */
export function readTarget (token: string, line: number): TargetSpec {
  const text = token.trim()
  if (ALL_WORDS.includes(text.toLowerCase())) return { kind: 'all', text, line }

  const num = '(\\d{1,2}|[一二三四五六七八九十])'
  const grade = new RegExp(`^${num}(?:年生?|学年)$`).exec(text)
  if (grade !== null) return { kind: 'group', path: [`${number(grade[1] as string)}年`], text, line }

  const cls = new RegExp(`^${num}年生?\\s*(\\d{1,2}|[一二三四五六七八九十]|[A-Za-z])組$`).exec(text)
  if (cls !== null) {
    const room = cls[2] as string
    const name = /^[A-Za-z]$/.test(room) ? room.toUpperCase() : number(room)
    return { kind: 'group', path: [`${number(cls[1] as string)}年`, `${name}組`], text, line }
  }

  const short = /^(\d{1,2})-(\d{1,2}|[A-Za-z])$/.exec(text)
  if (short !== null) {
    const room = short[2] as string
    const name = /^[A-Za-z]$/.test(room) ? room.toUpperCase() : String(Number(room))
    return { kind: 'group', path: [`${Number(short[1])}年`, `${name}組`], text, line }
  }

  const path = text.split('/').map((p) => p.trim())
  return { kind: 'group', path, text, line }
}

/** Splits a target list on commas, 、, ; and spaces; 「…」 or "…" keep a name with spaces whole. */
export function splitTargets (value: string): string[] {
  const out: string[] = []
  const pattern = /「([^」]*)」|"([^"]*)"|([^\s,、;]+)/g
  for (const match of value.matchAll(pattern)) {
    const token = (match[1] ?? match[2] ?? match[3] ?? '').trim()
    if (token !== '') out.push(token)
  }
  return out
}

interface Draft {
  targets: TargetSpec[]
  priority?: { value: Priority, line: number }
  subject?: string
  organisation?: string
  pin?: string
  bodyLines?: string[]
  sawCommandKeyword: boolean
}

/**
 * Reads a command. Throws MIMAMORI_COMMAND_INVALID with details.problems — each naming its
 * line and what was wrong, in Japanese and English — when the mail does not follow the grammar.
 */
export function parseCommand (mail: { subject: string, text: string }): CommandText {
  const lines = mail.text.replace(/\r\n?/g, '\n').split('\n')
  const problems: GrammarProblem[] = []
  const draft: Draft = { targets: [], sawCommandKeyword: false }

  let i = 0
  while (i < lines.length && isBlank(lines[i] as string)) i++
  for (; i < lines.length; i++) {
    const line = lines[i] as string
    if (isBlank(line)) {
      draft.bodyLines ??= lines.slice(i + 1)
      break
    }
    if (readHeaderLine(line, i + 1, draft, problems) === 'body') {
      draft.bodyLines = [readKeywordLine(line)?.original ?? '', ...lines.slice(i + 1)]
      break
    }
  }

  const command = finish(mail.subject, draft, problems)
  if (problems.length > 0 || command === undefined) {
    const first = problems[0] as GrammarProblem
    throw new MimamoriError('MIMAMORI_COMMAND_INVALID',
      `line ${first.line}: ${first.en}`, { details: { problems } })
  }
  return command
}

function isBlank (line: string): boolean {
  return line.normalize('NFKC').trim() === ''
}

function readHeaderLine (line: string, n: number, draft: Draft, problems: GrammarProblem[]): 'body' | undefined {
  const problem = (ja: string, en: string): undefined => { problems.push({ line: n, ja, en }); return undefined }
  if (line.length > MAX_HEADER_LINE) return problem('行が長すぎます', 'the line is too long')

  const kw = readKeywordLine(line)
  const bare = readPriority(line)
  if (kw === undefined && bare !== undefined) return setPriority(draft, bare, n, problem)
  if (kw === undefined) {
    return problem(`「${clip(line)}」は読めません。宛先: 件名: 優先度: 本文: のどれかで始めてください`,
      `"${clip(line)}" is not a command line; start it with 宛先:/to:, 件名:/subject:, 優先度:/priority: or 本文:/body:`)
  }

  if (kw.field !== 'pin') draft.sawCommandKeyword = true
  switch (kw.field) {
    case 'body':
      return 'body'
    case 'targets':
      return readTargets(kw.value, n, draft, problem)
    case 'priority': {
      const priority = readPriority(kw.value)
      if (priority !== undefined) return setPriority(draft, priority, n, problem)
      return problem(`優先度「${clip(kw.value)}」は使えません（緊急・通常・お知らせ）`,
        `priority "${clip(kw.value)}" is unknown (emergency, normal, bulk)`)
    }
    case 'subject':
      if (draft.subject !== undefined) return problem('件名が2回あります', 'the subject is given twice')
      if (kw.original === '') return problem('件名が空です', 'the subject is empty')
      draft.subject = kw.original
      return undefined
    case 'organisation':
      if (kw.value === '') return problem('組織が空です', 'the organisation is empty')
      draft.organisation = kw.value
      return undefined
    case 'pin':
      if (!/^\d{4,12}$/.test(kw.value)) return problem('暗証番号は4〜12桁の数字です', 'a PIN is 4 to 12 digits')
      draft.pin = kw.value
      return undefined
  }
}

function readTargets (
  value: string, n: number, draft: Draft, problem: (ja: string, en: string) => undefined
): undefined {
  const tokens = splitTargets(value)
  if (tokens.length === 0) return problem('宛先が空です', 'the target list is empty')
  for (const token of tokens) draft.targets.push(readTarget(token, n))
  return undefined
}

function setPriority (
  draft: Draft, priority: Priority, n: number, problem: (ja: string, en: string) => undefined
): undefined {
  if (draft.priority !== undefined && draft.priority.value !== priority) {
    return problem(`優先度が${draft.priority.line}行目と違います`, `the priority differs from line ${draft.priority.line}`)
  }
  draft.priority = { value: priority, line: n }
  draft.sawCommandKeyword = true
  return undefined
}

function finish (mailSubject: string, draft: Draft, problems: GrammarProblem[]): CommandText | undefined {
  if (!draft.sawCommandKeyword && problems.length === 0) {
    problems.push({
      line: 1,
      ja: '命令がありません。1行目に「宛先: 1年2組」のように書いてください',
      en: 'no command found; begin the text with a line such as "to: 1年2組"'
    })
    return undefined
  }
  if (draft.targets.length === 0) {
    problems.push({ line: 1, ja: '宛先の行がありません（例: 宛先: 1年2組）', en: 'no target line (e.g. "to: 1年2組")' })
  }

  // A decoded mail subject may carry line breaks (an encoded CR LF); the broadcast's subject is
  // a header and must not, so they become spaces here, as the preview shows them.
  const subject = (draft.subject ?? mailSubject).replace(/[\r\n]+/g, ' ').trim()
  if (subject === '') {
    problems.push({ line: 0, ja: '件名がありません（メールの件名か「件名:」の行に書いてください）', en: 'no subject: give the mail a subject or write a "subject:" line' })
  }
  const body = cleanBody(draft.bodyLines ?? [])
  if (body === '') {
    problems.push({ line: lastLine(draft), ja: '本文がありません（空行の後か「本文:」の後に書いてください）', en: 'no body: write it after a blank line or after "body:"' })
  }
  if (problems.length > 0) return undefined

  const command: CommandText = {
    targets: draft.targets, priority: draft.priority?.value ?? 'normal', subject, body
  }
  if (draft.organisation !== undefined) command.organisation = draft.organisation
  if (draft.pin !== undefined) command.pin = draft.pin
  return command
}

function lastLine (draft: Draft): number {
  return Math.max(1, ...draft.targets.map((t) => t.line), draft.priority?.line ?? 1)
}

// Trailing spaces and blank lines go; a signature after "-- " goes with them.
function cleanBody (lines: string[]): string {
  const cut = lines.findIndex((l) => SIGNATURE.test(l))
  const kept = (cut === -1 ? lines : lines.slice(0, cut)).map((l) => l.replace(/[\s\u3000]+$/, ''))
  while (kept.length > 0 && kept[0] === '') kept.shift()
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop()
  return kept.join('\n')
}

function clip (text: string): string {
  const flat = text.trim()
  return flat.length > 40 ? `${flat.slice(0, 40)}…` : flat
}

// ---- replies to a preview ----------------------------------------------------------------

export interface Confirmation {
  /** the 6-digit code written above the quoted preview */
  code?: string
  cancel: boolean
}

const QUOTE_START = [
  /^\s*>/,
  /^\s*-{2,}\s*(?:original message|forwarded message|元のメッセージ|転送メッセージ|返信元)/i,
  /^\s*On .+ wrote:\s*$/,
  /(?:さん)?は書きました[:：]?\s*$/,
  /^\s*={3} Mimamori/
]

/** The lines a person wrote in a reply: everything above the quoted preview or signature. */
export function freshText (text: string): string {
  const lines = text.replace(/\r\n?/g, '\n').split('\n')
  const end = lines.findIndex((l) => l.includes(PREVIEW_MARKER) || SIGNATURE.test(l) ||
    QUOTE_START.some((p) => p.test(l)))
  return (end === -1 ? lines : lines.slice(0, end)).join('\n')
}

/**
 * Whether a mail to the command address is a new command (it has keyword lines) rather than a
 * reply to a preview. PIN lines alone do not make a command.
 */
export function isCommand (text: string): boolean {
  const lines = freshText(text).split('\n').filter((l) => !isBlank(l))
  const header: string[] = []
  for (const line of lines) {
    header.push(line)
    if (header.length >= 10) break
  }
  return header.some((l) => {
    const kw = readKeywordLine(l)
    return (kw !== undefined && kw.field !== 'pin') || (kw === undefined && readPriority(l) !== undefined)
  })
}

/** The code and the wish to cancel, read from what the person wrote above the quote. */
export function readConfirmation (text: string): Confirmation {
  const fresh = freshText(text).normalize('NFKC').split('\n')
    .filter((l) => readKeywordLine(l)?.field !== 'pin').join('\n')
  const code = /(?<![0-9])([0-9]{6})(?![0-9])/.exec(fresh)?.[1]
  const cancel = /中止|キャンセル|取り?消し|(?<![a-z])(?:cancel|abort)(?![a-z])/i.test(fresh)
  return code === undefined ? { cancel } : { code, cancel }
}

/** The PIN line of a reply or command, if any (NFKC digits). */
export function readPin (text: string): string | undefined {
  for (const line of freshText(text).split('\n')) {
    const kw = readKeywordLine(line)
    if (kw?.field === 'pin' && /^\d{4,12}$/.test(kw.value)) return kw.value
  }
  return undefined
}
