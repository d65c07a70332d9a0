// Runs in the appliance: who is who — organisations (a tree), groups (a tree inside an
// organisation), topics, subscribers with sealed addresses, and their memberships.

import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto'
import type { Store } from './store/store.js'
import { nextId } from './store/store.js'
import type { AddressVault } from './store/address-vault.js'
import { type ParsedAddress, lookupKey } from './address.js'
import { MimamoriError, assertHeaderSafe } from './errors.js'

export type OrganisationKind =
  'city' | 'school' | 'kindergarten' | 'fire-department' | 'office' | 'other'

export interface Organisation {
  id: string
  name: string
  kind: OrganisationKind
  parentId?: string
  postalAddress: string
  phone?: string
  createdAt: string
}

export interface Group {
  id: string
  organisationId: string
  parentId?: string
  name: string
  createdAt: string
  /** scrypt hash of the group password a sign-up must give to join; none means open */
  passwordHash?: string
}

export interface Topic {
  id: string
  name: string
  nameEn: string
  /** Given to a subscriber who has not chosen topics (a roster imported from CSV). */
  byDefault: boolean
}

export interface Subscriber {
  id: number
  /** AddressVault-sealed JSON: { a: SMTP spelling, n?: name } */
  sealed: Uint8Array
  index: string
  domain: string
  status: 'active' | 'unsubscribed'
  topics: string[]
  language: string
  /** organisations this subscriber has stopped mail from */
  left?: string[]
  /** set when a carrier's domain filter refused our mail: tell them how to allow it */
  needsDomainAllow?: { at: string, reason: string, source: 'dsn' | 'smtp' }
  createdAt: string
  updatedAt: string
}

export interface SealedContact { a: string, n?: string }

export const DEFAULT_TOPICS: Topic[] = [
  { id: 'suspicious-person', name: '不審者情報', nameEn: 'Suspicious persons', byDefault: true },
  { id: 'disaster', name: '防災・気象情報', nameEn: 'Disaster and weather', byDefault: true },
  { id: 'school-notice', name: '学校からのお知らせ', nameEn: 'School notices', byDefault: true },
  { id: 'child-rearing', name: '子育て情報', nameEn: 'Child-rearing', byDefault: false },
  { id: 'food-education', name: '食育', nameEn: 'Food education', byDefault: false }
]

const ORG_ID = /^[a-z0-9][a-z0-9-]{0,39}$/

export class Directory {
  #defaultTopics: string[] | undefined

  constructor (readonly store: Store, readonly vault: AddressVault) {}

  // ---- organisations -------------------------------------------------------------------

  createOrganisation (input: Omit<Organisation, 'createdAt'>): Organisation {
    if (!ORG_ID.test(input.id)) {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST',
        `organisation code "${input.id}" must be lower-case letters, digits and hyphens`)
    }
    for (const field of ['name', 'postalAddress'] as const) assertHeaderSafe(field, input[field])
    if (this.store.organisations.get(input.id) !== undefined) {
      throw new MimamoriError('MIMAMORI_CONFLICT', `organisation "${input.id}" exists`)
    }
    if (input.parentId !== undefined) this.organisation(input.parentId)

    const org: Organisation = { ...input, createdAt: new Date().toISOString() }
    this.store.organisations.putSync(org.id, org)
    return org
  }

  organisation (id: string): Organisation {
    const org = this.store.organisations.get(id) as Organisation | undefined
    if (org === undefined) throw new MimamoriError('MIMAMORI_NOT_FOUND', `no organisation "${id}"`)
    return org
  }

  organisations (): Organisation[] {
    return [...this.store.organisations.getRange()].map((e) => e.value as Organisation)
  }

  /** The organisation and every organisation below it. */
  organisationSubtree (id: string): string[] {
    this.organisation(id)
    const children = new Map<string, string[]>()
    for (const org of this.organisations()) {
      if (org.parentId === undefined) continue
      children.set(org.parentId, [...(children.get(org.parentId) ?? []), org.id])
    }
    return collectTree(id, children)
  }

  // ---- groups --------------------------------------------------------------------------

  createGroup (organisationId: string, name: string, parentId?: string): Group {
    this.organisation(organisationId)
    const clean = name.trim()
    if (clean === '' || clean.length > 100 || clean.includes('/') || /[\r\n]/.test(clean)) {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST', `"${name}" is not a valid group name`)
    }
    if (parentId !== undefined && this.group(parentId).organisationId !== organisationId) {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'the parent group belongs to another organisation')
    }

    const id = `${organisationId}/${nextId(this.store, `group:${organisationId}`)}`
    const group: Group = { id, organisationId, name: clean, createdAt: new Date().toISOString() }
    if (parentId !== undefined) group.parentId = parentId
    this.store.groups.putSync(id, group)
    return group
  }

  group (id: string): Group {
    const group = this.store.groups.get(id) as Group | undefined
    if (group === undefined) throw new MimamoriError('MIMAMORI_NOT_FOUND', `no group "${id}"`)
    return group
  }

  groups (organisationId: string): Group[] {
    const range = this.store.groups.getRange({ start: `${organisationId}/`, end: `${organisationId}/\uffff` })
    return [...range].map((e) => e.value as Group)
  }

  /** Finds a group by its path of names ('1年/2組'), creating the missing steps when asked. */
  groupByPath (organisationId: string, path: string[], create = false): Group | undefined {
    const all = this.groups(organisationId)
    let parent: Group | undefined
    for (const name of path) {
      const found = all.find((g) => g.name === name && g.parentId === parent?.id)
      if (found !== undefined) {
        parent = found
        continue
      }
      if (!create) return undefined
      parent = this.createGroup(organisationId, name, parent?.id)
      all.push(parent)
    }
    return parent
  }

  /** The group and every group below it. */
  groupSubtree (id: string): string[] {
    const group = this.group(id)
    const children = new Map<string, string[]>()
    for (const g of this.groups(group.organisationId)) {
      if (g.parentId === undefined) continue
      children.set(g.parentId, [...(children.get(g.parentId) ?? []), g.id])
    }
    return collectTree(id, children)
  }

  groupPath (id: string): string {
    const names: string[] = []
    let group: Group | undefined = this.group(id)
    while (group !== undefined) {
      names.unshift(group.name)
      group = group.parentId === undefined ? undefined : this.group(group.parentId)
    }
    return names.join('/')
  }

  /**
   * Sets or (with undefined) clears the password a sign-up needs to join the group.
   * Known shortcoming: only code calls this; the panel and CLI to set it come with the panel.
   */
  setGroupPassword (id: string, password: string | undefined): Group {
    const { passwordHash: _old, ...group } = this.group(id)
    const next: Group = password === undefined
      ? group
      : { ...group, passwordHash: hashPassword(password) }
    this.store.groups.putSync(id, next)
    return next
  }

  /** True when the group needs no password or the password is its own. */
  checkGroupPassword (group: Group, password: string): boolean {
    return group.passwordHash === undefined || verifyPassword(group.passwordHash, password)
  }

  // ---- topics --------------------------------------------------------------------------

  ensureDefaultTopics (): void {
    for (const topic of DEFAULT_TOPICS) {
      if (this.store.topics.get(topic.id) === undefined) this.store.topics.putSync(topic.id, topic)
    }
  }

  topics (): Topic[] {
    return [...this.store.topics.getRange()].map((e) => e.value as Topic)
  }

  /** Accepts a topic's code, Japanese or English name; undefined when unknown. */
  resolveTopic (nameOrId: string): string | undefined {
    const wanted = nameOrId.trim().toLowerCase()
    const topic = this.topics().find((t) =>
      t.id === wanted || t.name === nameOrId.trim() || t.nameEn.toLowerCase() === wanted)
    return topic?.id
  }

  // ---- subscribers ---------------------------------------------------------------------

  findSubscriber (address: ParsedAddress): Subscriber | undefined {
    const id = this.store.addressIndex.get(this.vault.index(lookupKey(address)))
    return id === undefined ? undefined : this.subscriber(id)
  }

  subscriber (id: number): Subscriber | undefined {
    return this.store.subscribers.get(id) as Subscriber | undefined
  }

  contact (subscriber: Subscriber): SealedContact {
    return JSON.parse(this.vault.open(subscriber.sealed)) as SealedContact
  }

  /**
   * Adds a subscriber or updates the one with the same mailbox; call inside a transaction
   * for bulk work. Topics are united with the ones already chosen.
   */
  upsertSubscriber (input: {
    address: ParsedAddress, name?: string, language?: string, topics?: string[]
  }): { subscriber: Subscriber, created: boolean } {
    const index = this.vault.index(lookupKey(input.address))
    const now = new Date().toISOString()
    const existingId = this.store.addressIndex.get(index)
    const existing = existingId === undefined ? undefined : this.subscriber(existingId)
    const contact: SealedContact = { a: input.address.smtp }
    if (input.name !== undefined && input.name !== '') contact.n = input.name

    if (existing !== undefined) {
      // A new roster never undoes an opt-out: status and `left` stay as the person set them.
      const topics = [...new Set([...existing.topics, ...(input.topics ?? [])])]
      const updated: Subscriber = {
        ...existing, topics, updatedAt: now, sealed: this.vault.seal(JSON.stringify(contact))
      }
      if (input.language !== undefined) updated.language = input.language
      this.store.subscribers.putSync(existing.id, updated)
      return { subscriber: updated, created: false }
    }

    this.#defaultTopics ??= this.topics().filter((t) => t.byDefault).map((t) => t.id)
    const defaults = this.#defaultTopics
    const subscriber: Subscriber = {
      id: nextId(this.store, 'subscriber'),
      sealed: this.vault.seal(JSON.stringify(contact)),
      index,
      domain: input.address.domain,
      status: 'active',
      topics: input.topics !== undefined && input.topics.length > 0 ? input.topics : defaults,
      language: input.language ?? 'ja',
      createdAt: now,
      updatedAt: now
    }
    this.store.subscribers.putSync(subscriber.id, subscriber)
    this.store.addressIndex.putSync(index, subscriber.id)
    return { subscriber, created: true }
  }

  /** Makes the subscriber a member of an organisation, and of one of its groups when given. */
  addMembership (subscriberId: number, organisationId: string, groupId?: string): void {
    const groups = new Set(this.store.organisationMembers.get([organisationId, subscriberId]) ?? [])
    if (groupId !== undefined) {
      groups.add(groupId)
      this.store.groupMembers.putSync([groupId, subscriberId], true)
    }
    this.store.organisationMembers.putSync([organisationId, subscriberId], [...groups])
  }

  /**
   * Stops all mail from one organisation to the subscriber: an opt-out from that sender. The
   * memberships stay, so the person still counts as excluded there and the mail of other
   * organisations (the city's disaster warnings) still reaches them through the tree.
   */
  markLeft (subscriberId: number, organisationId: string): void {
    const subscriber = this.subscriber(subscriberId)
    if (subscriber === undefined || subscriber.left?.includes(organisationId) === true) return
    const left = [...(subscriber.left ?? []), organisationId]
    this.store.subscribers.putSync(subscriberId, { ...subscriber, left, updatedAt: new Date().toISOString() })
  }

  /** Stops all mail to the subscriber. */
  unsubscribeAll (subscriberId: number): void {
    const subscriber = this.subscriber(subscriberId)
    if (subscriber === undefined) return
    this.store.subscribers.putSync(subscriberId, {
      ...subscriber, status: 'unsubscribed', updatedAt: new Date().toISOString()
    })
  }

  /** Ends one group membership, or (without a group) the whole organisation's; no opt-out. */
  removeMembership (subscriberId: number, organisationId: string, groupId?: string): void {
    const groups = this.store.organisationMembers.get([organisationId, subscriberId])
    if (groups === undefined) return
    const ending = groupId === undefined ? groups : [groupId]
    for (const g of ending) this.store.groupMembers.removeSync([g, subscriberId])
    const key = [organisationId, subscriberId]
    if (groupId === undefined) this.store.organisationMembers.removeSync(key)
    else this.store.organisationMembers.putSync(key, groups.filter((g) => g !== groupId))
  }

  /** The group ids the subscriber belongs to in each organisation. */
  membershipsOf (subscriberId: number): Map<string, string[]> {
    const out = new Map<string, string[]>()
    for (const org of this.organisations()) {
      const groups = this.store.organisationMembers.get([org.id, subscriberId])
      if (groups !== undefined) out.set(org.id, groups)
    }
    return out
  }

  isMember (subscriberId: number, organisationId: string): boolean {
    return this.store.organisationMembers.get([organisationId, subscriberId]) !== undefined
  }

  /** Subscriber ids that are members of any of the groups (each with its subtree). */
  membersOfGroups (groupIds: string[]): Set<number> {
    const out = new Set<number>()
    for (const groupId of groupIds.flatMap((g) => this.groupSubtree(g))) {
      const range = this.store.groupMembers.getKeys({ start: [groupId], end: [groupId, Infinity] })
      for (const key of range) out.add((key as [string, number])[1])
    }
    return out
  }

  /** Subscriber ids that are members of the organisations (each with its subtree). */
  membersOfOrganisations (organisationIds: string[]): Set<number> {
    const out = new Set<number>()
    for (const orgId of organisationIds.flatMap((o) => this.organisationSubtree(o))) {
      const range = this.store.organisationMembers.getKeys({ start: [orgId], end: [orgId, Infinity] })
      for (const key of range) out.add((key as [string, number])[1])
    }
    return out
  }

  // ---- suppression ---------------------------------------------------------------------

  suppress (address: ParsedAddress, reason: string): void {
    const index = this.vault.index(lookupKey(address))
    this.store.suppressions.putSync(index, { reason, at: new Date().toISOString() })
  }

  isSuppressed (index: string): boolean {
    return this.store.suppressions.get(index) !== undefined
  }
}

// Group passwords are shared on paper with a class, so they are short; scrypt makes each guess
// cost, and the sign-up form allows only a few guesses per link.
function hashPassword (password: string): string {
  const salt = randomBytes(16)
  const hash = scryptSync(password.normalize('NFKC'), salt, 32)
  return `scrypt:${salt.toString('base64url')}:${hash.toString('base64url')}`
}

function verifyPassword (stored: string, password: string): boolean {
  const [scheme, salt, hash] = stored.split(':')
  if (scheme !== 'scrypt' || salt === undefined || hash === undefined) return false
  const expected = Buffer.from(hash, 'base64url')
  const salted = Buffer.from(salt, 'base64url')
  const actual = scryptSync(password.normalize('NFKC'), salted, expected.length)
  return timingSafeEqual(actual, expected)
}

function collectTree (root: string, children: Map<string, string[]>): string[] {
  const out: string[] = []
  const stack = [root]
  while (stack.length > 0) {
    const id = stack.pop() as string
    out.push(id)
    stack.push(...(children.get(id) ?? []))
  }
  return out
}
