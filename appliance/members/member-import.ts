// Runs in the appliance and the CLI: stores the rows of a member list read from CSV — subscribers
// (merged by mailbox), their grade and class groups, extra groups and topics — in one organisation.

import type { Directory } from '../directory.js'
import { readMembersCsv, type CsvReadResult, type MemberRow, type RowError } from './csv-reader.js'

export interface ImportReport {
  organisationId: string
  encoding: CsvReadResult['encoding']
  columns: CsvReadResult['columns']
  ignoredColumns: string[]
  totalRecords: number
  imported: number
  created: number
  updated: number
  groupsCreated: string[]
  duplicates: CsvReadResult['duplicates']
  errors: RowError[]
  warnings: RowError[]
}

// Rows are stored in transactions of this many: one commit per row would take minutes.
const ROWS_PER_TRANSACTION = 1000

export function importMembersCsv (
  directory: Directory, organisationId: string, input: Buffer, options: { dryRun?: boolean } = {}
): ImportReport {
  directory.organisation(organisationId)
  const result = readMembersCsv(input)
  const report: ImportReport = {
    organisationId,
    encoding: result.encoding,
    columns: result.columns,
    ignoredColumns: result.ignoredColumns,
    totalRecords: result.totalRecords,
    imported: 0,
    created: 0,
    updated: 0,
    groupsCreated: [],
    duplicates: result.duplicates,
    errors: result.errors,
    warnings: []
  }
  if (options.dryRun === true) {
    preview(directory, organisationId, result.rows, report)
    return report
  }

  for (let i = 0; i < result.rows.length; i += ROWS_PER_TRANSACTION) {
    const chunk = result.rows.slice(i, i + ROWS_PER_TRANSACTION)
    directory.store.root.transactionSync(() => {
      for (const row of chunk) storeRow(directory, organisationId, row, report)
    })
  }
  return report
}

function storeRow (directory: Directory, organisationId: string, row: MemberRow, report: ImportReport): void {
  const topics: string[] = []
  for (const name of row.topics) {
    const id = directory.resolveTopic(name)
    if (id === undefined) {
      report.warnings.push({ line: row.line, code: 'unknown-topic', reason: `unknown topic "${name}" was left out` })
    } else {
      topics.push(id)
    }
  }

  const input: Parameters<Directory['upsertSubscriber']>[0] = { address: row.address, topics }
  if (row.name !== undefined) input.name = row.name
  if (row.language !== undefined) input.language = row.language
  const { subscriber, created } = directory.upsertSubscriber(input)
  if (created) report.created++
  else report.updated++
  report.imported++

  const paths = groupPaths(row)
  if (paths.length === 0) directory.addMembership(subscriber.id, organisationId)
  for (const path of paths) {
    const before = directory.groupByPath(organisationId, path)
    const group = before ?? directory.groupByPath(organisationId, path, true)
    if (before === undefined && group !== undefined) report.groupsCreated.push(path.join('/'))
    directory.addMembership(subscriber.id, organisationId, group?.id)
  }
}

// A dry run counts what an import would do — new and known people, groups it would make —
// without writing anything.
function preview (directory: Directory, organisationId: string, rows: MemberRow[], report: ImportReport): void {
  const groups = new Set<string>()
  for (const row of rows) {
    if (directory.findSubscriber(row.address) === undefined) report.created++
    else report.updated++
    report.imported++
    for (const path of groupPaths(row)) {
      if (directory.groupByPath(organisationId, path) === undefined) groups.add(path.join('/'))
    }
  }
  report.groupsCreated = [...groups]
}

/** Grade and class make one path (1年/2組); each extra group is a path of its own (PTA). */
function groupPaths (row: MemberRow): string[][] {
  const paths: string[][] = []
  const gradeClass = [row.grade, row.className].filter((p): p is string => p !== undefined && p !== '')
  if (gradeClass.length > 0) paths.push(gradeClass)
  for (const group of row.groups) {
    const path = group.split('/').map((p) => p.trim()).filter((p) => p !== '')
    if (path.length > 0) paths.push(path)
  }
  return paths
}
