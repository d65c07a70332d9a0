// Runs in the appliance and the CLI: staff accounts — login and password for the panel, a role
// that bounds what they reach, their registered mail addresses (sealed, found by blind index)
// and the personal command secret and optional PIN that a mail-in command must carry.

import { createHash, timingSafeEqual } from 'node:crypto'
import { hashPassword, verifyPassword, randomText } from './staff-passwords.js'

export { hashPassword, verifyPassword, randomText } from './staff-passwords.js'
import type { Directory } from './directory.js'
import { nextId } from './store/store.js'
import { type ParsedAddress, parseAddress, lookupKey, AddressError } from './address.js'
import { MimamoriError, assertHeaderSafe } from './errors.js'

export type StaffRole = 'city-admin' | 'org-admin' | 'sender' | 'viewer'
export const STAFF_ROLES: readonly StaffRole[] = ['city-admin', 'org-admin', 'sender', 'viewer']

export interface StaffAddress {
  /** AddressVault-sealed SMTP spelling */
  sealed: Uint8Array
  index: string
}

export interface Staff {
  id: number
  login: string
  name: string
  role: StaffRole
  /** the organisation (with its subtree) an org-admin, sender or viewer belongs to */
  organisationId?: string
  /** a sender's group ids, each with its subgroups */
  groups?: string[]
  /** `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` */
  passwordHash: string
  addresses: StaffAddress[]
  /** sha256 of the command secret: shown once, never stored in clear */
  commandSecretHash: string
  /** scrypt hash of the PIN, when the person chose one */
  pinHash?: string
  disabled?: boolean
  createdAt: string
  updatedAt: string
}

export interface NewStaff {
  login: string
  name: string
  role: StaffRole
  organisationId?: string
  /** group ids (see Directory.groupByPath for paths) */
  groups?: string[]
  addresses?: string[]
  /** made and returned when absent */
  password?: string
  pin?: string
}

const LOGIN = /^[a-z0-9][a-z0-9._-]{1,63}$/
const PIN = /^[0-9]{4,12}$/
export const MIN_PASSWORD = 10
const SECRET_LENGTH = 16

function secretHash (secret: string): string {
  return createHash('sha256').update(`mimamori command secret:${secret.toLowerCase()}`).digest('base64url')
}

// Verifying a missing login costs as much as a real one, so timing does not tell which exist.
let decoyHash: Promise<string> | undefined

export class StaffBook {
  constructor (readonly directory: Directory) {}

  get #store () { return this.directory.store }
  get #vault () { return this.directory.vault }

  get (id: number): Staff | undefined {
    return this.#store.staff.get(id) as Staff | undefined
  }

  byLogin (login: string): Staff | undefined {
    const id = this.#store.staffLogins.get(login.trim().toLowerCase())
    return id === undefined ? undefined : this.get(id)
  }

  /** The staff member a mail address is registered to, whatever its case. */
  byAddress (address: ParsedAddress): Staff | undefined {
    const id = this.#store.staffAddresses.get(this.addressIndex(address))
    return id === undefined ? undefined : this.get(id)
  }

  addressIndex (address: ParsedAddress): string {
    return this.#vault.index(`staff:${lookupKey(address)}`)
  }

  /** The registered addresses in clear, for mailing the person. */
  addresses (staff: Staff): string[] {
    return staff.addresses.map((a) => this.#vault.open(a.sealed))
  }

  /** The registered address with this blind index, in clear. */
  addressFor (staff: Staff, index: string): string | undefined {
    const found = staff.addresses.find((a) => a.index === index)
    return found === undefined ? undefined : this.#vault.open(found.sealed)
  }

  list (): Staff[] {
    return [...this.#store.staff.getRange()].map((e) => e.value as Staff)
  }

  /**
   * Makes an account. Returns the password (the one given, or a generated one) and the command
   * secret: neither is stored in clear, so this is the only time they can be shown.
   */
  async create (input: NewStaff): Promise<{ staff: Staff, password: string, commandSecret: string }> {
    this.checkNew(input)
    const addresses = (input.addresses ?? []).map((a) => this.parseStaffAddress(a))
    const password = input.password ?? randomText(20)
    const passwordHash = await hashPassword(password)
    const pinHash = input.pin === undefined ? undefined : await hashPassword(input.pin)
    const commandSecret = randomText(SECRET_LENGTH)

    // Checked again inside the transaction: the scrypt above gave others time to take the names.
    const staff = this.#store.root.transactionSync(() => {
      this.checkFree(input.login, addresses)
      const now = new Date().toISOString()
      const record: Staff = {
        id: nextId(this.#store, 'staff'),
        login: input.login,
        name: input.name.trim(),
        role: input.role,
        passwordHash,
        addresses: [],
        commandSecretHash: secretHash(commandSecret),
        createdAt: now,
        updatedAt: now
      }
      if (input.organisationId !== undefined) record.organisationId = input.organisationId
      if (input.groups !== undefined && input.groups.length > 0) record.groups = [...input.groups]
      if (pinHash !== undefined) record.pinHash = pinHash
      this.#store.staffLogins.putSync(record.login, record.id)
      for (const address of addresses) this.attachAddress(record, address)
      this.#store.staff.putSync(record.id, record)
      return record
    })
    return { staff, password, commandSecret }
  }

  /** The account for a login and password, or undefined; disabled accounts never log in. */
  async authenticate (login: string, password: string): Promise<Staff | undefined> {
    const staff = this.byLogin(login)
    if (staff === undefined) {
      decoyHash ??= hashPassword(randomText(20))
      await verifyPassword(await decoyHash, password)
      return undefined
    }
    const ok = await verifyPassword(staff.passwordHash, password)
    return ok && staff.disabled !== true ? staff : undefined
  }

  async setPassword (id: number, password: string): Promise<Staff> {
    checkPassword(password)
    const passwordHash = await hashPassword(password)
    return this.update(id, { passwordHash })
  }

  /** Sets (or, with undefined, removes) the PIN that lets the person write to plain cmd@. */
  async setPin (id: number, pin: string | undefined): Promise<Staff> {
    if (pin === undefined) {
      const { pinHash: _, ...rest } = this.require(id)
      this.#store.staff.putSync(id, { ...rest, updatedAt: new Date().toISOString() })
      return this.require(id)
    }
    checkPin(pin)
    return this.update(id, { pinHash: await hashPassword(pin) })
  }

  /** A new command secret (the old one stops working at once); shown once. */
  renewCommandSecret (id: number): string {
    const secret = randomText(SECRET_LENGTH)
    this.update(id, { commandSecretHash: secretHash(secret) })
    return secret
  }

  /** Whether the +tag of cmd+<tag>@ is this person's command secret (case-insensitive). */
  checkCommandSecret (staff: Staff, tag: string): boolean {
    const given = Buffer.from(secretHash(tag))
    const expected = Buffer.from(staff.commandSecretHash)
    return given.length === expected.length && timingSafeEqual(given, expected)
  }

  async checkPin (staff: Staff, pin: string): Promise<boolean> {
    if (staff.pinHash === undefined) return false
    return await verifyPassword(staff.pinHash, pin)
  }

  addAddress (id: number, address: string): Staff {
    const parsed = this.parseStaffAddress(address)
    return this.#store.root.transactionSync(() => {
      const staff = this.require(id)
      this.checkFree(undefined, [parsed])
      this.attachAddress(staff, parsed)
      staff.updatedAt = new Date().toISOString()
      this.#store.staff.putSync(id, staff)
      return staff
    })
  }

  removeAddress (id: number, address: string): Staff {
    const index = this.addressIndex(this.parseStaffAddress(address))
    return this.#store.root.transactionSync(() => {
      const staff = this.require(id)
      if (this.#store.staffAddresses.get(index) === id) this.#store.staffAddresses.removeSync(index)
      return this.update(id, { addresses: staff.addresses.filter((a) => a.index !== index) })
    })
  }

  update (id: number, change: Partial<Omit<Staff, 'id' | 'login'>>): Staff {
    const next: Staff = { ...this.require(id), ...change, updatedAt: new Date().toISOString() }
    this.#store.staff.putSync(id, next)
    return next
  }

  require (id: number): Staff {
    const staff = this.get(id)
    if (staff === undefined) throw new MimamoriError('MIMAMORI_NOT_FOUND', `no staff member ${id}`)
    return staff
  }

  private attachAddress (staff: Staff, address: ParsedAddress): void {
    const index = this.addressIndex(address)
    if (staff.addresses.some((a) => a.index === index)) return
    staff.addresses.push({ sealed: this.#vault.seal(address.smtp), index })
    this.#store.staffAddresses.putSync(index, staff.id)
  }

  private parseStaffAddress (address: string): ParsedAddress {
    try {
      return parseAddress(address)
    } catch (err) {
      const reason = err instanceof AddressError ? err.message : String(err)
      throw new MimamoriError('MIMAMORI_BAD_ADDRESS', `staff mail address: ${reason}`)
    }
  }

  private checkFree (login: string | undefined, addresses: ParsedAddress[]): void {
    if (login !== undefined && this.#store.staffLogins.get(login) !== undefined) {
      throw new MimamoriError('MIMAMORI_CONFLICT', `the login "${login}" is taken`)
    }
    for (const address of addresses) {
      if (this.#store.staffAddresses.get(this.addressIndex(address)) !== undefined) {
        // The address is not echoed: error messages end up in logs.
        throw new MimamoriError('MIMAMORI_CONFLICT', 'a mail address is registered to another staff member')
      }
    }
  }

  private checkNew (input: NewStaff): void {
    if (!LOGIN.test(input.login)) {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST',
        `login "${input.login}" must be 2 to 64 lower-case letters, digits, ".", "_" or "-"`)
    }
    assertHeaderSafe('name', input.name)
    if (input.name.trim() === '' || input.name.length > 100) {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'the name must have 1 to 100 characters')
    }
    if (!STAFF_ROLES.includes(input.role)) {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST', `role must be one of ${STAFF_ROLES.join(', ')}`)
    }
    if (input.password !== undefined) checkPassword(input.password)
    if (input.pin !== undefined) checkPin(input.pin)
    this.checkScope(input)
  }

  // Every role below city-admin lives in one organisation; a sender names its groups there.
  private checkScope (input: NewStaff): void {
    const org = input.organisationId
    if (org === undefined && input.role !== 'city-admin') {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST', `a ${input.role} needs an organisation`)
    }
    if (org !== undefined) this.directory.organisation(org)
    const groups = input.groups ?? []
    if (input.role === 'sender' && groups.length === 0) {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'a sender needs the groups they may send to')
    }
    if (input.role !== 'sender' && groups.length > 0) {
      throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'only a sender is limited to groups')
    }
    for (const groupId of groups) {
      if (this.directory.group(groupId).organisationId !== org) {
        throw new MimamoriError('MIMAMORI_BAD_REQUEST', `group ${groupId} is not in ${String(org)}`)
      }
    }
  }
}

function checkPassword (password: string): void {
  if (password.length < MIN_PASSWORD || password.length > 1024) {
    throw new MimamoriError('MIMAMORI_BAD_REQUEST', `a password needs ${MIN_PASSWORD} to 1024 characters`)
  }
}

function checkPin (pin: string): void {
  if (!PIN.test(pin)) throw new MimamoriError('MIMAMORI_BAD_REQUEST', 'a PIN is 4 to 12 digits')
}

// ---- what a role reaches ---------------------------------------------------------------

export interface SendScope {
  organisationId: string
  /** group ids; empty means the whole organisation (with its subtree) */
  groups: string[]
}

/**
 * Why the staff member may not send to this scope, or undefined when they may. The reason is
 * a plain sentence for the refusal reply.
 */
export function sendRefusal (staff: Staff, directory: Directory, scope: SendScope): string | undefined {
  if (staff.disabled === true) return 'this account is disabled'
  switch (staff.role) {
    case 'city-admin':
      return undefined
    case 'viewer':
      return 'a viewer account cannot send'
    case 'org-admin': {
      const reach = directory.organisationSubtree(staff.organisationId as string)
      return reach.includes(scope.organisationId) ? undefined : `${scope.organisationId} is outside your organisation`
    }
    case 'sender':
      return senderRefusal(staff, directory, scope)
  }
}

function senderRefusal (staff: Staff, directory: Directory, scope: SendScope): string | undefined {
  if (scope.organisationId !== staff.organisationId) return `${scope.organisationId} is outside your organisation`
  if (scope.groups.length === 0) return 'you may send only to your own groups, not to the whole organisation'
  const allowed = new Set((staff.groups ?? []).flatMap((g) => directory.groupSubtree(g)))
  const outside = scope.groups.filter((g) => !allowed.has(g))
  if (outside.length === 0) return undefined
  return `you may not send to ${outside.map((g) => directory.groupPath(g)).join(', ')}`
}

/** The organisations a staff member acts for (each with its subtree); undefined: all. */
export function staffOrganisations (staff: Staff, directory: Directory): Set<string> | undefined {
  if (staff.role === 'city-admin') return undefined
  if (staff.organisationId === undefined) return new Set()
  return new Set(directory.organisationSubtree(staff.organisationId))
}
