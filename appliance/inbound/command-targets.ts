// Runs in the appliance: what a parsed mail-in command names — the sending organisation and the
// groups of its targets — checked against the staff member's role, and counted without
// freezing anything (the preview's recipient numbers).

import type { Directory, Group, Organisation } from '../directory.js'
import type { BroadcastBook, Targets } from '../broadcasts.js'
import { type Staff, sendRefusal } from '../staff.js'
import type { CommandText, TargetSpec } from './command-grammar.js'
import type { TargetCount } from './mail-commands.js'

export interface ResolvedCommand {
  organisationId: string
  targets: Targets
  counts: TargetCount[]
  total: number
  excluded: number
}

export type Refusal = {
  reason: 'unknown-organisation' | 'unknown-group' | 'not-allowed' | 'no-recipients'
  ja: string
  en: string
}

export type Resolution = { ok: true, command: ResolvedCommand } | ({ ok: false } & Refusal)

/** Resolves the organisation and groups a command names and checks the role allows them. */
export function resolveCommand (
  directory: Directory, book: BroadcastBook, staff: Staff, text: CommandText
): Resolution {
  const org = commandOrganisation(directory, staff, text.organisation)
  if ('reason' in org) return { ok: false, ...org }

  const groups: Array<{ spec: TargetSpec, group: Group }> = []
  let all = false
  for (const spec of text.targets) {
    if (spec.kind === 'all') {
      all = true
      continue
    }
    const group = findGroup(directory, org.id, spec.path)
    if (group === undefined) return unknownGroup(spec, org)
    groups.push({ spec, group })
  }

  const groupIds = all ? [] : [...new Set(groups.map((g) => g.group.id))]
  const refusal = sendRefusal(staff, directory, { organisationId: org.id, groups: groupIds })
  if (refusal !== undefined) {
    return { ok: false, reason: 'not-allowed', ja: `この宛先には配信できません（${refusal}）`, en: `not allowed: ${refusal}` }
  }
  return { ok: true, command: count(directory, book, org, all, groups) }
}

function count (
  directory: Directory, book: BroadcastBook, org: Organisation, all: boolean,
  groups: Array<{ spec: TargetSpec, group: Group }>
): ResolvedCommand {
  const targets: Targets = all ? {} : { groups: [...new Set(groups.map((g) => g.group.id))] }
  const total = book.count({ organisationId: org.id, targets })
  const counts: TargetCount[] = all
    ? [{ label: `${org.name} 全体`, recipients: total.recipients }]
    : groups.map(({ group }) => ({
      label: directory.groupPath(group.id),
      recipients: book.count({ organisationId: org.id, targets: { groups: [group.id] } }).recipients
    }))
  return { organisationId: org.id, targets, counts, total: total.recipients, excluded: total.excluded }
}

// The organisation named in the command (its code or its exact name), else the staff member's
// own, else — for a city admin without one — the only top of the tree.
function commandOrganisation (
  directory: Directory, staff: Staff, named: string | undefined
): Organisation | Refusal {
  const all = directory.organisations()
  if (named !== undefined) {
    const found = all.find((o) => o.id === named.toLowerCase() || o.name === named)
    if (found !== undefined) return found
    return {
      reason: 'unknown-organisation',
      ja: `組織「${named}」はありません。組織コード（例: ${all[0]?.id ?? 'higashi-es'}）か正式名で書いてください`,
      en: `no organisation "${named}"; give its code or its full name`
    }
  }
  if (staff.organisationId !== undefined) return directory.organisation(staff.organisationId)
  const tops = all.filter((o) => o.parentId === undefined)
  if (tops.length === 1) return tops[0] as Organisation
  return {
    reason: 'unknown-organisation',
    ja: '組織が決まりません。「組織: 組織コード」の行を書いてください',
    en: 'which organisation? add a line "org: CODE"'
  }
}

// The path as written; failing that, ignoring case; failing that, a single name that occurs
// exactly once anywhere in the organisation's tree (a club below a "部活動" group).
function findGroup (directory: Directory, organisationId: string, path: string[]): Group | undefined {
  const exact = directory.groupByPath(organisationId, path)
  if (exact !== undefined) return exact

  const groups = directory.groups(organisationId)
  let parent: Group | undefined
  for (const name of path) {
    parent = groups.find((g) => g.parentId === parent?.id && g.name.toLowerCase() === name.toLowerCase())
    if (parent === undefined) break
  }
  if (parent !== undefined) return parent

  if (path.length !== 1) return undefined
  const named = groups.filter((g) => g.name.toLowerCase() === (path[0] as string).toLowerCase())
  return named.length === 1 ? named[0] : undefined
}

function unknownGroup (spec: TargetSpec, org: Organisation): { ok: false } & Refusal {
  const line = `${spec.line}行目`
  return {
    ok: false,
    reason: 'unknown-group',
    ja: `${line}: 「${spec.text}」という宛先は${org.name}にありません`,
    en: `line ${spec.line}: ${org.name} (${org.id}) has no group "${spec.text}"`
  }
}
