// Reads a member list from CSV as Excel and other tools really write it. Runs in the appliance
// (the import command and the panel upload); it decodes and checks rows and stores nothing.

import { CsvError, parse, type Options } from 'csv-parse/sync'
import iconv from 'iconv-lite'
import { AddressError, lookupKey, parseAddress, type ParsedAddress } from '../address.js'
import { MimamoriError } from '../errors.js'

export type CsvEncoding = 'utf-8' | 'utf-8-bom' | 'cp932' | 'utf-16le' | 'utf-16be'
export type CsvDelimiter = ',' | '\t' | ';'
export type MemberField =
  'address' | 'name' | 'grade' | 'className' | 'groups' | 'topics' | 'language' | 'contact'

export interface MemberRow {
  /** Physical line (1-based) where the record starts in the file. */
  line: number
  address: ParsedAddress
  name?: string
  grade?: string
  className?: string
  groups: string[]
  topics: string[]
  language?: string
  contact?: 'first' | 'second'
}

export type RowErrorCode =
  | 'missing-address' | 'bad-address' | 'non-ascii-address' | 'malformed-row'
  | 'duplicate-conflict' | 'bad-language' | 'bad-contact'

/**
 * A record that was not imported; reason is a plain English sentence for the school. The code is
 * a RowErrorCode from this reader; callers may add their own codes (hence string).
 */
export interface RowError { line: number, code: string, reason: string }

export interface CsvReadResult {
  encoding: CsvEncoding
  delimiter: CsvDelimiter
  /** Field → the header as written in the file. */
  columns: Partial<Record<MemberField, string>>
  ignoredColumns: string[]
  rows: MemberRow[]
  duplicates: Array<{ line: number, firstLine: number }>
  errors: RowError[]
  /** Records below the header; each is one of rows, duplicates or errors. */
  totalRecords: number
}

export interface CsvReadOptions { maxBytes?: number, maxRows?: number }

const DEFAULT_MAX_BYTES = 20 * 1024 * 1024
const DEFAULT_MAX_ROWS = 100_000
// School spreadsheets often carry a title (令和6年度 1年2組 名簿) above the header.
const HEADER_SEARCH_RECORDS = 5
// Each broken record costs a re-parse of what follows it; a file this broken is not a roster.
const MAX_MALFORMED = 1000
// No member line comes near this; it stops an unclosed quote from swallowing the whole file.
const MAX_RECORD_BYTES = 64 * 1024

const HEADER_NAMES: Record<MemberField, string[]> = {
  address: ['メールアドレス', 'メール', 'メアド', 'アドレス', 'mail', 'email', 'e-mail',
    'email address', 'mail address', 'primary email'],
  name: ['氏名', '名前', 'お名前', '保護者氏名', '保護者名', '児童氏名', '生徒氏名', 'name',
    'display name', 'full name'],
  grade: ['学年', 'grade'],
  className: ['組', 'クラス', '学級', 'class'],
  groups: ['グループ', '所属', 'group', 'groups'],
  topics: ['トピック', '配信カテゴリ', 'カテゴリ', 'カテゴリー', 'topic', 'topics'],
  language: ['言語', '使用言語', 'language', 'lang'],
  contact: ['連絡先順位', '連絡順位', 'contact']
}

// The usual codes are listed too, so most rows skip Intl.getCanonicalLocales.
const LANGUAGE_NAMES: Record<string, string> = {
  ja: 'ja', en: 'en', zh: 'zh', ko: 'ko', pt: 'pt', es: 'es', vi: 'vi', tl: 'tl', fil: 'fil',
  ne: 'ne', id: 'id',
  日本語: 'ja', japanese: 'ja', jp: 'ja', 英語: 'en', english: 'en', 中国語: 'zh', chinese: 'zh',
  韓国語: 'ko', korean: 'ko', ポルトガル語: 'pt', portuguese: 'pt', スペイン語: 'es', spanish: 'es',
  ベトナム語: 'vi', vietnamese: 'vi', タガログ語: 'tl', tagalog: 'tl', フィリピン語: 'fil',
  filipino: 'fil', ネパール語: 'ne', nepali: 'ne', インドネシア語: 'id', indonesian: 'id'
}

const FIELD_BY_HEADER = new Map(Object.entries(HEADER_NAMES).flatMap(([field, names]) =>
  names.map((name) => [normaliseHeader(name), field as MemberField] as const)))

const PARSE_OPTIONS: Options = {
  relax_column_count: true,
  // A quote inside an unquoted field (山田 "たろう") is kept, as Excel would show it.
  relax_quotes: true,
  trim: true,
  skip_empty_lines: true,
  max_record_size: MAX_RECORD_BYTES,
  // Explicit, so a file whose line ends were mixed by hand still splits at every one.
  record_delimiter: ['\r\n', '\n', '\r']
}

type RawRecord = { line: number, fields: string[] } | { line: number, broken: string }

interface Header {
  index: Map<MemberField, number>
  columns: Partial<Record<MemberField, string>>
  ignored: string[]
}

class RowProblem extends Error {
  constructor (readonly code: RowErrorCode, reason: string) {
    super(reason)
  }
}

function unreadable (problem: string, message: string): MimamoriError {
  return new MimamoriError('MIMAMORI_CSV_UNREADABLE', message, { details: { problem } })
}

/** Decodes CSV by its BOM, its NUL bytes, strict UTF-8, or else CP932 (Excel's Shift_JIS). */
export function decodeCsv (input: Buffer): { text: string, encoding: CsvEncoding } {
  if (input.length === 0) throw unreadable('empty', 'The file is empty.')
  if (isWorkbook(input)) {
    throw unreadable('workbook', 'The file is an Excel workbook, not CSV: save it from Excel as ' +
      '"CSV UTF-8 (comma delimited)" and import that file.')
  }

  const decoded = decodeText(input)
  if (decoded.text.trim() === '') throw unreadable('empty', 'The file holds no text.')
  if (decoded.text.includes('\0')) {
    throw unreadable('binary', 'The file holds binary data, not the text of a CSV file.')
  }
  return decoded
}

function isWorkbook (input: Buffer): boolean {
  const zip = [0x50, 0x4b, 0x03, 0x04]
  const ole = [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]
  return startsWith(input, zip) || startsWith(input, ole)
}

function startsWith (input: Buffer, bytes: number[]): boolean {
  return bytes.every((byte, i) => input[i] === byte)
}

function decodeText (input: Buffer): { text: string, encoding: CsvEncoding } {
  if (startsWith(input, [0xef, 0xbb, 0xbf])) return strict(input, 'utf-8', 'utf-8-bom')
  if (startsWith(input, [0xff, 0xfe])) return strict(input, 'utf-16le', 'utf-16le')
  if (startsWith(input, [0xfe, 0xff])) return strict(input, 'utf-16be', 'utf-16be')

  const utf16 = sniffUtf16(input)
  if (utf16 !== undefined) return strict(input, utf16, utf16)
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(input), encoding: 'utf-8' }
  } catch {
    return { text: decodeCp932(input), encoding: 'cp932' }
  }
}

// TextDecoder drops the BOM itself.
function strict (input: Buffer, label: string, encoding: CsvEncoding) {
  try {
    return { text: new TextDecoder(label, { fatal: true }).decode(input), encoding }
  } catch (err) {
    const name = label.toUpperCase()
    throw new MimamoriError('MIMAMORI_CSV_UNREADABLE',
      `The file looks like ${name} but holds bytes that are not ${name}.`,
      { cause: err, details: { problem: 'undecodable' } })
  }
}

// Text without a BOM in UTF-16 shows itself by the NUL high byte of every ASCII character.
function sniffUtf16 (input: Buffer): 'utf-16le' | 'utf-16be' | undefined {
  const sample = input.subarray(0, 4096)
  let even = 0
  let odd = 0
  for (let i = 0; i < sample.length; i++) {
    if (sample[i] !== 0) continue
    if (i % 2 === 0) even++
    else odd++
  }

  if (odd > 0 && odd >= even * 3) return 'utf-16le'
  if (even > 0 && even >= odd * 3) return 'utf-16be'
  return undefined
}

function decodeCp932 (input: Buffer): string {
  const text = iconv.decode(input, 'cp932')
  const bad = text.indexOf('\uFFFD')
  if (bad < 0) return text

  const line = text.slice(0, bad).split(/\r\n|\r|\n/).length
  throw unreadable('undecodable', `The file is neither UTF-8 nor Shift_JIS (CP932): line ${line} ` +
    'holds bytes that are characters in neither. Save it from Excel as "CSV UTF-8" and import ' +
    'again.')
}

/** Reads members from a CSV file; bad rows are reported by line, the rest are kept. */
export function readMembersCsv (input: Buffer, options: CsvReadOptions = {}): CsvReadResult {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES
  const maxRows = options.maxRows ?? DEFAULT_MAX_ROWS
  if (input.length > maxBytes) {
    throw unreadable('too-large', `The file has ${input.length} bytes; at most ${maxBytes} are ` +
      'read at once. Split it into smaller files.')
  }

  const { text, encoding } = decodeCsv(input)
  const delimiters = sniffDelimiters(text)
  const collector = new MemberCollector(maxRows)
  parseRecords(Buffer.from(text, 'utf8'), delimiters, (record) => collector.add(record))
  return { encoding, delimiter: delimiters[0] ?? ',', ...collector.finish() }
}

// The header line decides; when every following line lacks its delimiter but shares another
// (Thunderbird's tab_comma_mixed sample), both are used, the header's reported.
function sniffDelimiters (text: string): CsvDelimiter[] {
  const lines = text.slice(0, 65536).split(/\r\n|\r|\n/).filter((line) => line.trim() !== '')
  const [head = '', ...next] = lines.slice(0, 6)
  const candidates: CsvDelimiter[] = [',', '\t', ';']
  const counts = candidates.map((d) => countOutsideQuotes(head, d))
  const first = candidates[counts.indexOf(Math.max(...counts))] ?? ','
  if (next.length === 0 || next.some((line) => countOutsideQuotes(line, first) > 0)) return [first]

  const other = candidates.find((d) => next.every((line) => countOutsideQuotes(line, d) > 0))
  return other === undefined ? [first] : [first, other]
}

function countOutsideQuotes (line: string, char: string): number {
  let quoted = false
  let count = 0
  for (const c of line) {
    if (c === '"') quoted = !quoted
    else if (c === char && !quoted) count++
  }
  return count
}

// csv-parse's own line count drifts on CRLF inside quotes, and skip_records_with_error resumes
// after whatever an unclosed quote swallowed; so lines come from byte offsets, and after a
// broken record parsing starts again on the line below its first line.
function parseRecords (data: Buffer, delimiters: CsvDelimiter[],
  onRecord: (record: RawRecord) => void): void {
  const starts = lineStarts(data)
  let offset = 0
  let broken = 0
  while (offset < data.length) {
    const failure = parseFrom(data, offset, delimiters, starts, onRecord)
    if (failure === undefined) break

    onRecord(failure)
    if (++broken > MAX_MALFORMED) {
      throw unreadable('malformed', `More than ${MAX_MALFORMED} lines are not valid CSV; the ` +
        'file is not a member list this reader understands.')
    }
    offset = starts[failure.line] ?? data.length
  }
}

function parseFrom (data: Buffer, offset: number, delimiters: CsvDelimiter[], starts: number[],
  onRecord: (record: RawRecord) => void): { line: number, broken: string } | undefined {
  let end = offset
  try {
    parse(data.subarray(offset), {
      ...PARSE_OPTIONS,
      delimiter: delimiters,
      on_record: (fields: string[], context) => {
        const line = lineAt(starts, skipBlank(data, end))
        end = offset + context.bytes
        const trimmed = fields.map((field) => field.trim())
        if (trimmed.some((field) => field !== '')) onRecord({ line, fields: trimmed })
        return null
      }
    })
    return undefined
  } catch (err) {
    if (!(err instanceof CsvError)) throw err
    return { line: lineAt(starts, skipBlank(data, end)), broken: brokenReason(err) }
  }
}

function brokenReason (err: CsvError): string {
  if (/QUOTE/.test(err.code)) {
    return 'A double quote (") on this line opens a field that is not closed properly, so the ' +
      'line was not read; the lines after it were.'
  }
  if (err.code === 'CSV_MAX_RECORD_SIZE') {
    return `A record starting on this line runs past ${MAX_RECORD_BYTES} bytes, most likely ` +
      'from a double quote (") that is never closed, so the line was not read; the lines after ' +
      'it were.'
  }
  return `The line is not valid CSV (${err.code}), so it was not read.`
}

function lineStarts (data: Buffer): number[] {
  const starts = [0]
  for (let i = 0; i < data.length; i++) {
    const byte = data[i]
    if (byte === 0x0d && data[i + 1] === 0x0a) i++
    if (byte === 0x0d || byte === 0x0a) starts.push(i + 1)
  }
  return starts
}

function lineAt (starts: number[], offset: number): number {
  let low = 0
  let high = starts.length - 1
  while (low < high) {
    const mid = (low + high + 1) >> 1
    if ((starts[mid] ?? 0) <= offset) low = mid
    else high = mid - 1
  }
  return low + 1
}

// Empty lines between records are skipped by the parser; the record starts after them.
function skipBlank (data: Buffer, offset: number): number {
  let at = offset
  while (at < data.length && [0x0d, 0x0a, 0x20, 0x09].includes(data[at] ?? 0)) at++
  return at
}

function normaliseHeader (header: string): string {
  return header.normalize('NFKC').trim().toLowerCase().replace(/[\s_-]/g, '')
}

// The first record naming an address column is the header; records before it are a title.
function findHeader (fields: string[]): Header | undefined {
  const header: Header = { index: new Map(), columns: {}, ignored: [] }
  fields.forEach((written, i) => {
    if (written === '') return
    const field = FIELD_BY_HEADER.get(normaliseHeader(written))
    if (field === undefined || header.index.has(field)) {
      header.ignored.push(written)
      return
    }
    header.index.set(field, i)
    header.columns[field] = written
  })
  return header.index.has('address') ? header : undefined
}

function noAddressColumn (first: string[]): MimamoriError {
  const found = first.filter((cell) => cell !== '')
  const hint = found.some(isAddress)
    ? ' The first line holds a mail address, so the file seems to have no header line: add one ' +
      'above the data.'
    : ''
  return new MimamoriError('MIMAMORI_CSV_NO_ADDRESS_COLUMN', 'The file has no mail address ' +
    `column (found: ${found.join(', ') || 'nothing'}); name it メールアドレス or email.${hint}`,
  { details: { headers: found } })
}

function isAddress (cell: string): boolean {
  try {
    parseAddress(cell)
    return true
  } catch {
    return false
  }
}

// Rows are checked as csv-parse yields them, so a large file is never held as raw records.
class MemberCollector {
  private header: Header | undefined
  private readonly before: string[][] = []
  private readonly byKey = new Map<string, MemberRow>()
  private readonly result: Omit<CsvReadResult, 'encoding' | 'delimiter'> = {
    columns: {}, ignoredColumns: [], rows: [], duplicates: [], errors: [], totalRecords: 0
  }

  constructor (private readonly maxRows: number) {}

  add (record: RawRecord): void {
    if (this.header !== undefined) return this.addBody(record, this.header)
    if (!('fields' in record)) return

    this.header = findHeader(record.fields)
    if (this.header !== undefined) {
      this.result.columns = this.header.columns
      this.result.ignoredColumns = this.header.ignored
      return
    }
    this.before.push(record.fields)
    if (this.before.length === HEADER_SEARCH_RECORDS) throw noAddressColumn(this.before[0] ?? [])
  }

  finish (): Omit<CsvReadResult, 'encoding' | 'delimiter'> {
    if (this.header === undefined) throw noAddressColumn(this.before[0] ?? [])
    return this.result
  }

  private addBody (record: RawRecord, header: Header): void {
    if (++this.result.totalRecords > this.maxRows) {
      throw unreadable('too-many-rows', `The file has more than ${this.maxRows} records; split ` +
        'it into smaller files.')
    }
    if ('broken' in record) return this.refuse(record.line, 'malformed-row', record.broken)

    let row: MemberRow
    try {
      row = readRow(record.fields, record.line, header)
    } catch (err) {
      if (!(err instanceof RowProblem)) throw err
      return this.refuse(record.line, err.code, err.message)
    }
    this.keep(row)
  }

  private keep (row: MemberRow): void {
    const key = lookupKey(row.address)
    const first = this.byKey.get(key)
    if (first === undefined) {
      this.byKey.set(key, row)
      this.result.rows.push(row)
      return
    }

    const conflict = conflictReason(first, row)
    if (conflict !== undefined) return this.refuse(row.line, 'duplicate-conflict', conflict)
    merge(first, row)
    this.result.duplicates.push({ line: row.line, firstLine: first.line })
  }

  private refuse (line: number, code: RowErrorCode, reason: string): void {
    this.result.errors.push({ line, code, reason })
  }
}

function readRow (fields: string[], line: number, header: Header): MemberRow {
  const cell = (field: MemberField): string => {
    const i = header.index.get(field)
    return i === undefined ? '' : fields[i] ?? ''
  }

  const row: MemberRow = {
    line,
    address: readAddress(cell('address')),
    name: readName(cell('name')),
    grade: readGrade(cell('grade')),
    className: readClass(cell('className')),
    groups: readList(cell('groups')),
    topics: readList(cell('topics')),
    language: readLanguage(cell('language')),
    contact: readContact(cell('contact'))
  }
  // Absent values are left out rather than set to undefined, so rows compare and serialise cleanly.
  for (const key of Object.keys(row) as Array<keyof MemberRow>) {
    if (row[key] === undefined) delete row[key]
  }
  return row
}

// NFKC first: people type addresses on Japanese keyboards in full width (ｔａｒｏ＠ａｕ．ｃｏｍ).
function readAddress (value: string): ParsedAddress {
  const text = value.normalize('NFKC').trim()
  if (text === '') throw new RowProblem('missing-address', 'The line has no mail address.')
  if (/[^\x00-\x7f]/.test(text)) {
    throw new RowProblem('non-ascii-address', 'The mail address contains characters other than ' +
      'ASCII (such as Japanese letters); Mimamori sends only to ASCII addresses.')
  }

  try {
    return parseAddress(text)
  } catch (err) {
    if (!(err instanceof AddressError)) throw err
    throw new RowProblem('bad-address', `The mail address is not valid: ${err.message}.`)
  }
}

// Characters are kept as the school wrote them (㈱, ①, half-width kana); only spacing is unified.
function readName (value: string): string | undefined {
  return value.replace(/\s+/g, ' ').trim() || undefined
}

function compact (value: string): string {
  return value.normalize('NFKC').replace(/\s+/g, '')
}

function kanjiDigits (value: string): string {
  return value.replace(/[一二三四五六七八九]/g, (c) => String('一二三四五六七八九'.indexOf(c) + 1))
}

// The organisation is the school, so 小1 and 中1 both mean grade 1 of that school.
function readGrade (value: string): string | undefined {
  const text = compact(value)
  const match = /^(?:小学?|中学?|高校?)?第?(\d{1,2})(?:年生?|学年)?$/.exec(kanjiDigits(text))
  if (match?.[1] !== undefined && Number(match[1]) > 0) return `${Number(match[1])}年`
  return text || undefined
}

function readClass (value: string): string | undefined {
  const text = compact(value)
  const match = /^(\d{1,2}|[A-Za-z])(?:組|クラス)?$/.exec(kanjiDigits(text))
  const id = match?.[1]
  if (id === undefined) return text || undefined
  return /\d/.test(id) ? `${Number(id)}組` : `${id.toUpperCase()}組`
}

function readList (value: string): string[] {
  const items = value.normalize('NFKC').split(/[;|、,]/).map((item) => item.trim())
  return [...new Set(items.filter((item) => item !== ''))]
}

function readLanguage (value: string): string | undefined {
  const text = compact(value).toLowerCase()
  if (text === '') return undefined
  const named = LANGUAGE_NAMES[text]
  if (named !== undefined) return named

  if (/^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$/.test(text)) {
    try {
      return Intl.getCanonicalLocales(text)[0]
    } catch {}
  }
  throw new RowProblem('bad-language', `"${value}" is not a language Mimamori knows: write a ` +
    'code such as ja, en, pt or vi, or a name such as 日本語.')
}

function readContact (value: string): 'first' | 'second' | undefined {
  const text = kanjiDigits(compact(value).toLowerCase())
  if (text === '') return undefined
  if (/^(?:第?1(?:番目)?|first|primary|主)$/.test(text)) return 'first'
  if (/^(?:第?2(?:番目)?|second|secondary|副)$/.test(text)) return 'second'
  throw new RowProblem('bad-contact', `"${value}" is not a contact order: write 1 for the first ` +
    'contact or 2 for the second.')
}

// One line holds one grade and class; a sibling in another class sharing the address would
// silently lose that class if merged, so the line is refused and the school decides.
function conflictReason (first: MemberRow, row: MemberRow): string | undefined {
  const differs = (a?: string, b?: string): boolean => a !== undefined && b !== undefined && a !== b
  if (!differs(first.grade, row.grade) && !differs(first.className, row.className)) return undefined

  const place = (r: MemberRow): string => [r.grade, r.className].filter(Boolean).join(' ')
  return `The address is already on line ${first.line} in ${place(first)}; this line puts it in ` +
    `${place(row)}, and an import cannot put one address in two classes, so this line was not ` +
    'imported.'
}

function merge (first: MemberRow, row: MemberRow): void {
  first.groups = [...new Set([...first.groups, ...row.groups])]
  first.topics = [...new Set([...first.topics, ...row.topics])]
  const filled = first as unknown as Record<string, unknown>
  for (const key of ['name', 'grade', 'className', 'language', 'contact'] as const) {
    if (first[key] === undefined && row[key] !== undefined) filled[key] = row[key]
  }
}
