// Runs in the appliance's main thread, under command-mail.ts: whether a mail to the command
// address comes from the staff member it names. Every mail that would act — a new command, a
// code, a cancel — must pass: the From is a registered staff address AND the mail carries that
// person's secret (cmd+<secret>@, or a PIN line). The From alone proves nothing, since anyone
// can write it; a reply to a preview passes naturally, as the preview's Reply-To is cmd+<secret>@.

import type { Staff, StaffBook } from '../staff.js'
import { readPin } from './command-grammar.js'
import type { CommandLimits, RefusalLimits } from './command-limits.js'

/** Why a mail is not from the staff member it names; the reply does not tell which. */
export type AuthFailure = 'not-registered' | 'wrong-secret' | 'missing-secret' | 'pin-locked'

export interface SenderClaim {
  /** the staff member whose registered address the From is */
  staff: Staff | undefined
  /** the +tag of cmd+<tag>@, if the mail was sent to one */
  tag: string | undefined
  text: string
  /** blind index of the From, the key of its counters */
  key: string
}

/** undefined when the mail carries the secret of the registered sender; else why not. */
export async function authenticate (
  staffBook: StaffBook, limits: CommandLimits, refusals: RefusalLimits, claim: SenderClaim
): Promise<AuthFailure | undefined> {
  const { staff, tag } = claim
  if (staff === undefined || staff.disabled === true) return 'not-registered'
  // The command secret is 16 random characters: guessing it needs no counter.
  if (tag !== undefined) return staffBook.checkCommandSecret(staff, tag) ? undefined : 'wrong-secret'

  const pin = readPin(claim.text)
  if (pin === undefined) return 'missing-secret'
  // A PIN has as few as 4 digits: its tries are counted per address, and a locked PIN is not
  // even hashed, which also bounds the work a flood of PIN lines can cause.
  if (limits.pinLocked(claim.key, refusals)) return 'pin-locked'
  if (await staffBook.checkPin(staff, pin)) return undefined
  limits.wrongPin(claim.key)
  return 'wrong-secret'
}
