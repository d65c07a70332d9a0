// Runs in the appliance: the signed per-recipient tokens. The recipient token is carried by every
// message's links and its Reply-To; the return path carries a second one, signed for bounces
// only. Both name one ledger row (broadcast, seq) and cannot be forged. They differ because the
// first is seen by anyone who reads a forwarded message, and a bounce can suppress an address:
// a forged bounce needs the return-path token, which a reader of the message does not see.

import { timingSafeEqual } from 'node:crypto'
import type { AddressVault } from './store/address-vault.js'

export interface RecipientRef { broadcastId: number, seq: number }

/** recipient: links and Reply-To; bounce: the return path (VERP) */
export type TokenPurpose = 'recipient' | 'bounce'

const BOUNCE_PURPOSE = Buffer.from('bounce')

/** 20 bytes → 27 URL-safe characters: short enough for a phone's link and a local part. */
export function makeToken (vault: AddressVault, ref: RecipientRef, purpose: TokenPurpose = 'recipient'): string {
  const data = Buffer.alloc(8)
  data.writeUInt32BE(ref.broadcastId, 0)
  data.writeUInt32BE(ref.seq, 4)
  return Buffer.concat([data, mac(vault, data, purpose)]).toString('base64url')
}

function mac (vault: AddressVault, data: Buffer, purpose: TokenPurpose): Buffer {
  return vault.tokenMac(purpose === 'recipient' ? data : Buffer.concat([data, BOUNCE_PURPOSE]))
}

/** The row a token names, or undefined for anything forged, truncated or malformed. */
export function readToken (
  vault: AddressVault, token: string, purpose: TokenPurpose = 'recipient'
): RecipientRef | undefined {
  if (!/^[A-Za-z0-9_-]{27}$/.test(token)) return undefined
  const raw = Buffer.from(token, 'base64url')
  // The last character carries two unused bits; only the one spelling makeToken gives is valid,
  // else four spellings of each token would open the same row.
  if (raw.length !== 20 || raw.toString('base64url') !== token) return undefined
  const data = raw.subarray(0, 8)
  if (!timingSafeEqual(raw.subarray(8), mac(vault, data, purpose))) return undefined
  return { broadcastId: data.readUInt32BE(0), seq: data.readUInt32BE(4) }
}
