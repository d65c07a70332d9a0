// Runs in the appliance: what a sign-up link's form offers and what confirming it does — checks
// every choice, then in one transaction stores the subscriber, memberships, topics, household and
// consent events and uses up the link; then mails the welcome.

import type { Appliance } from './appliance.js'
import type { Group, Subscriber } from './directory.js'
import { MimamoriError } from './errors.js'
import { householdOf, readChildDate, saveHousehold, todayIn, type Child } from './households.js'
import { recordConsent } from './recipient-actions.js'
import { inboundAddress } from './inbound/local-parts.js'
import {
  allowedDomain, countWrongPassword, markLinkUsed, openSignupLink, type OpenedLink
} from './signup.js'
import { CONSENT_TEXTS, LANGUAGES, welcomeMail, type Language } from './signup-texts.js'

export interface SignupChoices {
  organisations: string[]
  groups: string[]
  /** group id → the group password typed */
  passwords: Record<string, string>
  topics: string[]
  language: string
  /** birth or due dates as typed */
  children: string[]
  /** the version of the consent text the form showed */
  consentVersion: string
}

export type SignupProblemKind = 'nothing-chosen' | 'unknown-organisation' | 'unknown-group' |
  'unknown-topic' | 'bad-language' | 'wrong-password' | 'bad-date' | 'date-range' | 'too-long' |
  'too-many' | 'consent'

export interface SignupProblem { field: string, problem: SignupProblemKind, value?: string }

const MAX_TEXT = 200
const MAX_CHOICES = 500
const MAX_CHILDREN = 10

/** The subscriber the link's address already is, if any. */
export function existingSubscriber (appliance: Appliance, opened: OpenedLink): Subscriber | undefined {
  const id = appliance.store.addressIndex.get(opened.link.index)
  return id === undefined ? undefined : appliance.directory.subscriber(id)
}

/** What the form shows chosen: the person's current choices, plus what the mail's code named. */
export function formDefaults (appliance: Appliance, opened: OpenedLink, lang: Language): SignupChoices {
  const { directory } = appliance
  const subscriber = existingSubscriber(appliance, opened)
  const choices: SignupChoices = {
    organisations: [],
    groups: [],
    passwords: {},
    topics: subscriber?.topics ?? directory.topics().filter((t) => t.byDefault).map((t) => t.id),
    language: subscriber?.language ?? lang,
    children: [],
    consentVersion: ''
  }
  if (subscriber !== undefined) {
    for (const [orgId, groups] of directory.membershipsOf(subscriber.id)) {
      if (groups.length === 0) choices.organisations.push(orgId)
      choices.groups.push(...groups)
    }
    choices.children = householdOf(appliance.store, subscriber.id)?.children.map((c) => c.date) ?? []
  }
  const code = opened.link.code
  if (code !== undefined && !code.includes('/')) choices.organisations.push(code)
  if (code !== undefined && code.includes('/')) choices.groups.push(code)
  return choices
}

/**
 * Confirms a sign-up: MIMAMORI_SIGNUP_INVALID (with a problem per field, nothing stored) or
 * MIMAMORI_SIGNUP_LINK_INVALID (used meanwhile, expired, locked by wrong passwords).
 */
export function completeSignup (appliance: Appliance, token: string, choices: SignupChoices): Subscriber {
  const opened = openSignupLink(appliance, token)
  const before = existingSubscriber(appliance, opened)
  const problems = checkChoices(appliance, choices, before)
  if (problems.some((p) => p.problem === 'wrong-password')) countWrongPassword(appliance, opened)
  if (problems.length > 0) {
    const details = { problems }
    throw new MimamoriError('MIMAMORI_SIGNUP_INVALID', 'the sign-up form has problems', { details })
  }

  const children = choices.children.filter((c) => c.trim() !== '')
    .map((c) => readChildDate(c, todayIn(appliance.config.timeZone)) as Child)
  const subscriber = appliance.store.root.transactionSync(() => {
    // Two taps on "confirm" arrive one after the other; the second finds the link used.
    openSignupLink(appliance, token)
    return store(appliance, opened, choices, children)
  })
  appliance.log.child({ component: 'signup' }).info({
    subscriber: subscriber.id, created: before === undefined, channel: opened.link.channel
  }, 'sign-up completed')
  sendWelcome(appliance, subscriber)
  return subscriber
}

function checkChoices (appliance: Appliance, choices: SignupChoices, before?: Subscriber): SignupProblem[] {
  const texts = [...choices.organisations, ...choices.groups, ...choices.topics,
    ...choices.children, ...Object.values(choices.passwords), choices.language, choices.consentVersion]
  if (texts.some((t) => t.length > MAX_TEXT)) return [{ field: 'form', problem: 'too-long' }]
  if (texts.length > MAX_CHOICES || choices.children.length > MAX_CHILDREN) {
    return [{ field: 'form', problem: 'too-many' }]
  }

  const problems: SignupProblem[] = []
  const add = (field: string, problem: SignupProblemKind, value?: string): void => {
    problems.push(value === undefined ? { field, problem } : { field, problem, value })
  }
  if (CONSENT_TEXTS[choices.consentVersion] === undefined) add('consent', 'consent')
  if (!(LANGUAGES as string[]).includes(choices.language)) add('language', 'bad-language')
  if (choices.organisations.length === 0 && choices.groups.length === 0) add('organisations', 'nothing-chosen')
  for (const id of choices.organisations) {
    if (appliance.store.organisations.get(id) === undefined) add('organisations', 'unknown-organisation', id)
  }
  const topics = new Set(appliance.directory.topics().map((t) => t.id))
  for (const id of choices.topics) if (!topics.has(id)) add('topics', 'unknown-topic', id)
  problems.push(...checkGroups(appliance, choices, before))

  const today = todayIn(appliance.config.timeZone)
  for (const text of choices.children.filter((c) => c.trim() !== '')) {
    const child = readChildDate(text, today)
    if (child === 'format') add('children', 'bad-date', text)
    if (child === 'range') add('children', 'date-range', text)
  }
  return problems
}

// A group's password keeps strangers out of a class; someone already in the group keeps their
// place without typing it again.
function checkGroups (appliance: Appliance, choices: SignupChoices, before?: Subscriber): SignupProblem[] {
  const problems: SignupProblem[] = []
  const current = before === undefined
    ? new Map<string, string[]>()
    : appliance.directory.membershipsOf(before.id)
  for (const id of choices.groups) {
    const group = appliance.store.groups.get(id) as Group | undefined
    if (group === undefined) {
      problems.push({ field: 'groups', problem: 'unknown-group', value: id })
      continue
    }
    if (current.get(group.organisationId)?.includes(id) === true) continue
    if (!appliance.directory.checkGroupPassword(group, choices.passwords[id] ?? '')) {
      problems.push({ field: `password:${id}`, problem: 'wrong-password', value: id })
    }
  }
  return problems
}

function store (appliance: Appliance, opened: OpenedLink, choices: SignupChoices, children: Child[]): Subscriber {
  const { directory } = appliance
  const { subscriber: upserted, created } = directory.upsertSubscriber({
    address: opened.address, language: choices.language, topics: choices.topics
  })
  const wanted = wantedMemberships(appliance, choices)
  const before = created ? new Map<string, string[]>() : directory.membershipsOf(upserted.id)

  // A sign-up is a fresh consent: it undoes an earlier stop for the organisations chosen.
  const subscriber: Subscriber = {
    ...upserted,
    topics: [...new Set(choices.topics)],
    status: 'active',
    updatedAt: new Date().toISOString()
  }
  const left = (upserted.left ?? []).filter((o) => !wanted.has(o))
  if (left.length > 0) subscriber.left = left
  else delete subscriber.left
  appliance.store.subscribers.putSync(subscriber.id, subscriber)

  applyMemberships(appliance, subscriber.id, before, wanted)
  if (children.length > 0 || householdOf(appliance.store, subscriber.id) !== undefined) {
    saveHousehold(appliance.store, subscriber.id, children)
  }
  const version = choices.consentVersion
  recordEvents(appliance, { opened, subscriber, previous: upserted, before, wanted, version })
  markLinkUsed(appliance, opened, subscriber.id)
  return subscriber
}

/** organisation id → the groups chosen in it (empty: the organisation without a group). */
function wantedMemberships (appliance: Appliance, choices: SignupChoices): Map<string, Set<string>> {
  const wanted = new Map<string, Set<string>>()
  for (const id of choices.organisations) wanted.set(id, wanted.get(id) ?? new Set())
  for (const id of choices.groups) {
    const orgId = appliance.directory.group(id).organisationId
    wanted.set(orgId, (wanted.get(orgId) ?? new Set()).add(id))
  }
  return wanted
}

function applyMemberships (
  appliance: Appliance, subscriberId: number, before: Map<string, string[]>, wanted: Map<string, Set<string>>
): void {
  const { directory } = appliance
  for (const [orgId, groups] of before) {
    const keep = wanted.get(orgId)
    if (keep === undefined) directory.removeMembership(subscriberId, orgId)
    else groups.filter((g) => !keep.has(g)).forEach((g) => directory.removeMembership(subscriberId, orgId, g))
  }
  for (const [orgId, groups] of wanted) {
    if (groups.size === 0) directory.addMembership(subscriberId, orgId)
    for (const g of groups) directory.addMembership(subscriberId, orgId, g)
  }
}

// One event per organisation the person chose or dropped: each organisation's consent stands on
// its own, as its opt-outs do.
function recordEvents (appliance: Appliance, change: {
  opened: OpenedLink, subscriber: Subscriber, previous: Subscriber, version: string
  before: Map<string, string[]>, wanted: Map<string, Set<string>>
}): void {
  const { subscriber, previous, before, wanted } = change
  const base = {
    subscriberId: subscriber.id,
    channel: change.opened.link.channel,
    textVersion: change.version,
    topics: subscriber.topics
  }
  for (const [orgId, groups] of wanted) {
    const fresh = !before.has(orgId) || previous.status !== 'active' ||
      previous.left?.includes(orgId) === true
    const kind = fresh ? 'sign-up' : 'change'
    recordConsent(appliance, { ...base, kind, organisationId: orgId, groups: [...groups] })
  }
  for (const orgId of before.keys()) {
    if (!wanted.has(orgId)) recordConsent(appliance, { ...base, kind: 'change', organisationId: orgId, groups: [] })
  }
}

/** 'Organisation: group, group' per organisation the subscriber belongs to. */
export function membershipLines (appliance: Appliance, subscriberId: number): string[] {
  const { directory } = appliance
  return [...directory.membershipsOf(subscriberId)].map(([orgId, groups]) => {
    const name = directory.organisation(orgId).name
    const paths = groups.map((g) => directory.groupPath(g))
    return paths.length === 0 ? name : `${name}: ${paths.join(', ')}`
  })
}

function sendWelcome (appliance: Appliance, subscriber: Subscriber): void {
  const { directory, config } = appliance
  const lang = subscriber.language === 'en' ? 'en' : 'ja'
  const topics = directory.topics().filter((t) => subscriber.topics.includes(t.id))
    .map((t) => lang === 'en' ? t.nameEn : t.name)
  const mail = welcomeMail({
    lang,
    choices: membershipLines(appliance, subscriber.id),
    topics,
    entryAddress: inboundAddress('signup', config.mailDomain),
    domain: subscriber.domain,
    allowDomain: allowedDomain(appliance)
  })
  const contact = directory.contact(subscriber)
  const { subject, text } = mail
  appliance.outbox.enqueue({ to: contact.a, subject, text, purpose: 'signup-welcome' })
}
