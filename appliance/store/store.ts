// Runs in the appliance: the one LMDB environment in the data folder and its sub-databases.
// Opening checks the address key against the data before anything else is read or written.

import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { open, type Database, type RootDatabase, type Key } from 'lmdb'
import { AddressVault, createKeyFile, readKeyFile } from './address-vault.js'
import { MimamoriError } from '../errors.js'

export const DATA_FILE = 'mimamori.mdb'
export const KEY_FILE = 'address.key'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Db<V = any> = Database<V, Key>

export interface Store {
  root: RootDatabase
  /** settings, counters and the key check */
  meta: Db
  organisations: Db
  groups: Db
  topics: Db
  /** subscriber id → record with the sealed address */
  subscribers: Db
  /** blind index → subscriber id */
  addressIndex: Db<number>
  /** [groupId, subscriberId] → true */
  groupMembers: Db<true>
  /** [organisationId, subscriberId] → group ids within that organisation */
  organisationMembers: Db<string[]>
  /** blind index → suppression record */
  suppressions: Db
  broadcasts: Db
  /** [broadcastId, seq] → ledger row */
  ledger: Db
  /** [broadcastId, seq] → what the recipient did: read confirmation, answers */
  responses: Db
  /** [time, n] → consent event: sign-up, change, opt-out */
  consent: Db
  /** token hash → API token record */
  tokens: Db
  /** [time, n] → audit event */
  audit: Db
  /** staff id → staff account (appliance/staff.ts) */
  staff: Db
  /** login → staff id */
  staffLogins: Db<number>
  /** blind index of a staff member's registered mail address → staff id */
  staffAddresses: Db<number>
  /** mail-in command id → its preview, code and state (appliance/inbound/command-mail.ts) */
  mailCommands: Db
  /** rate-limit and refusal-reply counters of the mail-in commands */
  commandLimits: Db
  /** ['link', token hash] → one-time sign-up link; ['rate', blind index] → recent send times */
  signups: Db
  /** first contact's subscriber id → household: children with their dates, contacts */
  households: Db
  /** id → transactional mail waiting to go out: sign-up links, confirmations (outbox.ts) */
  outbox: Db
  /** id → inbound mail accepted by SMTP, kept until its handler completes (inbound/inbox.ts) */
  inbox: Db
  /** [organisationId, received ms, inbox id] → a recipient's reply, for the organisation */
  replies: Db
  /** [blind index, time ms, event id] → a bounce or refusal of an address (bounce-policy.ts) */
  bounces: Db
  /** feed URL → poll state: ETag, Last-Modified, failures, next poll (feeds/feed-poller.ts) */
  feedState: Db
  /** [entry link, entry id] → when it was fetched and what came of it: none is fetched twice */
  feedEntries: Db
  /** event key → the latest HazardEvent of that event, for corrections and cancellations */
  hazardEvents: Db
  /** draft id → an alert a rule made: held, waiting for approval, sent or withdrawn */
  alertDrafts: Db
  /** rule id → an alert rule (seeded from the configuration, changed by staff) */
  alertRules: Db
  /** schedule id → a scheduled or repeating broadcast (schedules/) */
  schedules: Db
  /** ['entry', id] → a step-mail calendar entry; ['sent', entry id, subscriber id] → sent once */
  stepMail: Db
  close: () => Promise<void>
}

export interface OpenedStore {
  store: Store
  vault: AddressVault
  created: boolean
}

/**
 * Opens (or creates) the store in dataDir. With existing data, the key file must exist and match,
 * else MIMAMORI_KEY_MISSING / MIMAMORI_KEY_WRONG is thrown and nothing has been written.
 */
export function openStore (
  dataDir: string, keyFile = join(dataDir, KEY_FILE), options: { mustExist?: boolean } = {}
): OpenedStore {
  const dataFile = join(dataDir, DATA_FILE)
  const existing = existsSync(dataFile)

  if (existing) return openExisting(dataFile, keyFile)
  if (options.mustExist === true) {
    throw new MimamoriError('MIMAMORI_NOT_FOUND', `${dataDir} holds no Mimamori data; check dataDir`)
  }

  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const key = existsSync(keyFile) ? readKeyFile(keyFile) : createKeyFile(keyFile)
  const vault = new AddressVault(key)
  const store = openEnvironment(dataFile)
  store.meta.putSync('keyCheck', vault.keyCheck())
  store.meta.putSync('createdAt', new Date().toISOString())
  return { store, vault, created: true }
}

function openExisting (dataFile: string, keyFile: string): OpenedStore {
  if (!existsSync(keyFile)) {
    throw new MimamoriError('MIMAMORI_KEY_MISSING',
      `the data folder holds data but the address key file ${keyFile} is missing; ` +
      'restore it from your backup (without it no stored address can be read); nothing was changed')
  }

  const vault = verifyKey(dataFile, keyFile)
  return { store: openEnvironment(dataFile), vault, created: false }
}

/** Reads the key file and checks it against a data file without writing to it. */
export function verifyKey (dataFile: string, keyFile: string): AddressVault {
  const vault = new AddressVault(readKeyFile(keyFile))
  const probe = open({ path: dataFile, readOnly: true, maxDbs: 64 })
  const stored = probe.openDB({ name: 'meta' }).get('keyCheck') as string | undefined
  probe.close()
  if (stored !== vault.keyCheck()) {
    throw new MimamoriError('MIMAMORI_KEY_WRONG',
      `the address key in ${keyFile} does not belong to this data folder; ` +
      'use the key file that was created with it; nothing was changed')
  }
  return vault
}

function openEnvironment (dataFile: string): Store {
  const root = open({ path: dataFile, maxDbs: 64, compression: false })
  const db = (name: string): Db => root.openDB({ name })
  return {
    root,
    meta: db('meta'),
    organisations: db('organisations'),
    groups: db('groups'),
    topics: db('topics'),
    subscribers: db('subscribers'),
    addressIndex: db('address-index'),
    groupMembers: db('group-members'),
    organisationMembers: db('organisation-members'),
    suppressions: db('suppressions'),
    broadcasts: db('broadcasts'),
    ledger: db('ledger'),
    responses: db('responses'),
    consent: db('consent'),
    tokens: db('tokens'),
    audit: db('audit'),
    staff: db('staff'),
    staffLogins: db('staff-logins'),
    staffAddresses: db('staff-addresses'),
    mailCommands: db('mail-commands'),
    commandLimits: db('command-limits'),
    signups: db('signups'),
    households: db('households'),
    outbox: db('outbox'),
    inbox: db('inbox'),
    replies: db('replies'),
    bounces: db('bounces'),
    feedState: db('feed-state'),
    feedEntries: db('feed-entries'),
    hazardEvents: db('hazard-events'),
    alertDrafts: db('alert-drafts'),
    alertRules: db('alert-rules'),
    schedules: db('schedules'),
    stepMail: db('step-mail'),
    close: async () => { await root.close() }
  }
}

/** The next value of a named counter, in the current or a new write transaction. */
export function nextId (store: Store, name: string): number {
  const key = `seq:${name}`
  const next = ((store.meta.get(key) as number | undefined) ?? 0) + 1
  store.meta.putSync(key, next)
  return next
}
