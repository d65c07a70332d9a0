// Runs in the CLI (and anywhere with a Directory): a step-mail calendar imported from CSV, as the
// child-rearing office keeps it in Excel — UTF-8 or Shift_JIS, English or Japanese headers. Every
// row is checked first; one bad row imports nothing, so a calendar is never half there.

import { CsvError, parse } from 'csv-parse/sync'
import type { Directory } from '../directory.js'
import { MimamoriError } from '../errors.js'
import { decodeCsv } from '../members/csv-reader.js'
import {
  DAY_RANGE, MONTH_RANGE, addEntry, listEntries, type StepMailEntryInput
} from './step-mail-calendar.js'

type Column = 'month' | 'day' | 'subject' | 'body' | 'topic'

const HEADERS: Record<string, Column> = {
  month: 'month', 月齢: 'month', 月: 'month',
  day: 'day', 日: 'day', 日数: 'day',
  subject: 'subject', 件名: 'subject',
  body: 'body', 本文: 'body',
  topic: 'topic', トピック: 'topic', 話題: 'topic'
}
const NO_TOPIC = new Set(['-', 'none', 'なし'])
const MAX_ROWS = 2000

export interface StepMailImportReport {
  encoding: string
  dryRun: boolean
  /** entries added (or, in a dry run, that would be) */
  added: number
  /** rows equal to an entry already there (month, day, subject), left out */
  skipped: number
  errors: Array<{ line: number, problem: string }>
}

export function importStepMailCsv (
  directory: Directory, organisationId: string, input: Buffer,
  options: { dryRun?: boolean, createdBy: string, now?: Date }
): StepMailImportReport {
  directory.organisation(organisationId)
  const { text, encoding } = decodeCsv(input)
  const dryRun = options.dryRun === true
  const report: StepMailImportReport = { encoding, dryRun, added: 0, skipped: 0, errors: [] }
  const existing = new Set(listEntries(directory.store, new Set([organisationId]))
    .map((e) => `${e.month}/${e.day}/${e.subject}`))
  const entries: StepMailEntryInput[] = []

  for (const { line, record } of readRows(text)) {
    const entry = readEntry(directory, record, { organisationId, createdBy: options.createdBy })
    if (typeof entry === 'string') report.errors.push({ line, problem: entry })
    else if (existing.has(`${entry.month}/${entry.day}/${entry.subject}`)) report.skipped++
    else entries.push(entry)
  }
  if (report.errors.length > 0 || report.dryRun) {
    report.added = report.errors.length > 0 ? 0 : entries.length
    return report
  }
  directory.store.root.transactionSync(() => {
    for (const entry of entries) addEntry(directory.store, entry, options.now ?? new Date())
  })
  report.added = entries.length
  return report
}

function readRows (text: string): Array<{ line: number, record: Partial<Record<Column, string>> }> {
  let found: Array<Column | false> = []
  let rows: Array<{ record: Partial<Record<Column, string>>, info: { lines: number } }>
  try {
    rows = parse(text, {
      columns: (headers: string[]) => {
        found = headers.map((h) => HEADERS[h.normalize('NFKC').trim().toLowerCase()] ?? false)
        return found
      },
      skip_empty_lines: true, trim: true, info: true, to: MAX_ROWS + 1
    })
  } catch (err) {
    if (!(err instanceof CsvError)) throw err
    throw unreadable('malformed', `the CSV cannot be read: ${err.message}`)
  }
  const missing = (['month', 'subject', 'body'] as const).filter((c) => !found.includes(c))
  if (missing.length > 0) {
    throw unreadable('no-column', 'the first line must name the columns month (月齢), ' +
      `subject (件名) and body (本文); missing: ${missing.join(', ')}`)
  }
  if (rows.length > MAX_ROWS) {
    throw unreadable('too-many-rows', `a calendar has at most ${MAX_ROWS} entries`)
  }
  return rows.map((r) => ({ line: r.info.lines, record: r.record }))
}

function unreadable (problem: string, message: string): MimamoriError {
  return new MimamoriError('MIMAMORI_CSV_UNREADABLE', message, { details: { problem } })
}

// Returns the entry, or what is wrong with the row in words an office clerk can act on.
function readEntry (
  directory: Directory,
  record: Partial<Record<Column, string>>,
  base: { organisationId: string, createdBy: string }
): StepMailEntryInput | string {
  const month = readInteger(record.month, MONTH_RANGE)
  if (month === undefined) return `month must be ${wholeNumber(MONTH_RANGE)}`
  const day = record.day === undefined || record.day === '' ? 0 : readInteger(record.day, DAY_RANGE)
  if (day === undefined) return `day must be ${wholeNumber(DAY_RANGE)}`
  const subject = record.subject ?? ''
  if (subject === '' || subject.length > 1000 || /[\r\n]/.test(subject)) {
    return 'subject must be one line of 1 to 1000 characters'
  }
  const body = record.body ?? ''
  if (body === '' || body.length > 100_000) return 'body must have 1 to 100000 characters'

  const named = (record.topic ?? '').normalize('NFKC').trim()
  const topic = named === ''
    ? 'child-rearing'
    : NO_TOPIC.has(named.toLowerCase()) ? null : directory.resolveTopic(named)
  if (topic === undefined) return `no topic "${named}"`
  return { ...base, month, day, subject, body, topic }
}

function wholeNumber (range: { min: number, max: number }): string {
  return `a whole number from ${range.min} to ${range.max}`
}

// Excel users type full-width digits and minus signs (－３); NFKC makes them ASCII.
function readInteger (
  value: string | undefined, range: { min: number, max: number }
): number | undefined {
  const text = (value ?? '').normalize('NFKC').replace(/[−ー]/g, '-').trim()
  if (!/^[+-]?\d+$/.test(text)) return undefined
  const n = Number(text)
  return n >= range.min && n <= range.max ? n : undefined
}
